"""Laney p' chart: a p-chart whose limits also carry the between-subgroup variation.

With very large subgroups the binomial sigma ``sqrt(p̄ (1 - p̄) / n)`` becomes tiny and the
plain p-chart flags nearly every point, because the true error rate of a queue drifts a
little from hour to hour for reasons nobody can act on (overdispersion).  Laney (2002)
measures that extra variation on the z scale and widens the limits by it::

    p̄     = Σ errors_i / Σ n_i
    σ_pi  = sqrt(p̄ (1 - p̄) / n_i)
    z_i   = (p_i - p̄) / σ_pi
    MR_i  = |z_i - z_(i-1)|                       (consecutive points used)
    σ_z   = mean(MR) / 1.128                      (1.128 = d2 for moving ranges of 2)
    limits: p̄ ± L σ_pi σ_z                        (clamped to [0, 1])

If the data are binomial, σ_z ≈ 1 and the p' chart is the p-chart; if the between-subgroup
variation dominates, the limits approach those of an individuals (XmR) chart of the p_i.

Phase I is :func:`laney_chart` (with :meth:`LaneyChart.revise` to exclude points with an
assignable cause, exactly like :func:`shared.stats.pchart.trial_limits`); Phase II freezes
p̄ and σ_z into a :class:`LaneyBaseline` and uses :func:`laney_limits_for` /
:func:`laney_standardize`.  Excluded points are dropped before moving ranges are taken, so
the moving ranges join the neighbours of an excluded point.

:class:`MovingRangeState` is the O(1) streaming estimator of σ_z (equal to
:func:`sigma_z` on the same sequence, for any split).

Reference:
    Laney, D. B. (2002). Improved control charts for attributes. Quality Engineering 14(4),
    531-537.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from shared.stats import _serde
from shared.stats._checks import check_closed_probability, check_count, check_finite, check_positive
from shared.stats.errors import StateFormatError, StatsError, UndefinedStatisticError
from shared.stats.pchart import (
    DEFAULT_NSIGMAS,
    Limits,
    Subgroup,
    SubgroupLike,
    _as_subgroup,
    _pool,
    _sigma,
)

__all__ = [
    "D2",
    "LaneyBaseline",
    "LaneyChart",
    "LaneyPoint",
    "MovingRangeState",
    "laney_chart",
    "laney_limits_for",
    "laney_standardize",
    "sigma_z",
]

D2 = 1.128
"""Bias constant d2 for moving ranges of two consecutive points."""


class MovingRangeState:
    """O(1) streaming estimate of σ_z = (average moving range of z) / 1.128.

    State: the previous z, the running sum of moving ranges, and their count.
    """

    __slots__ = ("count", "previous", "total")

    KIND = "laney_mr"

    def __init__(self, previous: float | None = None, total: float = 0.0, count: int = 0) -> None:
        if count < 0 or total < 0.0 or (previous is None and count > 0):
            raise StatsError("invalid moving-range state")
        self.previous = previous
        self.total = total
        self.count = count

    def update(self, z: float) -> float | None:
        """Add the next standardized point; return the current σ_z (``None`` until 2 points)."""
        check_finite("z", z)
        if self.previous is not None:
            self.total += abs(z - self.previous)
            self.count += 1
        self.previous = z
        return self.sigma_z

    @property
    def sigma_z(self) -> float | None:
        """Current estimate, or ``None`` before the first moving range."""
        if self.count == 0:
            return None
        return self.total / self.count / D2

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            **_serde.header(self.KIND),
            "prev": self.previous,
            "sum": self.total,
            "k": self.count,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> MovingRangeState:
        """Inverse of :meth:`to_dict`."""
        _serde.check_header(data, cls.KIND)
        try:
            return cls(
                _serde.get_optional_float(data, "prev"),
                _serde.get_float(data, "sum"),
                _serde.get_int(data, "k"),
            )
        except StatsError as exc:
            if isinstance(exc, StateFormatError):
                raise
            raise StateFormatError(str(exc)) from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MovingRangeState):
            return NotImplemented
        return (self.previous, self.total, self.count) == (other.previous, other.total, other.count)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MovingRangeState(previous={self.previous}, total={self.total}, count={self.count})"


def sigma_z(zs: Iterable[float]) -> float:
    """Laney's σ_z of a sequence of z-scores: average moving range / 1.128.

    Raises:
        StatsError: with fewer than two points.
    """
    state = MovingRangeState()
    for z in zs:
        state.update(z)
    result = state.sigma_z
    if result is None:
        raise StatsError("sigma_z needs at least two points")
    return result


@dataclass(frozen=True, slots=True)
class LaneyBaseline:
    """Frozen Phase I result of a p' chart: p̄ and σ_z.

    Attributes mirror :class:`shared.stats.pchart.Baseline`, plus ``sigma_z``.
    """

    p_bar: float
    sigma_z: float
    n_total: int = 0
    errors_total: int = 0
    n_subgroups: int = 0
    excluded: tuple[int, ...] = ()
    created_at: datetime | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        check_closed_probability("p_bar", self.p_bar)
        check_finite("sigma_z", self.sigma_z)
        if self.sigma_z < 0.0:
            raise StatsError("sigma_z must be >= 0")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``created_at`` as ISO 8601)."""
        return {
            **_serde.header("laney_baseline"),
            **_serde.phase1_to_dict(self),
            "sigma_z": self.sigma_z,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LaneyBaseline:
        """Inverse of :meth:`to_dict`."""
        _serde.check_header(data, "laney_baseline")
        return cls(sigma_z=_serde.get_float(data, "sigma_z"), **_serde.phase1_from_dict(data))


def _limits(p_bar: float, sigma_z_value: float, n: int, nsigmas: float) -> Limits:
    spread = nsigmas * _sigma(p_bar, n) * sigma_z_value
    return Limits(max(0.0, p_bar - spread), p_bar, min(1.0, p_bar + spread))


def laney_limits_for(baseline: LaneyBaseline, n: int, nsigmas: float = DEFAULT_NSIGMAS) -> Limits:
    """Phase II p' limits for a subgroup of size ``n`` with the frozen σ_z."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise StatsError(f"subgroup size n must be an int >= 1, got {n!r}")
    check_positive("nsigmas", nsigmas)
    return _limits(baseline.p_bar, baseline.sigma_z, n, nsigmas)


def laney_standardize(errors: int, n: int, baseline: LaneyBaseline) -> float:
    """Point on the p' sigma scale: ``(p - p̄) / (σ_pi σ_z)``, for the run rules.

    Raises:
        UndefinedStatisticError: if p̄ is 0 or 1, or σ_z is 0.
    """
    check_count(errors, n)
    if not 0.0 < baseline.p_bar < 1.0 or baseline.sigma_z == 0.0:
        raise UndefinedStatisticError("p' z-score undefined: p_bar is 0 or 1, or sigma_z is 0")
    return (errors / n - baseline.p_bar) / (_sigma(baseline.p_bar, n) * baseline.sigma_z)


@dataclass(frozen=True, slots=True)
class LaneyPoint:
    """One subgroup of a Phase I p' chart."""

    index: int
    errors: int
    n: int
    p: float
    z: float
    lcl: float
    ucl: float
    excluded: bool

    @property
    def beyond(self) -> bool:
        """Outside the p' limits."""
        return self.p > self.ucl or self.p < self.lcl


@dataclass(frozen=True, slots=True)
class LaneyChart:
    """Phase I p' chart (batch form), possibly revised."""

    subgroups: tuple[Subgroup, ...]
    excluded: tuple[int, ...]
    nsigmas: float
    p_bar: float
    sigma_z: float
    points: tuple[LaneyPoint, ...] = field(repr=False)

    @property
    def out_of_control(self) -> tuple[int, ...]:
        """Indices of used points outside their limits (candidates for investigation)."""
        return tuple(pt.index for pt in self.points if pt.beyond and not pt.excluded)

    def revise(self, excluding: Iterable[int]) -> LaneyChart:
        """Recompute without the named subgroups (added to earlier exclusions)."""
        return laney_chart(self.subgroups, self.nsigmas, (*self.excluded, *excluding))

    def baseline(
        self, *, created_at: datetime | None = None, reason: str | None = None
    ) -> LaneyBaseline:
        """Freeze p̄ and σ_z into a :class:`LaneyBaseline`."""
        skip = set(self.excluded)
        used = [sg for i, sg in enumerate(self.subgroups) if i not in skip]
        return LaneyBaseline(
            p_bar=self.p_bar,
            sigma_z=self.sigma_z,
            n_total=sum(sg.n for sg in used),
            errors_total=sum(sg.errors for sg in used),
            n_subgroups=len(used),
            excluded=self.excluded,
            created_at=created_at,
            reason=reason,
        )


def laney_chart(
    subgroups: Iterable[SubgroupLike],
    nsigmas: float = DEFAULT_NSIGMAS,
    excluding: Iterable[int] = (),
) -> LaneyChart:
    """Phase I Laney p' chart (batch): p̄, σ_z and per-point limits.

    Raises:
        StatsError: with fewer than two used subgroups.
        UndefinedStatisticError: if p̄ is 0 or 1 (z-scores are undefined).
    """
    check_positive("nsigmas", nsigmas)
    data = tuple(_as_subgroup(sg) for sg in subgroups)
    if not data:
        raise StatsError("the p' chart needs at least two subgroups")
    excluded, errors, n_total = _pool(data, excluding)
    p_bar = errors / n_total
    if not 0.0 < p_bar < 1.0:
        raise UndefinedStatisticError(f"p_bar is {p_bar}: z-scores (and sigma_z) are undefined")
    skip = set(excluded)
    zs = [(sg.p - p_bar) / _sigma(p_bar, sg.n) for sg in data]
    sz = sigma_z(z for i, z in enumerate(zs) if i not in skip)
    points = []
    for i, sg in enumerate(data):
        lim = _limits(p_bar, sz, sg.n, nsigmas)
        points.append(LaneyPoint(i, sg.errors, sg.n, sg.p, zs[i], lim.lcl, lim.ucl, i in skip))
    return LaneyChart(data, excluded, nsigmas, p_bar, sz, tuple(points))
