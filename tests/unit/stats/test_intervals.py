"""Confidence intervals, sample size, posterior probability of meeting a target."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, optimize, stats

from shared.stats import (
    IntervalMethod,
    StatsError,
    agresti_coull_interval,
    jeffreys_interval,
    prob_at_least,
    proportion_interval,
    sample_size_for_margin,
    wilson_interval,
)

from .helpers import FAST

METHODS: tuple[IntervalMethod, ...] = ("wilson", "jeffreys", "agresti_coull")

# Newcombe, R. G. (1998), "Two-sided confidence intervals for the single proportion:
# comparison of seven methods", Statistics in Medicine 17:857-872, Table II, method 3
# (Wilson score interval without continuity correction), 95% intervals, 4 decimals.
NEWCOMBE_WILSON = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
]


@pytest.mark.parametrize(("x", "n", "lower", "upper"), NEWCOMBE_WILSON)
def test_wilson_reproduces_newcombe_1998(x: int, n: int, lower: float, upper: float) -> None:
    ci = wilson_interval(x, n)
    assert ci.lower == pytest.approx(lower, abs=5e-5)
    assert ci.upper == pytest.approx(upper, abs=5e-5)
    assert ci.method == "wilson"
    assert ci.confidence == 0.95


@pytest.mark.parametrize(("x", "n"), [(81, 263), (15, 148), (0, 20), (1, 29), (7, 7), (3, 1000)])
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_matches_scipy(x: int, n: int, confidence: float) -> None:
    """Independent implementation: scipy.stats.binomtest(...).proportion_ci('wilson')."""
    ref = stats.binomtest(x, n).proportion_ci(confidence_level=confidence, method="wilson")
    ci = wilson_interval(x, n, confidence)
    assert ci.lower == pytest.approx(ref.low, abs=1e-12)
    assert ci.upper == pytest.approx(ref.high, abs=1e-12)


def _beta_quantile_by_quadrature(q: float, a: float, b: float) -> float:
    """Beta quantile from numerically integrating the density (independent of betaincinv)."""
    norm = math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))

    def cdf(x: float) -> float:
        value, _ = integrate.quad(lambda t: t ** (a - 1) * (1 - t) ** (b - 1) / norm, 0.0, x)
        return float(value)

    return float(optimize.brentq(lambda x: cdf(x) - q, 1e-12, 1 - 1e-12, xtol=1e-13))


@pytest.mark.parametrize(("x", "n"), [(1, 10), (3, 50), (12, 40), (81, 263)])
def test_jeffreys_is_the_beta_posterior_quantile(x: int, n: int) -> None:
    """Jeffreys bounds = Beta(x+1/2, n-x+1/2) quantiles, checked by quadrature.

    No published table was confirmed for these cases, so the reference is computed an
    independent way (numerical integration of the Beta density + root finding).
    """
    ci = jeffreys_interval(x, n)
    a, b = x + 0.5, n - x + 0.5
    assert ci.lower == pytest.approx(_beta_quantile_by_quadrature(0.025, a, b), abs=1e-8)
    assert ci.upper == pytest.approx(_beta_quantile_by_quadrature(0.975, a, b), abs=1e-8)


def test_jeffreys_endpoint_fixes() -> None:
    """Brown, Cai & DasGupta (2001): lower = 0 at x = 0 and upper = 1 at x = n."""
    zero = jeffreys_interval(0, 30)
    full = jeffreys_interval(30, 30)
    assert zero.lower == 0.0
    assert zero.upper == pytest.approx(stats.beta.ppf(0.975, 0.5, 30.5), rel=1e-10)
    assert full.upper == 1.0
    assert full.lower == pytest.approx(stats.beta.ppf(0.025, 30.5, 0.5), rel=1e-10)


def test_agresti_coull_by_hand() -> None:
    """The Agresti & Coull (1998) recipe written out with the stdlib normal quantile."""
    x, n = 4, 25
    z = NormalDist().inv_cdf(0.975)
    n_t = n + z * z
    p_t = (x + z * z / 2) / n_t
    half = z * math.sqrt(p_t * (1 - p_t) / n_t)
    ci = agresti_coull_interval(x, n)
    assert ci.lower == pytest.approx(p_t - half, abs=1e-12)
    assert ci.upper == pytest.approx(p_t + half, abs=1e-12)


def test_agresti_coull_is_clipped_at_zero() -> None:
    assert agresti_coull_interval(0, 10).lower == 0.0


@pytest.mark.parametrize("method", METHODS)
def test_no_data_gives_the_unit_interval(method: IntervalMethod) -> None:
    ci = proportion_interval(0, 0, method=method)
    assert (ci.lower, ci.upper) == (0.0, 1.0)


def test_wald_is_not_offered() -> None:
    with pytest.raises(StatsError, match="never Wald"):
        proportion_interval(3, 10, method="wald")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("x", "n", "confidence"), [(-1, 10, 0.95), (11, 10, 0.95), (1, 10, 1.0), (1, 10, 0.0)]
)
def test_invalid_arguments(x: int, n: int, confidence: float) -> None:
    with pytest.raises(StatsError):
        wilson_interval(x, n, confidence)


@FAST
@given(
    n=st.integers(1, 2000),
    data=st.data(),
    confidence=st.floats(0.8, 0.999),
    method=st.sampled_from(METHODS),
)
def test_interval_is_in_unit_range_and_contains_the_estimate(
    n: int, data: st.DataObject, confidence: float, method: IntervalMethod
) -> None:
    x = data.draw(st.integers(0, n))
    ci = proportion_interval(x, n, confidence, method)
    assert 0.0 <= ci.lower <= ci.upper <= 1.0
    assert ci.contains(x / n)


@FAST
@given(n=st.integers(1, 2000), data=st.data(), confidence=st.floats(0.5, 0.999))
def test_agresti_coull_contains_wilson(n: int, data: st.DataObject, confidence: float) -> None:
    """Brown, Cai & DasGupta (2001): the Agresti-Coull interval always contains Wilson's."""
    x = data.draw(st.integers(0, n))
    ac = agresti_coull_interval(x, n, confidence)
    wi = wilson_interval(x, n, confidence)
    assert ac.lower <= wi.lower + 1e-12
    assert ac.upper >= wi.upper - 1e-12


@FAST
@given(n=st.integers(1, 500), data=st.data())
def test_higher_confidence_gives_wider_intervals(n: int, data: st.DataObject) -> None:
    x = data.draw(st.integers(0, n))
    for method in METHODS:
        narrow = proportion_interval(x, n, 0.9, method)
        wide = proportion_interval(x, n, 0.99, method)
        assert wide.lower <= narrow.lower
        assert wide.upper >= narrow.upper


def test_complement_gives_the_accuracy_interval() -> None:
    errors = wilson_interval(5, 100)
    accuracy = errors.complement()
    assert accuracy.lower == pytest.approx(1 - errors.upper)
    assert accuracy.upper == pytest.approx(1 - errors.lower)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("p", "margin"), [(0.5, 0.03), (0.05, 0.01), (0.02, 0.005), (0.0, 0.01)])
def test_sample_size_is_the_smallest_that_reaches_the_margin(
    method: IntervalMethod, p: float, margin: float
) -> None:
    n = sample_size_for_margin(p, margin, 0.95, method)

    def half_width(size: int) -> float:
        ci = proportion_interval(p * size, size, 0.95, method)
        return ci.width / 2

    assert half_width(n) <= margin
    assert half_width(n - 1) > margin


def test_sample_size_near_half_is_close_to_the_classical_formula() -> None:
    """Away from 0 and 1 every method needs about z² p (1 - p) / m² = 1067.1 at p=.5, m=.03."""
    classical = NormalDist().inv_cdf(0.975) ** 2 * 0.25 / 0.03**2
    for method in METHODS:
        n = sample_size_for_margin(0.5, 0.03, 0.95, method)
        assert abs(n - classical) < 6


def test_prob_at_least_closed_form_with_uniform_prior() -> None:
    """Uniform prior and no error in n: posterior Beta(n+1, 1), so P(acc >= t) = 1 - t^(n+1)."""
    for n, target in [(10, 0.9), (50, 0.95), (200, 0.99)]:
        expected = 1 - target ** (n + 1)
        assert prob_at_least(n, n, target, prior=(1.0, 1.0)) == pytest.approx(expected, rel=1e-12)


def test_prob_at_least_matches_the_beta_survival_function() -> None:
    """Default Jeffreys prior: P = Beta(s + 1/2, n - s + 1/2).sf(target)."""
    value = prob_at_least(470, 500, 0.92)
    assert value == pytest.approx(stats.beta.sf(0.92, 470.5, 30.5), rel=1e-10)
    assert 0.0 < value < 1.0


@FAST
@given(n=st.integers(0, 1000), data=st.data(), low=st.floats(0.0, 1.0), high=st.floats(0.0, 1.0))
def test_prob_at_least_decreases_with_the_target(
    n: int, data: st.DataObject, low: float, high: float
) -> None:
    s = data.draw(st.integers(0, n))
    low, high = min(low, high), max(low, high)
    assert prob_at_least(s, n, low) >= prob_at_least(s, n, high) - 1e-12
    assert 0.0 <= prob_at_least(s, n, high) <= 1.0


@given(
    n=st.integers(1, 5_000),
    data=st.data(),
    tail=st.floats(1e-9, 0.5),
)
@FAST
def test_the_exact_upper_bound_is_the_binomial_tests_boundary(
    n: int, data: st.DataObject, tail: float
) -> None:
    """Clopper-Pearson: at the bound, P(X <= x) is the tail, so a proportion above the bound
    is exactly one the one-sided binomial test rejects at that tail."""
    from shared.stats.intervals import exact_upper_bound

    x = data.draw(st.integers(0, n))
    upper = exact_upper_bound(x, n, tail)
    if x == n:
        assert upper == 1.0
        return
    assert x / n <= upper < 1.0
    assert stats.binom.cdf(x, n, upper) == pytest.approx(tail, rel=1e-6)


@pytest.mark.parametrize(("p", "n"), [(0.9, 30), (0.9, 100), (0.9, 1_000), (0.99, 300)])
def test_the_exact_bound_falls_under_the_true_rate_at_most_its_tail(p: float, n: int) -> None:
    """What the below-target rule needs of its bound, computed exactly over every count: for
    a rate p, P(bound < p) <= tail, here at the rule's default tail (8.3e-6). The Wilson
    bound at the same tail does not hold it where the count is skewed (a 99% rate over 300:
    over 30 times the tail), which is why the rule is exact."""
    from shared.stats.intervals import exact_upper_bound, wilson_interval

    tail = 0.1 / 500 / 24
    xs = range(n + 1)
    exact = sum(stats.binom.pmf(x, n, p) for x in xs if exact_upper_bound(x, n, tail) < p)
    assert exact <= tail
    if (p, n) == (0.99, 300):
        wilson = sum(
            stats.binom.pmf(x, n, p) for x in xs if wilson_interval(x, n, 1 - 2 * tail).upper < p
        )
        assert wilson > 30 * tail
