"""Probability limits for subgroup error counts (binomial and beta-binomial predictive)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.stats import Baseline, StatsError
from shared.stats.problimits import THREE_SIGMA_ALPHA, CountModel, alpha_for_sigmas

from .helpers import FAST


def _binom_sf(k: int, n: int, p: float) -> float:
    """P(E >= k) for Binomial(n, p) by exact summation (independent of scipy)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1))


def _betabinom_pmf(i: int, n: int, a: float, b: float) -> float:
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    log_beta_i = math.lgamma(i + a) + math.lgamma(n - i + b) - math.lgamma(n + a + b)
    return math.comb(n, i) * math.exp(log_beta_i - log_beta)


def test_alpha_for_three_sigmas() -> None:
    """Φ(-3) = 0.001349898...; α for 2σ is Φ(-2) = 0.0227501..."""
    assert alpha_for_sigmas(3.0) == pytest.approx(0.0013498980316301, rel=1e-12)
    assert alpha_for_sigmas(2.0) == pytest.approx(0.0227501319481792, rel=1e-12)
    assert alpha_for_sigmas(3.0) == THREE_SIGMA_ALPHA


@pytest.mark.parametrize(("n", "p0"), [(20, 0.05), (50, 0.2313), (200, 0.01), (37, 0.5)])
def test_standard_given_counts_are_the_exact_binomial_tails(n: int, p0: float) -> None:
    model = CountModel(p0)
    alpha = THREE_SIGMA_ALPHA
    k_hi = model.upper_count(n, alpha)
    assert _binom_sf(k_hi, n, p0) <= alpha
    assert k_hi == 0 or _binom_sf(k_hi - 1, n, p0) > alpha
    k_lo = model.lower_count(n, alpha)
    assert 1 - _binom_sf(k_lo + 1, n, p0) <= alpha or k_lo == -1
    assert 1 - _binom_sf(k_lo + 2, n, p0) > alpha
    assert model.sigma(n) == pytest.approx(math.sqrt(p0 * (1 - p0) / n), rel=1e-12)


def test_small_counts_where_normal_limits_are_wrong() -> None:
    """n = 20, p0 = 5%: the 3σ normal UCL is 0.196 (4 errors), but P(E >= 4) = 1.6%,
    twelve times the nominal 0.135%; the probability limit needs 6 errors
    (P(E >= 5) = 0.26% is still above 0.135%)."""
    model = CountModel(0.05)
    normal_ucl = 0.05 + 3 * math.sqrt(0.05 * 0.95 / 20)
    assert math.floor(normal_ucl * 20) + 1 == 4
    assert _binom_sf(4, 20, 0.05) > 10 * THREE_SIGMA_ALPHA
    assert model.upper_count(20, THREE_SIGMA_ALPHA) == 6
    assert model.lower_count(20, THREE_SIGMA_ALPHA) == -1  # 0 errors is not unusual


def test_estimated_baseline_uses_the_beta_binomial_predictive() -> None:
    model = CountModel(0.02, phase1_errors=10, phase1_n=500)
    a, b = 10.5, 490.5
    n = 120
    for k in (0, 3, 7, 12):
        expected = sum(_betabinom_pmf(i, n, a, b) for i in range(k, n + 1))
        assert model.tail(k, n) == pytest.approx(expected, rel=1e-9)


def test_short_phase_one_widens_the_limits() -> None:
    """Same p̄ = 2%: a 500-verdict baseline is less certain than a standard, so wider."""
    short = CountModel(0.02, 10, 500)
    standard = CountModel(0.02)
    long = CountModel(0.02, 20_000, 1_000_000)
    n = 400
    assert short.upper_count(n, THREE_SIGMA_ALPHA) > standard.upper_count(n, THREE_SIGMA_ALPHA)
    assert long.upper_count(n, THREE_SIGMA_ALPHA) == standard.upper_count(n, THREE_SIGMA_ALPHA)
    assert short.sigma(n) > standard.sigma(n)


def test_a_baseline_without_errors_still_has_limits() -> None:
    model = CountModel.from_baseline(Baseline(0.0, n_total=800, errors_total=0, n_subgroups=8))
    k_hi = model.upper_count(100, THREE_SIGMA_ALPHA)
    assert 1 <= k_hi <= 100
    assert model.lower_count(100, THREE_SIGMA_ALPHA) == -1


@FAST
@given(
    p0=st.floats(0.001, 0.6),
    n=st.integers(1, 3000),
    sigmas=st.floats(1.5, 4.0),
    phase1=st.one_of(
        st.just((0, 0)),
        st.integers(1, 5000).flatmap(lambda m: st.tuples(st.integers(0, m), st.just(m))),
    ),
)
def test_counts_satisfy_their_definition(
    p0: float, n: int, sigmas: float, phase1: tuple[int, int]
) -> None:
    model = CountModel(p0, *phase1)
    alpha = alpha_for_sigmas(sigmas)
    k_hi = model.upper_count(n, alpha)
    k_lo = model.lower_count(n, alpha)
    assert 0 <= k_hi <= n + 1
    assert -1 <= k_lo < k_hi
    assert model.sf(k_hi, n) <= alpha or k_hi == n + 1
    assert k_hi == 0 or model.sf(k_hi - 1, n) > alpha
    assert k_lo == -1 or model.cdf(k_lo, n) <= alpha
    assert model.cdf(k_lo + 1, n) > alpha or k_lo == n


def test_invalid_arguments() -> None:
    with pytest.raises(StatsError):
        CountModel(0.1, 5, 3)
    with pytest.raises(StatsError):
        CountModel(0.1).upper_count(0, 0.01)
    with pytest.raises(StatsError):
        CountModel(0.1).upper_count(10, 0.7)
