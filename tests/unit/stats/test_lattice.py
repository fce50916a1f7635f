"""The lattice CUSUM's ARL curves (shared/stats/lattice.py): every limit from one
elimination, checked against exact rational arithmetic, a dense solve per limit, the
uncompiled loop, and itself carried on in steps."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.stats.cusum import ARL_RESOLVED_MAX, lattice_arl, lattice_arl_curves
from shared.stats.lattice import ArlCurves, CurveCache, arl_curves
from tests.unit.stats.test_cusum import _dense_lattice_arl


def _exact_arl(up: int, down: int, limit: int, p: Fraction) -> Fraction:
    """L_0 of (I - Q) L = 1 by Gauss-Jordan elimination in rational numbers: no rounding."""
    a = [[Fraction(int(i == j)) for j in range(limit)] + [Fraction(1)] for i in range(limit)]
    for s in range(limit):
        if s + up < limit:
            a[s][s + up] -= p
        a[s][max(0, s - down)] -= 1 - p
    for c in range(limit):
        pivot = next(r for r in range(c, limit) if a[r][c] != 0)
        a[c], a[pivot] = a[pivot], a[c]
        for r in range(limit):
            if r != c and a[r][c] != 0:
                f = a[r][c] / a[c][c]
                a[r] = [x - f * y for x, y in zip(a[r], a[c], strict=True)]
    return a[0][limit] / a[0][0]


@pytest.mark.parametrize(
    ("up", "down", "limit", "p"),
    [
        (3, 1, 12, "1/10"),
        (1, 1, 9, "1/3"),
        (7, 2, 25, "1/20"),
        (2, 5, 18, "3/10"),
        (1, 40, 6, "1/1000"),  # ARL ~ 1e17: a banded LU with pivoting returned -1e17 here
        (1, 3, 30, "1/50"),  # ARL ~ 1e47
    ],
)
def test_every_limit_matches_exact_rational_arithmetic(
    up: int, down: int, limit: int, p: str
) -> None:
    """The GTH pivots cancel nothing, so the curve keeps its relative accuracy even where
    the chain almost never signals (there, past ARL_RESOLVED_MAX, the cusum module reports
    ``inf``, but the curve itself is right)."""
    rate = Fraction(p)
    curve = arl_curves(up, down, limit, np.array([float(rate)]))[:, 0]
    for n in range(1, limit + 1):
        exact = float(_exact_arl(up, down, n, rate))
        assert curve[n - 1] == pytest.approx(exact, rel=1e-11), n


@settings(max_examples=150, deadline=None)
@given(
    up=st.integers(1, 30),
    down=st.integers(1, 12),
    n=st.integers(1, 90),
    ps=st.lists(st.floats(0.001, 1.0), min_size=1, max_size=5),
)
def test_each_limit_matches_a_dense_solve_of_its_own_chain(
    up: int, down: int, n: int, ps: list[float]
) -> None:
    """Column j of the curves at row L - 1 is the chain with limit L at rate ps[j], solved
    on its own (the leading-section argument of the module docstring)."""
    curves = arl_curves(up, down, n, np.array(ps))
    for j, p in enumerate(ps):
        for limit in {1, n, max(1, n // 3), max(1, (2 * n) // 3)}:
            dense = _dense_lattice_arl(up, down, limit, p)
            if 0 < dense < 1e8:  # (the dense solve's own error grows with the ARL ...
                assert curves[limit - 1, j] == pytest.approx(dense, rel=1e-8)
            else:  # ... until it means nothing, or turns negative: the exact test above)
                assert curves[limit - 1, j] > 1e6


@settings(max_examples=60, deadline=None)
@given(
    up=st.integers(1, 12),
    down=st.integers(1, 6),
    steps=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    ps=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4),
)
def test_carried_on_in_steps_equals_one_pass_and_the_uncompiled_loop(
    up: int, down: int, steps: list[int], ps: list[float]
) -> None:
    """What a search sees: the curves extended limit by limit are the one-pass curves, bit
    for bit, and the compiled loop is the Python one."""
    total = sum(steps)
    once = ArlCurves(up, down, np.array(ps)).upto(total)
    stepped = ArlCurves(up, down, np.array(ps))
    n = 0
    for step in steps:
        n += step
        assert np.array_equal(stepped.upto(n), once[:n])
    plain = ArlCurves(up, down, np.array(ps), compiled=False).upto(total)
    assert np.array_equal(plain, once)
    # batched rates are each their own single-rate curve
    for j, p in enumerate(ps):
        assert np.array_equal(ArlCurves(up, down, np.array([p])).upto(total)[:, 0], once[:, j])


def test_edges_p_zero_one_and_the_cap() -> None:
    curves = ArlCurves(4, 2, np.array([0.0, 1.0, 1e-6]), cap=2e6).upto(12)
    assert np.all(np.isinf(curves[:, 0]))  # never signals
    # every verdict an error: S climbs by 4 a verdict, so ceil(limit / 4) verdicts
    assert list(curves[:, 1]) == [math.ceil(n / 4) for n in range(1, 13)]
    # a limit within one step: the first error signals, after 1/p verdicts on average
    assert curves[:4, 2] == pytest.approx([1e6] * 4, rel=1e-9)
    assert np.all(np.isinf(curves[4:, 2]))  # past the cap


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="up and down"):
        ArlCurves(0, 1, np.array([0.1]))
    with pytest.raises(ValueError, match="probabilities"):
        ArlCurves(2, 1, np.array([1.5]))
    with pytest.raises(ValueError, match="n must be"):
        arl_curves(2, 1, 0, np.array([0.1]))


def test_the_cache_holds_at_most_its_bound_and_answers_the_same() -> None:
    cache = CurveCache(max_values=100)
    made: list[float] = []

    def make(p: float) -> ArlCurves:
        made.append(p)
        return lattice_arl_curves(3, 1, (p,))

    first = cache.upto(0.1, 30, lambda: make(0.1)).copy()
    assert np.array_equal(cache.upto(0.1, 20, lambda: make(0.1)), first[:20])
    assert made == [0.1]  # a shorter limit is read, not computed
    cache.upto(0.2, 60, lambda: make(0.2))
    cache.upto(0.3, 60, lambda: make(0.3))  # 0.1 (least recently used), then 0.2, out
    assert cache._held <= 100
    assert np.array_equal(cache.upto(0.1, 30, lambda: make(0.1)), first)
    assert made == [0.1, 0.2, 0.3, 0.1]


def test_lattice_arl_reads_the_curve_and_reports_inf_past_the_bound() -> None:
    assert lattice_arl(3, 1, 12, 0.1) == pytest.approx(float(_exact_arl(3, 1, 12, Fraction(1, 10))))
    assert lattice_arl(1, 40, 6, 0.001) == math.inf  # ~1e17 > ARL_RESOLVED_MAX
    assert ARL_RESOLVED_MAX == 1e15
