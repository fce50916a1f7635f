"""The exact CUSUM ARL in C (shared/stats/_lattice.c): every limit of a curve against exact
rational arithmetic, a dense solve of its own chain, and the banded LU it replaces; the
curve cache of shared.stats.cusum; the module's refusals. Under CI the module must be
built (setup.py): without it the designs fall back to LAPACK, several times slower."""

from __future__ import annotations

import math
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.stats.cusum import (
    ARL_RESOLVED_MAX,
    NATIVE_BAND_MAX,
    _banded_lu_arl,
    _CurveCache,
    lattice_arl,
    max_lattice_limit,
)
from shared.stats.cusum import _native as native
from tests.conftest import unavailable

from .helpers import FAST
from .test_cusum import _dense_lattice_arl

cusum_module = sys.modules["shared.stats.cusum"]  # (the package exports a function of that name)


@pytest.fixture(autouse=True)
def _built() -> None:
    if native is None:
        unavailable("shared/stats/_lattice.c is not compiled (pip install -e . with a C compiler)")


def _curve(up: int, down: int, n: int, p: float) -> np.ndarray:
    assert native is not None
    out = np.empty(n)
    native.curve(up, down, p, out)
    return out


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
        (7, 2, 25, "1/20"),
        (2, 5, 18, "3/10"),
        (13, 4, 40, "1/25"),
        (1, 1, 9, "1/3"),  # up = 1: the climb
        (1, 12, 50, "19/20"),  # the lower side's shape (the correct rate's chart)
        (1, 40, 6, "1/1000"),  # ARL ~ 1e18: a banded LU with pivoting returned -1e17 here
        (1, 3, 30, "1/50"),  # ARL ~ 1e50
        (5, 3, 30, "1/100"),  # ARL ~ 1e23 by elimination
    ],
)
def test_every_limit_matches_exact_rational_arithmetic(
    up: int, down: int, limit: int, p: str
) -> None:
    """Both passes sum non-negative terms only, so the curve keeps its relative accuracy
    where the chain almost never signals (there, past ARL_RESOLVED_MAX, the cusum module
    reports ``inf``, but the curve itself is right)."""
    rate = Fraction(p)
    curve = _curve(up, down, limit, float(rate))
    for n in range(1, limit + 1):
        assert curve[n - 1] == pytest.approx(float(_exact_arl(up, down, n, rate)), rel=1e-12), n


@FAST
@given(
    up=st.integers(1, 40),
    down=st.integers(1, 40),
    n=st.integers(1, 100),
    p=st.floats(0.001, 1.0),
)
def test_each_limit_is_its_own_chain_solved_densely(up: int, down: int, n: int, p: float) -> None:
    """ARL(L) read at row L - 1 of one pass is the chain with limit L solved on its own (the
    leading-section argument of _lattice.c), and agrees with the banded LU it replaces."""
    curve = _curve(up, down, n, p)
    for limit in {1, n, max(1, n // 3), max(1, (2 * n) // 3)}:
        dense = _dense_lattice_arl(up, down, limit, p)
        if 0 < dense < 1e8:  # (the dense solve's own error grows with the ARL ...
            rel = max(1e-10, 1e-14 * dense)  # (as does the banded LU's)
            assert curve[limit - 1] == pytest.approx(dense, rel=rel)
            assert curve[limit - 1] == pytest.approx(_banded_lu_arl(up, down, limit, p), rel=rel)
        else:  # ... until it means nothing, or turns negative: the exact test above)
            assert curve[limit - 1] > 1e6
    assert np.all(np.diff(curve) >= 0)  # a longer interval never signals sooner


@FAST
@given(up=st.integers(1, 30), down=st.integers(1, 30), n=st.integers(2, 200), p=st.floats(0.0, 1.0))
def test_a_shorter_curve_is_the_longer_one_cut(up: int, down: int, n: int, p: float) -> None:
    """What the cache relies on when it computes a curve again, longer: bit for bit."""
    p = max(p, 1e-3)
    assert np.array_equal(_curve(up, down, n // 2, p), _curve(up, down, n, p)[: n // 2])


def test_edges_by_hand() -> None:
    # every verdict an error: S climbs by up a verdict, so ceil(limit / up) verdicts
    assert list(_curve(4, 2, 12, 1.0)) == [math.ceil(n / 4) for n in range(1, 13)]
    assert list(_curve(1, 3, 5, 1.0)) == [1.0, 2.0, 3.0, 4.0, 5.0]
    # a limit within one step: the first error signals, after 1/p verdicts on average
    assert _curve(4, 2, 4, 0.25) == pytest.approx([4.0] * 4)
    # p so small the ARL overflows: inf or nan, which _lattice_arl reports as inf
    assert lattice_arl(1, 300, 4000, 1e-4) == math.inf
    assert lattice_arl(3, 1, 12, 0.0) == math.inf


def test_the_module_refuses_what_it_cannot_compute() -> None:
    assert native is not None
    with pytest.raises(ValueError, match="up and down must be >= 1"):
        native.curve(0, 1, 0.1, np.empty(3))
    with pytest.raises(ValueError, match="up and down must be >= 1"):
        native.curve(2, -5, 0.1, np.empty(3))
    with pytest.raises(ValueError, match="at most 2"):
        native.curve(1, 2**61, 0.5, np.empty(3))  # (a window of 2^61 doubles: 0 bytes, wrapped)
    with pytest.raises(ValueError, match="at most 2"):
        native.curve(2**62, 3, 0.5, np.empty(3))
    for p in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"p must be in \(0, 1\]"):
            native.curve(2, 1, p, np.empty(3))
    with pytest.raises(ValueError, match="n >= 1 doubles"):
        native.curve(2, 1, 0.1, np.empty(0))
    with pytest.raises(ValueError, match="too wide"):
        native.curve(2000, 2000, 0.1, np.empty(3))
    for wrong in (np.empty(4, dtype=np.float32), np.empty(4, dtype=np.int64), bytearray(16)):
        with pytest.raises(ValueError, match="buffer of doubles"):
            native.curve(2, 1, 0.1, wrong)
    # (what the buffer protocol says of itself: numpy a ValueError, bytes a BufferError)
    with pytest.raises(ValueError, match="not C-contiguous"):
        native.curve(2, 1, 0.1, np.empty(8)[::2])
    with pytest.raises(BufferError):
        native.curve(2, 1, 0.1, b"\0" * 8)  # (read-only)
    frozen = np.zeros(3)
    frozen.flags.writeable = False  # (as the cache's curves are)
    with pytest.raises(ValueError, match="read-only"):
        native.curve(2, 1, 0.1, frozen)
    with pytest.raises(TypeError):
        native.curve(2, 1, 0.1, [0.0, 0.0])


def test_a_window_wider_than_the_curve_costs_the_curve_only() -> None:
    """The climb keeps min(down, n) terms: a lattice with a huge down and a short curve
    (reachable through lattice_arl, whose bound counts min(down, limit)) allocates little,
    and is right: with down >= the limit, every correct verdict falls to 0."""
    p = 0.5
    exact = [float(_exact_arl(1, 10, n, Fraction(1, 2))) for n in range(1, 6)]
    assert _curve(1, 10**9, 5, p) == pytest.approx(exact, rel=1e-14)
    assert lattice_arl(1, 10**9, 5, p) == pytest.approx(exact[-1], rel=1e-14)
    assert lattice_arl(3, 1, 12, float("nan")) == math.inf  # (as the banded LU answered)


def test_a_band_too_wide_for_the_module_is_solved_by_the_banded_lu() -> None:
    up, down = 1100, 1000  # (down + 1)(down + up + 1) > NATIVE_BAND_MAX
    assert (down + 1) * (down + up + 1) > NATIVE_BAND_MAX
    assert lattice_arl(up, down, 3, 0.5) == pytest.approx(_dense_lattice_arl(up, down, 3, 0.5))


def test_the_cache_holds_at_most_its_bound_and_answers_the_same() -> None:
    cache = _CurveCache(max_values=300)
    first = cache.upto(3, 1, 0.1, 30).copy()
    assert len(first) == 60  # (twice the limit asked: a search doubles its limit)
    assert cache.upto(3, 1, 0.1, 20) is cache.upto(3, 1, 0.1, 60)  # read, not computed
    longer = cache.upto(3, 1, 0.1, 61)  # past its end: again, to twice that at least
    assert len(longer) == 122
    assert np.array_equal(longer[:60], first)
    cache.upto(3, 1, 0.2, 60)
    cache.upto(3, 1, 0.3, 60)  # 0.1 (least recently used) out
    assert cache.held <= 300
    assert len(cache.upto(3, 1, 0.1, 30)) == 60
    # a curve is never longer than the exact ARL's bound on its lattice
    top = max_lattice_limit(3, 1)
    assert len(cache.upto(3, 1, 0.4, top - 1)) == top
    assert cache.held == top  # (alone: larger than the bound, the rest went out)


def test_lattice_arl_reads_the_curve_and_reports_inf_past_the_bound() -> None:
    exact = float(_exact_arl(3, 1, 12, Fraction(1, 10)))
    assert lattice_arl(3, 1, 12, 0.1) == pytest.approx(exact, rel=1e-12)
    assert lattice_arl(1, 40, 6, 0.001) == math.inf  # ~1e18 > ARL_RESOLVED_MAX
    assert ARL_RESOLVED_MAX == 1e15


DESIGNS = [  # (side, p0, ratio, ARL0, belief) as the scorer asked them in bench/pipeline.py
    ("upper", 0.05865255626770011, 2.0, 22387211.385683, (1574.5, 25262.5)),
    ("upper", 0.06777298600711676, 2.0, 79432823.472428, (551.781802504054, 7589.838484114222)),
    ("upper", 0.051074706194638046, 2.0, 63095734.448019, (417.20926821559266, 7751.408141678267)),
    ("upper", 0.03939801329449548, 2.0, 22387211.385683, (1055.5, 25723.5)),
    ("lower", 0.07987579034008006, 0.25, 56234132.519035, (2135.5, 24594.5)),
    ("lower", 0.06807652069944702, 0.25, 56234132.519035, (1822.5, 24942.5)),
    ("lower", 0.006, 0.25, 5e4, (15.5, 2485.5)),  # (m 358: the widest lower lattice)
    ("upper", 0.05, 2.0, 1e5, None),  # configured baselines: choose_h alone
    ("lower", 0.02, 0.25, 5e4, None),
]


@pytest.mark.parametrize("args", DESIGNS)
def test_designs_are_the_same_with_and_without_the_module(
    args: tuple[str, float, float, float, tuple[float, float] | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The search for a design compares ARLs with targets and with each other: the C pass
    (accurate to ~1e-15) and the banded LU (~1e-9 at ARLs of 1e8) must not tip it."""
    from services.scorer import cusum as live

    def fresh() -> object:
        live.design.cache_clear()
        cusum_module._CURVES.clear()
        d = live.design(*args)
        return None if d is None else (d.p0, d.p1, d.m, d.g, d.limit)

    compiled = fresh()
    monkeypatch.setattr(cusum_module, "_native", None)
    assert fresh() == compiled
    assert compiled is not None
