"""Probability limits for a subgroup's error count: exact tails, baseline uncertainty included.

The 3σ limits of :mod:`shared.stats.pchart` use the normal approximation.  For small
subgroups or small error rates the binomial count is discrete and skewed, and the normal
limits put far more (or less) than the nominal 0.135% in each tail.  Probability limits
take the tail areas from the count's own distribution instead (Montgomery §7.2, "probability
limits"):

    upper count  k⁺ = min { k : P(E >= k) <= α }      signal when errors >= k⁺
    lower count  k⁻ = max { k : P(E <= k) <= α }      signal when errors <= k⁻

with α the one-sided tail of L-sigma normal limits (:func:`alpha_for_sigmas`: Φ(-3) =
0.00135 for L = 3).  ``k⁺ = n + 1`` or ``k⁻ = -1`` mean that side cannot signal at this n.

The distribution of the count E of a subgroup of size n is:

* a **standard-given** baseline (``phase1_n = 0``): Binomial(n, p0);
* an **estimated** baseline (Phase I with ``phase1_errors`` errors in ``phase1_n``
  verdicts): the posterior predictive BetaBinomial(n, e + 1/2, n_b - e + 1/2), i.e. the
  binomial averaged over what the baseline says about p under a Jeffreys prior.  It is wider
  than the binomial by exactly the baseline's estimation error, so a short Phase I does not
  inflate the false-alarm rate, and it stays well defined for a baseline without errors.
  As ``phase1_n`` grows it tends to Binomial(n, p̄).

References:
    Montgomery, D. C. Introduction to Statistical Quality Control, 6th ed., §7.2.
    Bernardo, J. M. & Smith, A. F. M. (1994). Bayesian Theory, §5.2 (beta-binomial
    predictive distribution).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shared.stats._checks import check_closed_probability, check_positive
from shared.stats.errors import StatsError
from shared.stats.pchart import Baseline

__all__ = ["THREE_SIGMA_ALPHA", "CountModel", "alpha_for_sigmas"]


def alpha_for_sigmas(sigmas: float) -> float:
    """One-sided tail area of L-sigma normal limits, Φ(-L) (0.0013499 for L = 3)."""
    check_positive("sigmas", sigmas)
    from scipy import special  # (lazy: scipy costs the scorer ~1 s of CPU at start-up)

    return float(special.ndtr(-sigmas))


# alpha_for_sigmas(3.0), written out so that importing this module does not import scipy
# (tests/unit/stats/test_problimits.py holds the two equal)
THREE_SIGMA_ALPHA = 0.0013498980316300933
"""Φ(-3) ≈ 0.00135: the tail of each 3-sigma limit."""


@dataclass(frozen=True, slots=True)
class CountModel:
    """Distribution of a subgroup's error count under the baseline.

    Attributes:
        p0: in-control error proportion (the centre line); the tails come from it when the
            baseline is a standard (``phase1_n == 0``).
        phase1_errors: errors in the Phase I subgroups used (estimated baseline).
        phase1_n: verdicts in the Phase I subgroups used; 0 for a standard-given p0.
    """

    p0: float
    phase1_errors: int = 0
    phase1_n: int = 0

    def __post_init__(self) -> None:
        check_closed_probability("p0", self.p0)
        if self.phase1_n < 0 or not 0 <= self.phase1_errors <= self.phase1_n:
            raise StatsError("need 0 <= phase1_errors <= phase1_n")

    @classmethod
    def from_baseline(cls, baseline: Baseline) -> CountModel:
        """The model of a frozen :class:`~shared.stats.pchart.Baseline`."""
        return cls(baseline.p_bar, baseline.errors_total, baseline.n_total)

    def _dist(self, n: int) -> tuple[Any, tuple[float, ...]]:
        """The count's distribution family and its shape arguments for size ``n``. Not a
        frozen distribution: freezing costs milliseconds per call (scipy rebuilds the
        docstrings), and the scorer charts every closed subgroup."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise StatsError(f"subgroup size n must be an int >= 1, got {n!r}")
        from scipy import stats  # (lazy, as in alpha_for_sigmas)

        if self.phase1_n == 0:
            return stats.binom, (n, self.p0)
        a = self.phase1_errors + 0.5
        b = self.phase1_n - self.phase1_errors + 0.5
        return stats.betabinom, (n, a, b)

    def sigma(self, n: int) -> float:
        """Standard deviation of the error *proportion* E/n of a subgroup of size n.

        ``sqrt(p0 (1 - p0) / n)`` for a standard; for an estimated baseline the predictive
        standard deviation, larger by the baseline's estimation error.
        """
        family, shape = self._dist(n)
        return float(family.std(*shape)) / n

    def tail(self, errors: int, n: int) -> float:
        """Upper-tail probability P(E >= errors): how unusual so many errors are."""
        return self.sf(errors, n)

    def sf(self, k: int, n: int) -> float:
        """P(E >= k) for a subgroup of size n."""
        if k <= 0:
            return 1.0
        family, shape = self._dist(n)
        return float(family.sf(k - 1, *shape))

    def cdf(self, k: int, n: int) -> float:
        """P(E <= k) for a subgroup of size n."""
        if k < 0:
            return 0.0
        family, shape = self._dist(n)
        return float(family.cdf(k, *shape))

    def upper_count(self, n: int, alpha: float) -> int:
        """Smallest k with P(E >= k) <= alpha (n + 1 if no count is that unlikely)."""
        _check_alpha(alpha)
        family, shape = self._dist(n)
        guess = family.isf(alpha, *shape)
        k = n + 1 if not math.isfinite(guess) else min(n + 1, max(0, int(guess) + 1))
        while k > 0 and self.sf(k - 1, n) <= alpha:
            k -= 1
        while k <= n and self.sf(k, n) > alpha:
            k += 1
        return k

    def lower_count(self, n: int, alpha: float) -> int:
        """Largest k with P(E <= k) <= alpha (-1 if even 0 errors is not that unlikely)."""
        _check_alpha(alpha)
        family, shape = self._dist(n)
        guess = family.ppf(alpha, *shape)
        k = -1 if not math.isfinite(guess) else min(n, max(-1, int(guess) - 1))
        while k < n and self.cdf(k + 1, n) <= alpha:
            k += 1
        while k >= 0 and self.cdf(k, n) > alpha:
            k -= 1
        return k


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 0.5):
        raise StatsError(f"alpha must be in (0, 0.5), got {alpha!r}")
