"""p-chart and np-chart for subgroups of variable size, in two explicit phases.

A *subgroup* is the QA verdicts of one queue in one time bucket: ``n`` reviewed decisions of
which ``errors`` were found incorrect, so ``p_i = errors_i / n_i``.

Phase I (retrospective, on a baseline period chosen by a person)::

    p̄ = Σ errors_i / Σ n_i
    σ_i = sqrt(p̄ (1 - p̄) / n_i)
    LCL_i = max(0, p̄ - L σ_i),  UCL_i = min(1, p̄ + L σ_i)      (L = 3 by default)

:func:`trial_limits` computes these *trial limits* and lists the points beyond them.  Nothing
is excluded automatically: the user investigates, names the points with an assignable cause
and calls :meth:`TrialLimits.revise` (as many times as needed), which recomputes p̄ without
them.  :meth:`TrialLimits.baseline` then freezes the result into a :class:`Baseline`.

Phase II (monitoring): :func:`limits_for` gives the limits for a new subgroup of size ``n``
from the frozen baseline, :func:`standardize` its z-score
``z = (p - p̄) / sqrt(p̄ (1 - p̄) / n)`` (the input of the run rules, EWMA of z, CUSUM), and
:func:`evaluate` both at once.  The baseline is never updated from monitoring data: a new
baseline is an explicit event (a new policy version, a confirmed and accepted shift) that
builds a new :class:`Baseline` from a new Phase I, or from a standard
(:meth:`Baseline.from_standard`, the "standard given" chart).

The np-chart is the same chart on the count scale: centre ``n p̄`` and limits
``n p̄ ± L sqrt(n p̄ (1 - p̄))`` clamped to ``[0, n]``.

:class:`SubgroupAccumulator` is the O(1) streaming state that counts verdicts into the
current subgroup.

Reference:
    Montgomery, D. C. Introduction to Statistical Quality Control, 6th ed. (2009), §7.2
    (control chart for fraction nonconforming; variable sample size; Phase I and II).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from shared.stats import _serde
from shared.stats._checks import check_closed_probability, check_count, check_positive
from shared.stats.errors import StateFormatError, StatsError, UndefinedStatisticError

__all__ = [
    "Baseline",
    "Limits",
    "PChartPoint",
    "PhaseIPoint",
    "Subgroup",
    "SubgroupAccumulator",
    "SubgroupLike",
    "TrialLimits",
    "evaluate",
    "limits_for",
    "np_limits_for",
    "standardize",
    "trial_limits",
]

DEFAULT_NSIGMAS = 3.0
"""Width of Shewhart limits in standard deviations (the ``L`` of the literature)."""


@dataclass(frozen=True, slots=True)
class Subgroup:
    """``errors`` incorrect decisions among ``n`` QA-reviewed ones (``n >= 1``)."""

    errors: int
    n: int

    def __post_init__(self) -> None:
        check_count(self.errors, self.n)

    @property
    def p(self) -> float:
        """Error proportion ``errors / n``."""
        return self.errors / self.n

    @classmethod
    def from_verdicts(cls, incorrect: Iterable[bool]) -> Subgroup:
        """Build a subgroup from per-verdict flags (``True`` = decision found incorrect)."""
        errors = 0
        n = 0
        for flag in incorrect:
            errors += 1 if flag else 0
            n += 1
        return cls(errors, n)


SubgroupLike = Subgroup | tuple[int, int]
"""A :class:`Subgroup` or an ``(errors, n)`` pair."""


def _as_subgroup(item: SubgroupLike) -> Subgroup:
    if isinstance(item, Subgroup):
        return item
    errors, n = item
    return Subgroup(errors, n)


class Limits(NamedTuple):
    """Control limits for one subgroup: ``(lcl, center, ucl)``."""

    lcl: float
    center: float
    ucl: float


@dataclass(frozen=True, slots=True)
class Baseline:
    """A frozen Phase I result: the in-control error proportion and where it came from.

    Build it with :meth:`TrialLimits.baseline` (from data) or :meth:`from_standard` (from a
    target).  It is immutable; re-baselining means building a new one.

    Attributes:
        p_bar: in-control error proportion p̄.
        n_total: verdicts in the subgroups used (0 for a standard-given baseline).
        errors_total: errors in the subgroups used.
        n_subgroups: subgroups used (after exclusions).
        excluded: indices (into the Phase I data) excluded for an assignable cause.
        created_at: when the baseline was set, if the caller records it.
        reason: why it was set ("initial", "policy v7", ...), if the caller records it.
    """

    p_bar: float
    n_total: int = 0
    errors_total: int = 0
    n_subgroups: int = 0
    excluded: tuple[int, ...] = ()
    created_at: datetime | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        check_closed_probability("p_bar", self.p_bar)
        if self.n_total < 0 or not 0 <= self.errors_total <= max(self.n_total, 0):
            raise StatsError("need 0 <= errors_total <= n_total")

    @classmethod
    def from_standard(
        cls, p: float, *, created_at: datetime | None = None, reason: str | None = None
    ) -> Baseline:
        """A "standard given" baseline: p̄ is a stated value, not estimated from data."""
        return cls(p_bar=p, created_at=created_at, reason=reason)

    @property
    def sigma1(self) -> float:
        """Binomial standard deviation of a single verdict, ``sqrt(p̄ (1 - p̄))``."""
        return math.sqrt(self.p_bar * (1.0 - self.p_bar))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``created_at`` as ISO 8601)."""
        return {**_serde.header("baseline"), **_serde.phase1_to_dict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Baseline:
        """Inverse of :meth:`to_dict`."""
        _serde.check_header(data, "baseline")
        return cls(**_serde.phase1_from_dict(data))


def _sigma(p_bar: float, n: int) -> float:
    return math.sqrt(p_bar * (1.0 - p_bar) / n)


def _limits(p_bar: float, n: int, nsigmas: float) -> Limits:
    spread = nsigmas * _sigma(p_bar, n)
    return Limits(max(0.0, p_bar - spread), p_bar, min(1.0, p_bar + spread))


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise StatsError(f"subgroup size n must be an int >= 1, got {n!r}")


def limits_for(baseline: Baseline, n: int, nsigmas: float = DEFAULT_NSIGMAS) -> Limits:
    """Phase II p-chart limits for a subgroup of size ``n``.

    ``p̄ ± L sqrt(p̄ (1 - p̄) / n)`` with the LCL clamped at 0 and the UCL at 1.  Smaller
    subgroups get wider limits.
    """
    _check_n(n)
    check_positive("nsigmas", nsigmas)
    return _limits(baseline.p_bar, n, nsigmas)


def np_limits_for(baseline: Baseline, n: int, nsigmas: float = DEFAULT_NSIGMAS) -> Limits:
    """Phase II np-chart limits (on the error *count*) for a subgroup of size ``n``.

    ``n p̄ ± L sqrt(n p̄ (1 - p̄))`` clamped to ``[0, n]``.
    """
    _check_n(n)
    check_positive("nsigmas", nsigmas)
    center = n * baseline.p_bar
    spread = nsigmas * math.sqrt(n * baseline.p_bar * (1.0 - baseline.p_bar))
    return Limits(max(0.0, center - spread), center, min(float(n), center + spread))


def standardize(errors: int, n: int, baseline: Baseline) -> float:
    """z-score of a subgroup against the baseline: ``(p - p̄) / sqrt(p̄ (1 - p̄) / n)``.

    Raises:
        UndefinedStatisticError: if p̄ is 0 or 1 (the binomial sigma is 0).  Such a
            baseline cannot standardize; use a standard-given baseline with a realistic
            p, or the Bernoulli CUSUM.
    """
    check_count(errors, n)
    if baseline.p_bar <= 0.0 or baseline.p_bar >= 1.0:
        raise UndefinedStatisticError(
            f"baseline p_bar is {baseline.p_bar}: the binomial sigma is 0, z is undefined"
        )
    return (errors / n - baseline.p_bar) / _sigma(baseline.p_bar, n)


@dataclass(frozen=True, slots=True)
class PChartPoint:
    """One Phase II subgroup checked against the baseline."""

    errors: int
    n: int
    p: float
    limits: Limits
    z: float | None
    """The z-score, or ``None`` when the baseline's p̄ is 0 or 1."""

    @property
    def above(self) -> bool:
        """Beyond the upper limit (quality worse than the baseline)."""
        return self.p > self.limits.ucl

    @property
    def below(self) -> bool:
        """Beyond the lower limit (quality better than the baseline)."""
        return self.p < self.limits.lcl

    @property
    def signal(self) -> bool:
        """Beyond either limit."""
        return self.above or self.below


def evaluate(
    errors: int, n: int, baseline: Baseline, nsigmas: float = DEFAULT_NSIGMAS
) -> PChartPoint:
    """Check one Phase II subgroup: its proportion, limits and z-score."""
    check_count(errors, n)
    limits = limits_for(baseline, n, nsigmas)
    z = None if baseline.p_bar in (0.0, 1.0) else standardize(errors, n, baseline)
    return PChartPoint(errors, n, errors / n, limits, z)


@dataclass(frozen=True, slots=True)
class PhaseIPoint:
    """One subgroup of a Phase I chart.

    ``beyond`` is computed for every point, excluded or not, so the chart can still show
    where an excluded point sits against the revised limits.
    """

    index: int
    errors: int
    n: int
    p: float
    lcl: float
    ucl: float
    excluded: bool

    @property
    def beyond(self) -> bool:
        """Outside the trial limits."""
        return self.p > self.ucl or self.p < self.lcl


@dataclass(frozen=True, slots=True)
class TrialLimits:
    """Phase I p-chart over a baseline period, possibly revised.

    Attributes:
        subgroups: the Phase I data in time order.
        excluded: indices excluded so far (sorted).
        nsigmas: width of the limits.
        p_bar: p̄ of the subgroups not excluded.
        points: one :class:`PhaseIPoint` per subgroup, in order.
    """

    subgroups: tuple[Subgroup, ...]
    excluded: tuple[int, ...]
    nsigmas: float
    p_bar: float
    points: tuple[PhaseIPoint, ...] = field(repr=False)

    @property
    def n_total(self) -> int:
        """Verdicts in the subgroups used."""
        return sum(self.subgroups[i].n for i in self._used())

    @property
    def errors_total(self) -> int:
        """Errors in the subgroups used."""
        return sum(self.subgroups[i].errors for i in self._used())

    def _used(self) -> list[int]:
        skip = set(self.excluded)
        return [i for i in range(len(self.subgroups)) if i not in skip]

    @property
    def out_of_control(self) -> tuple[int, ...]:
        """Indices of the points still used that fall outside their limits.

        These are candidates for investigation, not automatic exclusions.
        """
        return tuple(pt.index for pt in self.points if pt.beyond and not pt.excluded)

    def revise(self, excluding: Iterable[int]) -> TrialLimits:
        """Recompute the trial limits without the named subgroups (added to earlier exclusions).

        Call it only for points with an assignable cause found by investigation.
        """
        return trial_limits(self.subgroups, self.nsigmas, (*self.excluded, *excluding))

    def baseline(
        self, *, created_at: datetime | None = None, reason: str | None = None
    ) -> Baseline:
        """Freeze this Phase I result into a :class:`Baseline`."""
        used = self._used()
        return Baseline(
            p_bar=self.p_bar,
            n_total=self.n_total,
            errors_total=self.errors_total,
            n_subgroups=len(used),
            excluded=self.excluded,
            created_at=created_at,
            reason=reason,
        )


def _pool(
    subgroups: tuple[Subgroup, ...], excluding: Iterable[int]
) -> tuple[tuple[int, ...], int, int]:
    skip = set()
    for index in excluding:
        if isinstance(index, bool) or not isinstance(index, int):
            raise StatsError(f"subgroup indices must be ints, got {index!r}")
        if not 0 <= index < len(subgroups):
            raise StatsError(f"subgroup index {index} out of range 0..{len(subgroups) - 1}")
        skip.add(index)
    errors = sum(sg.errors for i, sg in enumerate(subgroups) if i not in skip)
    n = sum(sg.n for i, sg in enumerate(subgroups) if i not in skip)
    if n == 0:
        raise StatsError("every subgroup is excluded: nothing left to estimate p-bar from")
    return tuple(sorted(skip)), errors, n


def trial_limits(
    subgroups: Iterable[SubgroupLike],
    nsigmas: float = DEFAULT_NSIGMAS,
    excluding: Iterable[int] = (),
) -> TrialLimits:
    """Phase I trial limits for a baseline period (p̄ = Σ errors / Σ n over the used points).

    Args:
        subgroups: the baseline period's subgroups in time order (``Subgroup`` or
            ``(errors, n)``).
        nsigmas: width of the limits (L).
        excluding: indices to leave out of p̄ (assignable causes already known).
    """
    check_positive("nsigmas", nsigmas)
    data = tuple(_as_subgroup(sg) for sg in subgroups)
    if not data:
        raise StatsError("Phase I needs at least one subgroup")
    excluded, errors, n = _pool(data, excluding)
    p_bar = errors / n
    skip = set(excluded)
    points = []
    for i, sg in enumerate(data):
        lim = _limits(p_bar, sg.n, nsigmas)
        points.append(PhaseIPoint(i, sg.errors, sg.n, sg.p, lim.lcl, lim.ucl, i in skip))
    return TrialLimits(data, excluded, nsigmas, p_bar, tuple(points))


class SubgroupAccumulator:
    """O(1) streaming count of the current subgroup's verdicts.

    Feed verdicts with :meth:`update` (or pre-counted batches with :meth:`add`); read the
    subgroup with :meth:`subgroup`, and :meth:`close` it at the end of the time bucket.
    The result equals :meth:`Subgroup.from_verdicts` on the same verdicts, for any split.
    """

    __slots__ = ("errors", "n")

    KIND = "subgroup"

    def __init__(self, errors: int = 0, n: int = 0) -> None:
        if n < 0 or not 0 <= errors <= n:
            raise StatsError(f"need 0 <= errors <= n, got errors={errors}, n={n}")
        self.errors = errors
        self.n = n

    def update(self, incorrect: bool) -> None:
        """Count one verdict (``True`` = the decision was found incorrect)."""
        self.n += 1
        if incorrect:
            self.errors += 1

    def add(self, errors: int, n: int) -> None:
        """Count ``n`` verdicts of which ``errors`` were incorrect."""
        check_count(errors, n)
        self.errors += errors
        self.n += n

    def subgroup(self) -> Subgroup | None:
        """The subgroup so far, or ``None`` while empty."""
        return Subgroup(self.errors, self.n) if self.n else None

    def close(self) -> Subgroup | None:
        """Return the subgroup so far and start a new, empty one."""
        result = self.subgroup()
        self.errors = 0
        self.n = 0
        return result

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form: ``{"v": 1, "kind": "subgroup", "e": errors, "n": n}``."""
        return {**_serde.header(self.KIND), "e": self.errors, "n": self.n}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SubgroupAccumulator:
        """Inverse of :meth:`to_dict`."""
        _serde.check_header(data, cls.KIND)
        try:
            return cls(_serde.get_int(data, "e"), _serde.get_int(data, "n"))
        except StatsError as exc:
            if isinstance(exc, StateFormatError):
                raise
            raise StateFormatError(str(exc)) from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SubgroupAccumulator):
            return NotImplemented
        return (self.errors, self.n) == (other.errors, other.n)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SubgroupAccumulator(errors={self.errors}, n={self.n})"
