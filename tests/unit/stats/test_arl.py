"""ARL of EWMA and CUSUM designs against published tables; design helpers; Monte Carlo.

Most reference values below are the published figures that the R package ``spc`` (Knoth)
lists beside its own examples (``xewma.arl``, ``xcusum.arl``), each from the original paper.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from shared.stats import (
    Baseline,
    CusumState,
    EwmaState,
    StatsError,
    cusum_arl,
    cusum_design,
    cusum_h_for_arl0,
    ewma_arl,
    ewma_design,
    ewma_limit_for_arl0,
    simulate_arl,
    standardize,
)

SHIFTS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0]

# Lucas & Crosier (1982), Technometrics 24, Table 1: two-sided CUSUM, k = 0.5, h = 4.
LUCAS_CROSIER_H4 = [168.0, 74.2, 26.6, 13.3, 8.38, 4.75, 3.34, 2.62, 2.19, 1.71, 1.31]


@pytest.mark.parametrize(("shift", "expected"), list(zip(SHIFTS, LUCAS_CROSIER_H4, strict=True)))
def test_cusum_lucas_crosier_1982(shift: float, expected: float) -> None:
    assert cusum_arl(0.5, 4.0, shift) == pytest.approx(expected, rel=0.005, abs=0.006)


def test_cusum_montgomery_in_control_values() -> None:
    """Montgomery (6th ed., Table 9.3): k = 1/2, ARL0 = 168 for h = 4 and 465 for h = 5."""
    assert cusum_arl(0.5, 4.0) == pytest.approx(168, rel=0.005)
    assert cusum_arl(0.5, 5.0) == pytest.approx(465, rel=0.005)


# Vance (1986), JQT 18, Table 1 (with Goel & Wu 1971): one-sided CUSUM, k = 0, h = 10.
VANCE = [(-0.25, 2071.51), (-0.125, 400.28), (0.0, 124.66), (0.125, 59.30),
         (0.25, 36.71), (0.5, 20.37), (0.75, 14.06), (1.0, 10.75)]  # fmt: skip


@pytest.mark.parametrize(("shift", "expected"), VANCE)
def test_cusum_vance_1986(shift: float, expected: float) -> None:
    # the paper prints 2 decimals; at 2071.51 our converged value differs by 0.003%
    tolerance = max(0.005, 5e-5 * expected)
    assert cusum_arl(0.0, 10.0, shift, sided="upper") == pytest.approx(expected, abs=tolerance)


def test_cusum_brook_evans_waldmann_and_sas() -> None:
    # Brook & Evans (1972) §4.3, one-sided k = 0.5, h = 3: L0 = 117.59, L(1.5) = 3.75.
    assert cusum_arl(0.5, 3.0, sided="upper") == pytest.approx(117.59, abs=0.01)
    assert cusum_arl(0.5, 3.0, 1.5, sided="upper") == pytest.approx(3.75, abs=0.005)
    # Waldmann (1986): one-sided k = 0.5, h = 3: 1963 at -0.5 and 17.35 at +0.5;
    # two-sided k = 0.6, h = 3, shift -0.2: 65.4.
    assert cusum_arl(0.5, 3.0, -0.5, sided="upper") == pytest.approx(1963, abs=0.5)
    assert cusum_arl(0.5, 3.0, 0.5, sided="upper") == pytest.approx(17.35, abs=0.005)
    assert cusum_arl(0.6, 3.0, -0.2) == pytest.approx(65.4, abs=0.1)
    # SAS/QC manual (1999): k = 0.25, h = 8, shift 2.5: one-sided 4.1500836225,
    # two-sided 4.1500826715 (our two-sided value uses 1/ARL = 1/ARL+ + 1/ARL-).
    assert cusum_arl(0.25, 8.0, 2.5, sided="upper") == pytest.approx(4.1500836225, rel=1e-7)
    assert cusum_arl(0.25, 8.0, 2.5) == pytest.approx(4.1500826715, rel=1e-6)


def test_cusum_markov_chain_agrees_with_the_integral_equation() -> None:
    for k, h, shift in [(0.5, 4.0, 0.0), (0.5, 5.0, 1.0), (0.25, 8.0, 0.5)]:
        exact = cusum_arl(k, h, shift)
        assert cusum_arl(k, h, shift, method="markov") == pytest.approx(exact, rel=2e-3)


# Lucas & Saccucci (1990), Technometrics 32, Table 3: two-sided EWMA, asymptotic limits.
LS_HALF = [(0.0, 500.0), (0.25, 255.0), (0.5, 88.8), (0.75, 35.9), (1.0, 17.5), (1.5, 6.53),
           (2.0, 3.63), (2.5, 2.50), (3.0, 1.93), (4.0, 1.34), (5.0, 1.07)]  # fmt: skip
LS_003 = [(0.0, 500.0), (0.25, 76.7), (0.5, 29.3), (0.75, 17.6), (1.0, 12.6), (1.5, 8.07),
          (2.0, 5.99), (2.5, 4.80), (3.0, 4.03), (4.0, 3.11), (5.0, 2.55)]  # fmt: skip


@pytest.mark.parametrize(("shift", "expected"), LS_HALF)
def test_ewma_lucas_saccucci_lambda_05(shift: float, expected: float) -> None:
    assert ewma_arl(0.5, 3.071, shift) == pytest.approx(expected, rel=0.005, abs=0.006)


@pytest.mark.parametrize(("shift", "expected"), LS_003)
def test_ewma_lucas_saccucci_lambda_003(shift: float, expected: float) -> None:
    assert ewma_arl(0.03, 2.437, shift) == pytest.approx(expected, rel=0.005, abs=0.006)


def test_ewma_crowder_waldmann_and_sas() -> None:
    # Crowder (1987), Table 1, two-sided, c = 2: λ = 0.5 → 26.45 (shift 0), 4.91 (shift 1);
    # λ = 0.05 → 127.53, 8.38.
    assert ewma_arl(0.5, 2.0) == pytest.approx(26.45, abs=0.005)
    assert ewma_arl(0.5, 2.0, 1.0) == pytest.approx(4.91, abs=0.005)
    assert ewma_arl(0.05, 2.0) == pytest.approx(127.53, abs=0.005)
    assert ewma_arl(0.05, 2.0, 1.0) == pytest.approx(8.38, abs=0.005)
    # Waldmann (1986), Table 1, two-sided with c = 2 sqrt((2-λ)/λ): 104.0 (λ=.75), 1952 (λ=.5).
    assert ewma_arl(0.75, 2 * math.sqrt(1.25 / 0.75)) == pytest.approx(104.0, abs=0.05)
    assert ewma_arl(0.5, 2 * math.sqrt(1.5 / 0.5)) == pytest.approx(1952, abs=0.5)
    # SAS/QC manual (1999): λ = 0.25, c = 3, shift 1 → 11.154267016.
    assert ewma_arl(0.25, 3.0, 1.0) == pytest.approx(11.154267016, rel=1e-9)


def test_ewma_montgomery_designs_have_arl0_500() -> None:
    """Montgomery (6th ed., Table 9.11, after Lucas & Saccucci): L=2.814 at λ=0.1, 2.962 at λ=0.2."""
    assert ewma_arl(0.1, 2.814) == pytest.approx(500, rel=0.002)
    assert ewma_arl(0.2, 2.962) == pytest.approx(500, rel=0.002)
    assert ewma_arl(0.1, 2.814, 1.0) == pytest.approx(10.3, abs=0.05)
    assert ewma_arl(0.2, 2.962, 1.0) == pytest.approx(10.5, abs=0.05)


def test_ewma_with_lambda_one_is_the_shewhart_chart() -> None:
    """λ = 1: ARL = 1 / P(|Z - shift| > L), in closed form."""
    for shift in (0.0, 1.0, 2.0):
        p = NormalDist().cdf(-3.0 - shift) + NormalDist().cdf(-3.0 + shift)
        assert ewma_arl(1.0, 3.0, shift) == pytest.approx(1 / p, rel=1e-9)


def test_ewma_markov_chain_agrees_with_the_integral_equation() -> None:
    for lam, width, shift in [(0.1, 2.814, 0.0), (0.5, 3.071, 1.0), (0.03, 2.437, 0.5)]:
        exact = ewma_arl(lam, width, shift)
        assert ewma_arl(lam, width, shift, method="markov", states=401) == pytest.approx(
            exact, rel=2e-3
        )


def test_design_helpers_recover_the_published_designs() -> None:
    assert ewma_limit_for_arl0(0.1, 500) == pytest.approx(2.814, abs=0.001)
    assert ewma_limit_for_arl0(0.2, 500) == pytest.approx(2.962, abs=0.001)
    assert cusum_h_for_arl0(0.5, 465) == pytest.approx(5.0, abs=0.005)
    assert cusum_h_for_arl0(0.5, 168) == pytest.approx(4.0, abs=0.005)


def test_design_choice_for_a_shift() -> None:
    small = ewma_design(500, 0.5, lambdas=(0.05, 0.1, 0.4))
    large = ewma_design(500, 3.0, lambdas=(0.05, 0.1, 0.4))
    assert small.lam < large.lam  # small shifts want heavy smoothing
    assert small.arl0 == pytest.approx(500, rel=1e-6)
    design = cusum_design(500, 1.0)
    assert design.k == 0.5
    assert design.arl0 == pytest.approx(500, rel=1e-6)
    assert design.arl1 < 11


def test_simulated_arl_is_seeded_and_matches_the_normal_theory() -> None:
    """Tabular CUSUM on z-scores of large binomial subgroups behaves like normal data."""
    base = Baseline.from_standard(0.5)

    def factory() -> object:
        chart = CusumState(k=0.5, h=4.0)
        return lambda e, n: chart.update(standardize(e, n, base)).signal

    first = simulate_arl(factory, 0.5, 2000, runs=400, seed=7)  # type: ignore[arg-type]
    again = simulate_arl(factory, 0.5, 2000, runs=400, seed=7)  # type: ignore[arg-type]
    assert first == again
    assert abs(first.mean - cusum_arl(0.5, 4.0)) < 4 * first.std_error
    assert first.censored == 0


def test_simulate_arl_with_variable_sizes_and_censoring() -> None:
    est = simulate_arl(
        lambda: EwmaState(0.05).step, 0.05, [50, 400, 120], runs=5, seed=1, max_steps=20
    )
    assert est.runs == 5
    assert est.mean <= 20
    assert 0 <= est.censored <= 5
    with pytest.raises(StatsError):
        simulate_arl(lambda: EwmaState(0.05).step, 0.05, [], runs=5, seed=1)


def test_invalid_arguments() -> None:
    with pytest.raises(StatsError):
        ewma_arl(0.0, 3.0)
    with pytest.raises(StatsError):
        cusum_arl(0.5, 4.0, method="simulation")  # type: ignore[arg-type]
    with pytest.raises(StatsError):
        cusum_arl(0.5, 4.0, sided="both")  # type: ignore[arg-type]
