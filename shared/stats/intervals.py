"""Confidence intervals for a proportion, sample sizes, and posterior accuracy probabilities.

A QA sample of ``n`` reviewed decisions with ``x`` found incorrect estimates the error
proportion ``p = x / n`` (accuracy is ``1 - p``).  Queues are often small, and error rates
are near 0, which is exactly where the textbook Wald interval ``p ± z sqrt(p(1-p)/n)``
fails: it has zero width at ``x = 0``, leaves ``[0, 1]``, and its coverage is erratic and
far below nominal even for moderate ``n`` (Brown, Cai & DasGupta 2001).  This module
therefore offers only intervals with good small-sample coverage:

Wilson score interval (Wilson 1927), with ``z = Φ⁻¹(1 - α/2)``::

    center = (x + z²/2) / (n + z²)
    half   = z / (n + z²) · sqrt(x (n - x) / n + z²/4)

Jeffreys interval (equal-tailed Bayesian interval under the Jeffreys prior Beta(1/2, 1/2))::

    lower = B⁻¹(α/2;     x + 1/2, n - x + 1/2)   (0 when x = 0)
    upper = B⁻¹(1 - α/2; x + 1/2, n - x + 1/2)   (1 when x = n)

Agresti-Coull interval (Agresti & Coull 1998), "add z²/2 successes and z²/2 failures"::

    ñ = n + z²,  p̃ = (x + z²/2) / ñ,  p̃ ± z sqrt(p̃ (1 - p̃) / ñ)   (clipped to [0, 1])

It has the same centre as Wilson and always contains the Wilson interval.

With ``n = 0`` (no data) every method returns ``[0, 1]``.

References:
    Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
    inference. JASA 22, 209-212.
    Agresti, A. & Coull, B. A. (1998). Approximate is better than "exact" for interval
    estimation of binomial proportions. The American Statistician 52, 119-126.
    Newcombe, R. G. (1998). Two-sided confidence intervals for the single proportion:
    comparison of seven methods. Statistics in Medicine 17, 857-872.
    Brown, L. D., Cai, T. T. & DasGupta, A. (2001). Interval estimation for a binomial
    proportion. Statistical Science 16, 101-133.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from shared.stats._checks import (
    check_closed_probability,
    check_confidence,
    check_positive,
)
from shared.stats.errors import StatsError

__all__ = [
    "Interval",
    "IntervalMethod",
    "agresti_coull_interval",
    "jeffreys_interval",
    "prob_at_least",
    "proportion_interval",
    "sample_size_for_margin",
    "wilson_interval",
]

IntervalMethod = Literal["wilson", "jeffreys", "agresti_coull"]
"""Names of the supported interval methods.  There is deliberately no ``"wald"``."""

_METHODS: tuple[str, ...] = get_args(IntervalMethod)


@dataclass(frozen=True, slots=True)
class Interval:
    """A two-sided confidence interval for a proportion.

    Attributes:
        lower: lower bound, in ``[0, 1]``.
        upper: upper bound, in ``[lower, 1]``.
        method: how it was computed (``"wilson"``, ``"jeffreys"`` or ``"agresti_coull"``).
        confidence: the nominal coverage, e.g. ``0.95``.
    """

    lower: float
    upper: float
    method: str
    confidence: float

    @property
    def width(self) -> float:
        """``upper - lower``."""
        return self.upper - self.lower

    def contains(self, p: float) -> bool:
        """Whether ``lower <= p <= upper``."""
        return self.lower <= p <= self.upper

    def complement(self) -> Interval:
        """The interval for ``1 - p`` (e.g. accuracy from an error-rate interval)."""
        return Interval(1.0 - self.upper, 1.0 - self.lower, self.method, self.confidence)


def _z(confidence: float) -> float:
    """Two-sided standard-normal quantile ``Φ⁻¹(1 - α/2)``."""
    check_confidence(confidence)
    from scipy import special  # (lazy: scipy costs the scorer ~1 s of CPU at start-up)

    return float(special.ndtri(0.5 + confidence / 2.0))


def _check_xn(x: float, n: float) -> None:
    if isinstance(x, bool) or isinstance(n, bool):
        raise StatsError("x and n must be numbers, not bools")
    if not (math.isfinite(n) and n >= 0):
        raise StatsError(f"n must be >= 0, got {n!r}")
    if not (math.isfinite(x) and 0 <= x <= n):
        raise StatsError(f"x must be in [0, n={n}], got {x!r}")


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def _wilson_bounds(x: float, n: float, z: float) -> tuple[float, float]:
    z2 = z * z
    denom = n + z2
    center = (x + z2 / 2.0) / denom
    spread = x * (n - x) / n if n > 0 else 0.0
    half = z / denom * math.sqrt(spread + z2 / 4.0)
    lower = 0.0 if x == 0 else _clip(center - half)
    upper = 1.0 if x == n else _clip(center + half)
    return lower, upper


def _jeffreys_bounds(x: float, n: float, confidence: float) -> tuple[float, float]:
    from scipy import special

    alpha = 1.0 - confidence
    a, b = x + 0.5, n - x + 0.5
    lower = 0.0 if x == 0 else float(special.betaincinv(a, b, alpha / 2.0))
    upper = 1.0 if x == n else float(special.betaincinv(a, b, 1.0 - alpha / 2.0))
    return lower, upper


def _agresti_coull_bounds(x: float, n: float, z: float) -> tuple[float, float]:
    z2 = z * z
    n_tilde = n + z2
    p_tilde = (x + z2 / 2.0) / n_tilde
    half = z * math.sqrt(p_tilde * (1.0 - p_tilde) / n_tilde)
    return _clip(p_tilde - half), _clip(p_tilde + half)


def _bounds(x: float, n: float, confidence: float, method: str) -> tuple[float, float]:
    if method == "wilson":
        return _wilson_bounds(x, n, _z(confidence))
    if method == "jeffreys":
        check_confidence(confidence)
        return _jeffreys_bounds(x, n, confidence)
    if method == "agresti_coull":
        return _agresti_coull_bounds(x, n, _z(confidence))
    raise StatsError(f"unknown interval method {method!r}; choose one of {_METHODS} (never Wald)")


def wilson_interval(x: float, n: float, confidence: float = 0.95) -> Interval:
    """Wilson score interval for ``x`` errors out of ``n`` (see the module docstring)."""
    return proportion_interval(x, n, confidence, "wilson")


def jeffreys_interval(x: float, n: float, confidence: float = 0.95) -> Interval:
    """Jeffreys interval with the Brown-Cai-DasGupta endpoint fixes at ``x = 0`` and ``x = n``."""
    return proportion_interval(x, n, confidence, "jeffreys")


def agresti_coull_interval(x: float, n: float, confidence: float = 0.95) -> Interval:
    """Agresti-Coull ("adjusted Wald") interval, clipped to ``[0, 1]``."""
    return proportion_interval(x, n, confidence, "agresti_coull")


def proportion_interval(
    x: float, n: float, confidence: float = 0.95, method: IntervalMethod = "wilson"
) -> Interval:
    """Confidence interval for a proportion ``x / n`` by the named method.

    Args:
        x: number of "events" (e.g. decisions found incorrect), ``0 <= x <= n``.  Usually
            an integer; non-integer (effective, weighted) counts are accepted.
        n: sample size, ``>= 0``; ``n = 0`` gives ``[0, 1]``.
        confidence: nominal two-sided coverage in ``(0, 1)``.
        method: ``"wilson"`` (default), ``"jeffreys"`` or ``"agresti_coull"``.
    """
    _check_xn(x, n)
    lower, upper = _bounds(x, n, confidence, method)
    if n == 0:  # no data: nothing is excluded (the formulas agree up to rounding)
        lower, upper = 0.0, 1.0
    return Interval(lower, upper, method, confidence)


def _half_width(p: float, n: int, confidence: float, method: str) -> float:
    lower, upper = _bounds(p * n, n, confidence, method)
    return (upper - lower) / 2.0


def sample_size_for_margin(
    p: float, margin: float, confidence: float = 0.95, method: IntervalMethod = "wilson"
) -> int:
    """Smallest ``n`` whose expected interval has half-width ``<= margin``.

    The half-width ``(upper - lower) / 2`` is evaluated at the planning value ``p`` (the
    error rate you expect), treating ``x = p n`` as continuous.  For ``p`` away from 0 and 1
    the answer is close to the classical ``z² p (1 - p) / margin²``; near 0 it is what the
    chosen small-sample interval really needs.

    Args:
        p: planning value of the error proportion, in ``[0, 1]``.
        margin: wanted half-width, in ``(0, 0.5)``.
        confidence: nominal coverage.
        method: interval method (``"wilson"``, ``"jeffreys"``, ``"agresti_coull"``).
    """
    check_closed_probability("p", p)
    check_positive("margin", margin)
    if margin >= 0.5:
        raise StatsError(f"margin must be < 0.5, got {margin}")
    check_confidence(confidence)
    if method not in _METHODS:
        raise StatsError(f"unknown interval method {method!r}; choose one of {_METHODS}")
    hi = 1
    while _half_width(p, hi, confidence, method) > margin:
        hi *= 2
        if hi > 1 << 40:
            raise StatsError("no sample size reaches that margin")
    lo = hi // 2  # half-width(lo) > margin, or lo == 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _half_width(p, mid, confidence, method) <= margin:
            hi = mid
        else:
            lo = mid
    return hi


def exact_upper_bound(x: int, n: int, tail: float) -> float:
    """One-sided Clopper-Pearson (exact) upper bound of a proportion, ``x`` of ``n``: the p
    at which P(X <= x | n, p) = ``tail``, i.e. the ``1 - tail`` quantile of Beta(x + 1,
    n - x); 1 when ``x == n``.

    Exact in the sense that matters for a rule: a proportion p0 lies above the bound iff
    the binomial test of "p >= p0" rejects at ``tail``, P(X <= x | p0) < ``tail``, so when
    the true proportion is p0 the bound falls under it with probability at most ``tail``,
    for every n. The score (Wilson) bound is only approximately so, and far out in the
    tail it is anti-conservative for a skewed count: at a tail of 8.3e-6, a 90% accuracy
    over 100 verdicts falls under its Wilson bound 14 times as often as the tail says, a 99%
    one over 300 32 times (Clopper & Pearson 1934; Brown, Cai & DasGupta 2001).
    """
    _check_xn(x, n)
    if not 0.0 < tail < 1.0:
        raise StatsError(f"tail must be in (0, 1), got {tail!r}")
    if x == n:
        return 1.0
    from scipy import special

    return float(special.betaincinv(x + 1, n - x, 1.0 - tail))


def prob_at_least(
    successes: int, n: int, target: float, prior: tuple[float, float] = (0.5, 0.5)
) -> float:
    """Posterior probability that the accuracy is at least ``target``.

    With ``successes`` correct decisions out of ``n`` reviewed and a Beta(a, b) prior on the
    accuracy, the posterior is Beta(a + successes, b + n - successes) and::

        P(accuracy >= target) = 1 - I_target(a + successes, b + n - successes)

    where ``I`` is the regularized incomplete beta function.  The default prior is the
    Jeffreys prior Beta(1/2, 1/2); ``(1, 1)`` is the uniform prior.

    Args:
        successes: correct decisions, ``0 <= successes <= n``.
        n: reviewed decisions, ``>= 0``.
        target: accuracy target in ``[0, 1]`` (e.g. a contract's 0.95).
        prior: ``(a, b)`` of the Beta prior on accuracy, both ``> 0``.
    """
    _check_xn(successes, n)
    check_closed_probability("target", target)
    a, b = prior
    check_positive("prior a", a)
    check_positive("prior b", b)
    from scipy import special

    return float(special.betaincc(a + successes, b + n - successes, target))
