"""EWMA chart of error proportions for subgroups of variable size, with the exact variance.

The statistic smooths the subgroup proportions ``x_t = errors_t / n_t``::

    Z_0 = p0
    Z_t = λ x_t + (1 - λ) Z_(t-1)

Under the in-control proportion p0 the x_t are independent with variance
``p0 (1 - p0) / n_t``, so the exact variance of Z_t is::

    Var(Z_t) = Σ_(j=1..t) (λ (1 - λ)^(t-j))² p0 (1 - p0) / n_j

kept incrementally in O(1) as::

    V_0 = 0
    V_t = (1 - λ)² V_(t-1) + λ² p0 (1 - p0) / n_t

and the limits are ``p0 ± L sqrt(V_t)`` (clamped to ``[0, 1]``).  With a constant n these
are the familiar time-varying EWMA limits, converging to ``p0 ± L σ sqrt(λ / (2 - λ))``;
with variable n they stay exact, widening after small subgroups.

The default design, λ = 0.1 and L = 2.814, has an in-control ARL of about 500 subgroups
for normal data with the asymptotic limits (Lucas & Saccucci 1990); the exact-variance limits
are narrower in the first few subgroups, so the real ARL0 is somewhat lower: measure it with
:func:`shared.stats.arl.simulate_arl` and choose L with
:func:`shared.stats.arl.ewma_limit_for_arl0`.

p0 comes from a frozen baseline (``Baseline.p_bar``) and never from the data being
monitored.

References:
    Roberts, S. W. (1959). Control chart tests based on geometric moving averages.
    Technometrics 1, 239-250.
    Lucas, J. M. & Saccucci, M. S. (1990). Exponentially weighted moving average control
    schemes: properties and enhancements. Technometrics 32, 1-12.
    Montgomery, D. C. Introduction to Statistical Quality Control, 6th ed., §9.2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shared.stats import _serde
from shared.stats._checks import check_count, check_open_probability, check_positive
from shared.stats.errors import StateFormatError, StatsError
from shared.stats.pchart import SubgroupLike, _as_subgroup

__all__ = ["EwmaPoint", "EwmaState", "ewma"]

DEFAULT_LAMBDA = 0.1
DEFAULT_EWMA_NSIGMAS = 2.814


@dataclass(frozen=True, slots=True)
class EwmaPoint:
    """The EWMA after one subgroup."""

    t: int
    """Subgroups seen so far (1 for the first)."""
    statistic: float
    """Z_t."""
    variance: float
    """Exact Var(Z_t) under p0."""
    lcl: float
    ucl: float
    upper_signal: bool
    """Z_t above the UCL: the error rate has gone up."""
    lower_signal: bool
    """Z_t below the LCL: the error rate has gone down."""

    @property
    def signal(self) -> bool:
        """Beyond either limit."""
        return self.upper_signal or self.lower_signal


class EwmaState:
    """O(1) incremental EWMA of subgroup error proportions (see the module docstring).

    Args:
        p0: in-control error proportion, in (0, 1) — the baseline's p̄.
        lam: smoothing constant λ in (0, 1].
        nsigmas: width L of the limits in standard deviations of Z_t.
    """

    __slots__ = ("lam", "nsigmas", "p0", "statistic", "t", "variance")

    KIND = "ewma"

    def __init__(
        self,
        p0: float,
        lam: float = DEFAULT_LAMBDA,
        nsigmas: float = DEFAULT_EWMA_NSIGMAS,
        *,
        statistic: float | None = None,
        variance: float = 0.0,
        t: int = 0,
    ) -> None:
        check_open_probability("p0", p0)
        check_positive("lam", lam)
        if lam > 1.0:
            raise StatsError(f"lam must be in (0, 1], got {lam}")
        check_positive("nsigmas", nsigmas)
        if variance < 0.0 or t < 0:
            raise StatsError("variance and t must be >= 0")
        if statistic is not None and not 0.0 <= statistic <= 1.0:
            raise StatsError(f"the EWMA of proportions lies in [0, 1], got {statistic}")
        self.p0 = p0
        self.lam = lam
        self.nsigmas = nsigmas
        self.statistic = p0 if statistic is None else statistic
        self.variance = variance
        self.t = t

    def update(self, errors: int, n: int) -> EwmaPoint:
        """Add one subgroup of ``n >= 1`` verdicts with ``errors`` errors."""
        check_count(errors, n)
        lam = self.lam
        keep = 1.0 - lam
        self.statistic = lam * (errors / n) + keep * self.statistic
        self.variance = keep * keep * self.variance + lam * lam * self.p0 * (1.0 - self.p0) / n
        self.t += 1
        spread = self.nsigmas * math.sqrt(self.variance)
        lcl = max(0.0, self.p0 - spread)
        ucl = min(1.0, self.p0 + spread)
        return EwmaPoint(
            self.t,
            self.statistic,
            self.variance,
            lcl,
            ucl,
            self.statistic > ucl,
            self.statistic < lcl,
        )

    def step(self, errors: int, n: int) -> bool:
        """Detector interface for :func:`shared.stats.arl.simulate_arl`: update, return signal."""
        return self.update(errors, n).signal

    def reset(self) -> None:
        """Restart from Z = p0, V = 0 (e.g. after a signal has been handled)."""
        self.statistic = self.p0
        self.variance = 0.0
        self.t = 0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            **_serde.header(self.KIND),
            "p0": self.p0,
            "lam": self.lam,
            "L": self.nsigmas,
            "z": self.statistic,
            "var": self.variance,
            "t": self.t,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> EwmaState:
        """Inverse of :meth:`to_dict`."""
        _serde.check_header(data, cls.KIND)
        try:
            return cls(
                _serde.get_float(data, "p0"),
                _serde.get_float(data, "lam"),
                _serde.get_float(data, "L"),
                statistic=_serde.get_float(data, "z"),
                variance=_serde.get_float(data, "var"),
                t=_serde.get_int(data, "t"),
            )
        except StatsError as exc:
            if isinstance(exc, StateFormatError):
                raise
            raise StateFormatError(str(exc)) from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EwmaState):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"EwmaState(p0={self.p0}, lam={self.lam}, nsigmas={self.nsigmas}, "
            f"statistic={self.statistic}, variance={self.variance}, t={self.t})"
        )


def ewma(
    subgroups: Iterable[SubgroupLike],
    p0: float,
    lam: float = DEFAULT_LAMBDA,
    nsigmas: float = DEFAULT_EWMA_NSIGMAS,
) -> list[EwmaPoint]:
    """Batch EWMA over a sequence of subgroups (identical to feeding :class:`EwmaState`)."""
    state = EwmaState(p0, lam, nsigmas)
    return [state.update(sg.errors, sg.n) for sg in map(_as_subgroup, subgroups)]
