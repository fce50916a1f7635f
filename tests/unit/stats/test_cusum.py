"""Tabular CUSUM, Bernoulli CUSUM (exact lattice ARL, choose_h), risk-adjusted CUSUM."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.stats import (
    BernoulliCusum,
    BernoulliCusumDesign,
    CusumState,
    RiskAdjustedCusum,
    StatsError,
    bernoulli_cusum,
    bernoulli_cusum_arl,
    choose_h,
    cusum,
    llr_gamma,
    risk_adjusted_cusum,
    simulate_arl,
)
from shared.stats.cusum import (
    ARL_RESOLVED_MAX,
    MAX_LATTICE_CELLS,
    lattice_arl,
    lattice_cells,
    max_lattice_limit,
)

from .helpers import FAST, json_roundtrip

# Montgomery, Introduction to Statistical Quality Control, 6th ed., Example 9.1 (Tables
# 9.1 and 9.2): 30 observations, mu0 = 10, sigma = 1, k = 0.5, h = 5; the first 20 from
# N(10, 1), the last 10 after the mean moved to 11.  C+ as tabulated for periods 1..29.
MONTGOMERY_X = [9.45, 7.99, 9.29, 11.66, 12.16, 10.18, 8.04, 11.46, 9.20, 10.34,
                9.03, 11.47, 10.51, 9.40, 10.08, 9.37, 10.62, 10.31, 8.52, 10.84,
                10.90, 9.33, 12.29, 11.50, 10.60, 11.08, 10.38, 11.62, 11.31, 10.52]  # fmt: skip
MONTGOMERY_C_PLUS = [0.0, 0.0, 0.0, 1.16, 2.82, 2.50, 0.04, 1.00, 0.0, 0.0,
                     0.0, 0.97, 0.98, 0.0, 0.0, 0.0, 0.12, 0.0, 0.0, 0.34,
                     0.74, 0.0, 1.79, 2.79, 2.89, 3.47, 3.35, 4.47, 5.28]  # fmt: skip


def test_montgomery_example_9_1() -> None:
    """C+ matches the book to its 2 decimals; the first signal is at period 29."""
    points = cusum([x - 10.0 for x in MONTGOMERY_X], k=0.5, h=5.0)
    assert [round(p.upper, 2) for p in points[:29]] == MONTGOMERY_C_PLUS
    first = next(p for p in points if p.signal)
    assert first.t == 29
    assert first.upper_signal
    assert not first.lower_signal


@FAST
@given(
    zs=st.lists(st.floats(-6, 6, allow_nan=False), max_size=120),
    split=st.data(),
    k=st.floats(0.0, 1.5),
    h=st.floats(0.5, 10),
)
def test_tabular_streaming_equals_batch_for_any_split(
    zs: list[float], split: st.DataObject, k: float, h: float
) -> None:
    cut = split.draw(st.integers(0, len(zs)))
    state = CusumState(k, h)
    got = [state.update(z) for z in zs[:cut]]
    state = CusumState.from_dict(json_roundtrip(state.to_dict()))
    got += [state.update(z) for z in zs[cut:]]
    assert got == cusum(zs, k, h)


@FAST
@given(zs=st.lists(st.floats(-20, 0, allow_nan=False), max_size=200))
def test_tabular_never_signals_upward_on_points_at_or_below_the_centre(zs: list[float]) -> None:
    assert not any(p.upper_signal or p.upper > 0 for p in cusum(zs))


def test_reference_value_gamma_lies_between_p0_and_p1() -> None:
    for p0, p1 in [(0.01, 0.02), (0.05, 0.1), (0.2, 0.5), (0.001, 0.01)]:
        c, gamma = llr_gamma(p0, p1)
        assert p0 < gamma < p1
        # W = c (X - γ) reproduces the log-likelihood ratio of a single verdict
        assert c * (1 - gamma) == pytest.approx(math.log(p1 / p0))
        assert -c * gamma == pytest.approx(math.log((1 - p1) / (1 - p0)))


@pytest.mark.parametrize("resolution", [None, 1, 3])
def test_effective_p1_has_the_lattice_reference_value(resolution: int | None) -> None:
    design = BernoulliCusumDesign.create(0.02, 0.04, h=5.0, resolution=resolution)
    _, gamma = llr_gamma(design.p0, design.p1_effective)
    assert gamma == pytest.approx(design.g / design.m, rel=1e-10)
    if resolution is None:
        assert abs(design.gamma - llr_gamma(0.02, 0.04)[1]) <= 0.01 * design.gamma


def test_reynolds_stoumbos_lattice_with_unit_resolution() -> None:
    """Resolution 1 is Reynolds & Stoumbos' γ = 1/m with m = round(1/γ)."""
    design = BernoulliCusumDesign.create(0.01, 0.02, h=5.0, resolution=1)
    _, gamma = llr_gamma(0.01, 0.02)
    assert design.g == 1
    assert design.m == round(1 / gamma)
    assert design.up == design.m - 1


def _dense_lattice_arl(up: int, down: int, limit: int, p: float) -> float:
    """Independent check: absorbing-chain fundamental matrix N = (I - Q)^-1, built densely."""
    q = np.zeros((limit, limit))
    for s in range(limit):
        if s + up < limit:
            q[s, s + up] += p
        q[s, max(0, s - down)] += 1 - p
    return float(np.linalg.solve(np.eye(limit) - q, np.ones(limit))[0])


def _dense_arl(design: BernoulliCusumDesign, p: float) -> float:
    return _dense_lattice_arl(design.up, design.g, design.limit, p)


@pytest.mark.parametrize(
    ("p0", "p1", "h", "resolution"),
    [(0.05, 0.1, 4.0, 1), (0.02, 0.05, 3.0, None), (0.1, 0.2, 6.0, 2), (0.3, 0.45, 5.0, None)],
)
def test_lattice_arl_matches_a_dense_markov_chain(
    p0: float, p1: float, h: float, resolution: int | None
) -> None:
    design = BernoulliCusumDesign.create(p0, p1, h, resolution)
    for p in (p0, (p0 + p1) / 2, p1, 0.9):
        assert bernoulli_cusum_arl(design, p) == pytest.approx(_dense_arl(design, p), rel=1e-9)
        # the same chain by its lattice alone (up, down, limit)
        assert lattice_arl(design.up, design.g, design.limit, p) == bernoulli_cusum_arl(design, p)


@FAST
@given(
    up=st.integers(1, 40),
    down=st.integers(1, 40),
    limit=st.integers(1, 120),
    p=st.floats(0.001, 1.0),
)
def test_lattice_arl_on_any_band_matches_a_dense_chain(
    up: int, down: int, limit: int, p: float
) -> None:
    """Every band shape, including a limit within the step sizes, through the C pass (or
    LAPACK's gbsv, gtsv for a tridiagonal band, without it: test_lattice.py checks the two
    agree, and the C pass against exact rational arithmetic).
    (The system's condition number grows with the ARL: so does the two solvers' difference;
    past ARL_RESOLVED_MAX neither solution means anything, and the ARL is reported infinite.)"""
    arl = lattice_arl(up, down, limit, p)
    assert arl >= 1.0
    dense = _dense_lattice_arl(up, down, limit, p)
    if 0 < dense < ARL_RESOLVED_MAX / 1e3:
        assert arl == pytest.approx(dense, rel=max(1e-9, 1e-14 * dense))
    else:
        assert arl > ARL_RESOLVED_MAX / 1e4


def test_lattice_arl_small_cases_by_hand() -> None:
    """limit = 1: every error signals, ARL = 1/p (geometric); p = 0: never signals."""
    design = BernoulliCusumDesign(0.05, 0.1, m=14, g=1, limit=1)
    assert bernoulli_cusum_arl(design, 0.25) == pytest.approx(4.0)
    assert bernoulli_cusum_arl(design, 0.0) == math.inf


def test_lattice_arl_agrees_with_simulation() -> None:
    """Seeded Monte Carlo on the very detector; agreement within 4 standard errors."""
    design = choose_h(0.05, 0.1, target_arl0=400)
    exact0 = design.arl(0.05)
    exact1 = design.arl(0.1)
    sim0 = simulate_arl(lambda: BernoulliCusum(design).step, 0.05, 1, runs=600, seed=1)
    sim1 = simulate_arl(lambda: BernoulliCusum(design).step, 0.1, 1, runs=600, seed=2)
    assert abs(sim0.mean - exact0) < 4 * sim0.std_error
    assert abs(sim1.mean - exact1) < 4 * sim1.std_error


@pytest.mark.parametrize(
    ("p0", "p1", "target"), [(0.05, 0.1, 5000), (0.01, 0.02, 20000), (0.002, 0.006, 50000)]
)
def test_choose_h_is_the_smallest_interval_meeting_the_target(
    p0: float, p1: float, target: float
) -> None:
    design = choose_h(p0, p1, target)
    assert design.arl(p0) >= target
    smaller = BernoulliCusumDesign(p0, p1, design.m, design.g, design.limit - 1)
    assert smaller.arl(p0) < target
    assert design.arl(p1) < target / 10  # it does detect the shift, and much faster


@FAST
@given(
    verdicts=st.lists(st.booleans(), max_size=400),
    split=st.data(),
    p0=st.sampled_from([0.01, 0.03, 0.1]),
    ratio=st.sampled_from([1.5, 2.0, 3.0]),
)
def test_bernoulli_streaming_equals_batch_for_any_split(
    verdicts: list[bool], split: st.DataObject, p0: float, ratio: float
) -> None:
    design = BernoulliCusumDesign.create(p0, p0 * ratio, h=4.0)
    cut = split.draw(st.integers(0, len(verdicts)))
    state = BernoulliCusum(design)
    got = [state.update(v) for v in verdicts[:cut]]
    state = BernoulliCusum.from_dict(json_roundtrip(state.to_dict()))
    got += [state.update(v) for v in verdicts[cut:]]
    assert got == bernoulli_cusum(verdicts, design)


@FAST
@given(count=st.integers(0, 5000), p0=st.floats(0.001, 0.3))
def test_bernoulli_without_errors_never_signals(count: int, p0: float) -> None:
    design = BernoulliCusumDesign.create(p0, min(0.9, 2 * p0), h=1.0)
    state = BernoulliCusum(design)
    assert not any(state.update(False).signal for _ in range(count))
    assert state.s == 0


def test_bernoulli_matches_the_llr_cusum_it_approximates() -> None:
    """On the lattice B_t tracks max(0, B + X - γ) computed in floats with γ = g/m."""
    design = BernoulliCusumDesign.create(0.03, 0.06, h=4.0)
    rng = np.random.default_rng(5)
    b = 0.0
    state = BernoulliCusum(design)
    for x in rng.random(3000) < 0.05:
        b = max(0.0, b + float(x) - design.gamma)
        assert state.update(bool(x)).statistic == pytest.approx(b, abs=1e-9)


def test_bernoulli_step_requires_single_verdicts() -> None:
    state = BernoulliCusum(BernoulliCusumDesign.create(0.05, 0.1, 3.0))
    with pytest.raises(StatsError):
        state.step(1, 2)


@FAST
@given(
    outcomes=st.lists(st.booleans(), max_size=300),
    p0=st.floats(0.005, 0.5),
    ratio=st.floats(1.2, 5.0),
)
def test_risk_adjusted_with_constant_risk_is_the_llr_bernoulli_cusum(
    outcomes: list[bool], p0: float, ratio: float
) -> None:
    """Steiner et al. (2000): constant p_t = p0 gives the LLR CUSUM for p1 = Rp0/(1-p0+Rp0)."""
    p1 = ratio * p0 / (1 - p0 + ratio * p0)
    x = 0.0
    points = risk_adjusted_cusum([(y, p0) for y in outcomes], odds_ratio=ratio, h=3.0)
    for y, point in zip(outcomes, points, strict=True):
        w = math.log(p1 / p0) if y else math.log((1 - p1) / (1 - p0))
        x = max(0.0, x + w)
        assert point.weight == pytest.approx(w, rel=1e-12, abs=1e-15)
        assert point.statistic == pytest.approx(x, rel=1e-9, abs=1e-12)
        assert point.signal == (point.statistic >= 3.0)


@FAST
@given(
    items=st.lists(st.tuples(st.booleans(), st.floats(0.001, 0.999)), max_size=200),
    split=st.data(),
)
def test_risk_adjusted_streaming_equals_batch_for_any_split(
    items: list[tuple[bool, float]], split: st.DataObject
) -> None:
    cut = split.draw(st.integers(0, len(items)))
    state = RiskAdjustedCusum(2.0, 4.0)
    got = [state.update(y, p) for y, p in items[:cut]]
    state = RiskAdjustedCusum.from_dict(json_roundtrip(state.to_dict()))
    got += [state.update(y, p) for y, p in items[cut:]]
    assert got == risk_adjusted_cusum(items, 2.0, 4.0)


def test_risk_adjustment_weighs_errors_by_their_expected_probability() -> None:
    """An error on an easy item (low expected p) counts more than on a hard one."""
    chart = RiskAdjustedCusum(odds_ratio=2.0, h=4.0)
    assert chart.weight(True, 0.01) > chart.weight(True, 0.4) > 0
    assert chart.weight(False, 0.4) < chart.weight(False, 0.01) < 0


def test_invalid_designs() -> None:
    with pytest.raises(StatsError):
        llr_gamma(0.1, 0.05)
    with pytest.raises(StatsError):
        BernoulliCusumDesign(0.05, 0.1, m=5, g=5, limit=10)
    with pytest.raises(StatsError):
        RiskAdjustedCusum(odds_ratio=1.0)


def test_exact_arl_refuses_a_lattice_beyond_its_memory_bound() -> None:
    """h = 1e5 used to build a 2 GB matrix and a large target ARL0 to double h forever."""
    design = BernoulliCusumDesign.create(0.001, 0.002, 1e5)
    with pytest.raises(StatsError, match="too large for the exact ARL on this lattice"):
        design.arl(0.001)
    with pytest.raises(StatsError, match=r"target ARL0 1\.8e\+16 is out of reach"):
        choose_h(0.001, 0.002, 1.8e16)
    top = max_lattice_limit(design.up, design.g)
    assert lattice_cells(design.up, design.g, top) <= MAX_LATTICE_CELLS
    assert math.isfinite(BernoulliCusumDesign(0.001, 0.002, design.m, design.g, top).arl(0.001))


@pytest.mark.parametrize(("p0", "p1"), [(1e-300, 2e-300), (1e-12, 2e-12), (0.99, 0.995)])
def test_rates_beyond_the_arithmetic_are_refused_as_statistics_errors(p0: float, p1: float) -> None:
    """p0 = 1e-300 used to divide by zero (γ underflows) and 1e-12 or 0.99 to fail in
    scipy's root finder for the effective p1: both crashed `qwatch analyze`, and the first
    a scorer designing a chart for a configured baseline that small."""

    def effective_p1() -> float:
        return BernoulliCusumDesign.create(p0, p1, 5.0).p1_effective

    with pytest.raises(StatsError, match="beyond the Bernoulli CUSUM's arithmetic"):
        effective_p1()


@FAST
@given(
    verdicts=st.lists(st.booleans(), max_size=400),
    p0=st.sampled_from([0.01, 0.03, 0.1]),
    ratio=st.sampled_from([1.5, 2.0, 3.0]),
    h=st.sampled_from([0.5, 2.0, 4.0]),
)
def test_bernoulli_add_is_the_lattice_step_update_takes(
    verdicts: list[bool], p0: float, ratio: float, h: float
) -> None:
    """``add`` (the live scorer's step, without the point) moves S and t as the recursion
    S = max(0, S - g) or S + up does, signals at S >= limit, and agrees with ``update``."""
    design = BernoulliCusumDesign.create(p0, p0 * ratio, h=h)
    stepped, updated = BernoulliCusum(design), BernoulliCusum(design)
    s = 0
    for t, v in enumerate(verdicts, start=1):
        s = s + design.up if v else max(0, s - design.g)
        signal = stepped.add(v)
        point = updated.update(v)
        assert (stepped.s, stepped.t, signal) == (s, t, s >= design.limit)
        assert (updated.s, updated.t, point.signal) == (s, t, signal)
