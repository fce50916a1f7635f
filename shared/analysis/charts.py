"""Control charts of QA verdicts, per queue (or site, or policy): grouping, subgroups, charts.

Pure: verdict rows in, chart points out; the statistics are :mod:`shared.stats`.

1. **Group** the verdicts by queue, site or policy (``by``).
2. **Subgroup** each group's verdicts by period (``1h``, ``4h``, ``1d``, ``1w``...; hours
   must divide a day, days and weeks are 1): the periods start at local midnight of the
   chosen time zone (UTC by default), weeks on Monday.  Periods without verdicts have no
   subgroup (a p-chart point needs n >= 1); the start dates show the gap.
3. **Baseline** (the centre line p̄), one of:

   * *trial limits* (default): p̄ from all subgroups, minus those named in ``exclude``
     (explicit revision for an assignable cause; never automatic);
   * *Phase I* (``phase1=K``): p̄ from the first K subgroups (minus exclusions), frozen;
     the later subgroups are Phase II and are judged against it;
   * *standard given* (``baseline_rate=P``): p̄ is a stated rate (a contract, an SLO).

4. **Chart** every subgroup (or verdict) against the baseline:

   ============== ===========================================================================
   chart          statistic, limits
   ============== ===========================================================================
   p              error proportion; p̄ ± L sqrt(p̄(1-p̄)/n) (L = 3)
   np             error count; n p̄ ± L sqrt(n p̄(1-p̄))
   laney          error proportion; p̄ ± L σ_z sqrt(p̄(1-p̄)/n) (Laney p′; σ_z from the
                  baseline's moving ranges, or from all subgroups for a standard p̄)
   ewma           EWMA of the proportions (λ = 0.1, L = 2.814), exact variance
   cusum          tabular CUSUM of the z-scores: C⁺ and −C⁻, limits ±h (k = 0.5, h = 5)
   bernoulli-cusum per verdict: B_t, limit h; p1 = min(2 p̄, (1 + p̄)/2) by default, h from
                  :func:`~shared.stats.cusum.choose_h` for an in-control ARL of ``arl0``
                  verdicts (default 1 000) unless given
   ============== ===========================================================================

   Signals: ``ucl`` / ``lcl`` when the statistic is beyond the upper / lower limit (more /
   fewer errors than the baseline), and for p, np and laney the run rules (Western
   Electric ``weco2``-``weco4`` or Nelson ``nelson2``-``nelson8``) on the standardized
   points.  Rule 1 of both sets is "beyond 3σ", which is what ``ucl``/``lcl`` already say
   with the default L = 3, so it is not repeated (with another L it is reported as
   ``weco1``/``nelson1``).  Run rules are not applied to EWMA and CUSUM statistics, whose
   successive values are correlated by construction.

   The Shewhart charts and the EWMA run through every subgroup, so a sustained shift shows
   as a run of signals.  The two CUSUMs restart at 0 after each signal, as a monitoring
   scheme does once an alarm is handled, so each signal is fresh evidence; a CUSUM signal
   also carries its *onset*, the point after the statistic last stood at 0, which estimates
   when the change began (Montgomery §9.1.2).
"""

from __future__ import annotations

import math
import re
from array import array
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal, get_args, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from shared.analysis.columnar import EPOCH, US, Int64s, VerdictColumns, micros_to_datetime
from shared.analysis.errors import AnalysisError, OptionError
from shared.analysis.load import VerdictRow, Verdicts
from shared.stats import (
    NELSON_RULES,
    WESTERN_ELECTRIC_RULES,
    Baseline,
    BernoulliCusum,
    BernoulliCusumDesign,
    CusumState,
    EwmaState,
    LaneyBaseline,
    RuleState,
    StatsError,
    Subgroup,
    choose_h,
    laney_chart,
    laney_limits_for,
    laney_standardize,
    limits_for,
    np_limits_for,
    sigma_z,
    standardize,
    trial_limits,
)

__all__ = [
    "CHART_KINDS",
    "GROUP_BY",
    "RULE_SETS",
    "BaselineInfo",
    "ChartKind",
    "ChartPoint",
    "ChartSpec",
    "Exclusion",
    "GroupBy",
    "GroupChart",
    "Period",
    "Report",
    "RuleSet",
    "SubgroupData",
    "VerdictPoints",
    "analyze",
    "analyze_columns",
    "build_report",
    "build_report_columns",
    "parse_exclusions",
    "parse_tz",
    "period_keys",
    "rate_text",
    "zone_hours",
]

ChartKind = Literal["p", "np", "laney", "ewma", "cusum", "bernoulli-cusum"]
CHART_KINDS: tuple[str, ...] = get_args(ChartKind)
RuleSet = Literal["weco", "nelson", "none"]
RULE_SETS: tuple[str, ...] = get_args(RuleSet)
GroupBy = Literal["queue", "site", "policy"]
GROUP_BY: tuple[str, ...] = get_args(GroupBy)
Phase = Literal["I", "II"]
BaselineSource = Literal["trial", "phase1", "standard"]

CHART_TITLES: dict[str, str] = {
    "p": "p-chart of the error proportion",
    "np": "np-chart of the error count",
    "laney": "Laney p′ chart of the error proportion",
    "ewma": "EWMA chart of the error proportion",
    "cusum": "tabular CUSUM of the standardized error proportion",
    "bernoulli-cusum": "Bernoulli CUSUM, verdict by verdict",
}
"""A title for each chart, for tables and plots."""

_RULE_CHARTS = frozenset({"p", "np", "laney"})
_COLUMN_OF_GROUP = {"queue": "queue_id", "site": "site_id", "policy": "policy_id"}
DEFAULT_NSIGMAS = 3.0
DEFAULT_EWMA_NSIGMAS = 2.814
DEFAULT_LAMBDA = 0.1
DEFAULT_K = 0.5
DEFAULT_CUSUM_H = 5.0
DEFAULT_ARL0 = 1000.0
MAX_ARL0 = 1e9
"""A billion verdicts between false alarms: beyond it the chart could never signal in a
lifetime of data, and the search for h would only grow the exact-ARL matrix."""
MAX_GROUPS = 10_000
"""Groups (queues, sites, policies) charted in one run of ``qwatch analyze`` (a file whose
``queue_id`` is unique per row would otherwise make a chart per verdict)."""
MAX_EXCLUDED = 100_000
"""Subgroup numbers one run of ``qwatch analyze`` may exclude (``--exclude 1-1000000000``
would otherwise build a billion of them before any check against the data)."""
MAX_H = 1e4
"""Decision intervals (sigmas for the tabular CUSUM, B units for the Bernoulli CUSUM) above
this are never meant; the Bernoulli CUSUM also bounds h by its lattice (see
:data:`shared.stats.cusum.MAX_LATTICE_CELLS`)."""


def rate_text(value: float) -> str:
    """A rate (or a decision interval) for the text report: four significant digits, so
    that a small one (p̄ = 1.000e-05) is never shown as 0.0000, and 0.2150 keeps its 0."""
    return f"{value:#.4g}"


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """A subgroup period: ``count`` hours, or one day, or one week."""

    count: int
    unit: Literal["h", "d", "w"]

    @classmethod
    def parse(cls, text: str) -> Period:
        """``"1h"``, ``"4h"``, ``"1d"``, ``"1w"``... (hours must divide 24)."""
        match = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", text.lower())
        if match is None:
            raise OptionError(f"bad period {text!r}: use 1h, 2h, 4h, 8h, 12h, 1d or 1w")
        count = int(match.group(1))
        unit = match.group(2)
        if unit == "h" and (count < 1 or 24 % count):
            raise OptionError(f"bad period {text!r}: hours must divide a day (1, 2, 3, 4, 6...)")
        if unit == "h":
            return cls(count, "h")
        if count != 1:
            raise OptionError(f"bad period {text!r}: days and weeks come one at a time (1d, 1w)")
        return cls(1, "d" if unit == "d" else "w")

    @property
    def label(self) -> str:
        return f"{self.count}{self.unit}"

    def floor(self, t: datetime, tz: tzinfo) -> datetime:
        """Start of the period containing ``t``, in ``tz`` (as an aware datetime)."""
        local = t.astimezone(tz)
        if self.unit == "h":
            hour = local.hour - local.hour % self.count
            return local.replace(hour=hour, minute=0, second=0, microsecond=0)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.unit == "d":
            return day
        return day - timedelta(days=day.weekday())


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Leave subgroup ``index`` (1-based, as in the report) out of the baseline.

    ``group`` ``None`` applies to every group.
    """

    index: int
    group: str | None = None


def parse_exclusions(specs: Iterable[str]) -> tuple[Exclusion, ...]:
    """Parse ``--exclude`` values: ``15``, ``15,23``, ``3-5``, ``spam-en:15,23``.

    Each subgroup (of a group, or of all) comes once, in the order first named: a repeated
    or overlapping range counts, against :data:`MAX_EXCLUDED`, what it adds.
    """
    result: list[Exclusion] = []
    # per group, the ranges named so far, merged: sorted disjoint [starts[i], ends[i]]
    named: dict[str | None, tuple[list[int], list[int]]] = {}
    for spec in specs:
        group: str | None = None
        body = spec.strip()
        if ":" in body:
            group, body = (part.strip() for part in body.rsplit(":", 1))
        for item in filter(None, (part.strip() for part in body.split(","))):
            match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", item)
            if match is None:
                raise OptionError(
                    f"bad --exclude {spec!r}: use subgroup numbers as shown in the report, "
                    "e.g. 15 or 15,23 or 3-5, optionally GROUP:15"
                )
            first = int(match.group(1))
            last = int(match.group(2) or first)
            if first < 1:
                raise OptionError(f"bad --exclude {spec!r}: subgroup numbers start at 1")
            if last < first:
                raise OptionError(
                    f"bad --exclude {spec!r}: a range goes from the lower number up, "
                    f"e.g. {last}-{first}"
                )
            starts, ends = named.setdefault(group, ([], []))
            lo, hi = bisect_left(ends, first), bisect_right(starts, last)  # the ranges it meets
            new = _gaps(first, last, zip(starts[lo:hi], ends[lo:hi], strict=True))
            if len(result) + sum(b - a + 1 for a, b in new) > MAX_EXCLUDED:
                raise OptionError(
                    f"bad --exclude {spec!r}: at most {MAX_EXCLUDED:,} subgroups can be "
                    "excluded (the report numbers the subgroups it has)"
                )
            for a, b in new:
                result.extend(Exclusion(i, group) for i in range(a, b + 1))
            if lo < hi:
                first, last = min(first, starts[lo]), max(last, ends[hi - 1])
            starts[lo:hi], ends[lo:hi] = [first], [last]
    return tuple(result)


def _gaps(first: int, last: int, covered: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``[first, last]`` outside the sorted disjoint ranges ``covered`` (each
    meeting it): found by arithmetic, so a huge range is never built to be counted."""
    gaps: list[tuple[int, int]] = []
    at = first
    for start, end in covered:
        if start > at:
            gaps.append((at, start - 1))
        at = max(at, end + 1)
    if at <= last:
        gaps.append((at, last))
    return gaps


def parse_tz(name: str) -> tzinfo:
    """``"UTC"`` or an IANA zone name such as ``"Asia/Manila"``."""
    if name.strip().upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise OptionError(f"unknown time zone {name!r} (use UTC or e.g. Europe/Dublin)") from None


@dataclass(frozen=True, slots=True)
class ChartSpec:
    """What to chart and how (every option of ``qwatch analyze`` but the I/O ones).

    ``None`` for ``nsigmas``, ``lam``, ``k``, ``h``, ``p1`` means the chart's default.
    """

    chart: str = "p"
    period: Period = field(default_factory=lambda: Period(1, "d"))
    tz: tzinfo = UTC
    by: str = "queue"
    only: tuple[str, ...] = ()
    baseline_rate: float | None = None
    phase1: int | None = None
    exclude: tuple[Exclusion, ...] = ()
    rules: str | None = None
    nsigmas: float | None = None
    lam: float | None = None
    k: float | None = None
    h: float | None = None
    p1: float | None = None
    arl0: float | None = None

    def __post_init__(self) -> None:
        if self.chart not in CHART_KINDS:
            raise OptionError(
                f"unknown chart {self.chart!r}; choose one of {', '.join(CHART_KINDS)}"
            )
        if self.by not in GROUP_BY:
            raise OptionError(f"unknown --by {self.by!r}; choose one of {', '.join(GROUP_BY)}")
        if self.rules is not None and self.rules not in RULE_SETS:
            raise OptionError(
                f"unknown rule set {self.rules!r}; choose one of {', '.join(RULE_SETS)}"
            )
        if self.baseline_rate is not None:
            _check_open("--baseline-rate", self.baseline_rate)
            if self.phase1 is not None:
                raise OptionError("give either --baseline-rate or --phase1, not both")
            if self.exclude:
                raise OptionError(
                    "--exclude revises a baseline estimated from the data; "
                    "it has no meaning with --baseline-rate"
                )
        if self.phase1 is not None and self.phase1 < 1:
            raise OptionError("--phase1 needs at least 1 subgroup")
        if self.chart == "laney" and self.phase1 is not None and self.phase1 < 2:
            raise OptionError("the Laney p′ chart needs --phase1 of at least 2 subgroups")
        if self.nsigmas is not None and not (math.isfinite(self.nsigmas) and self.nsigmas > 0):
            raise OptionError(f"--L must be a positive number, got {self.nsigmas}")
        if self.lam is not None and not (0.0 < self.lam <= 1.0):
            raise OptionError(f"--lam must be in (0, 1], got {self.lam}")
        if self.k is not None and not (math.isfinite(self.k) and self.k >= 0):
            raise OptionError(f"--k must be >= 0, got {self.k}")
        if self.h is not None and not (math.isfinite(self.h) and 0 < self.h <= MAX_H):
            raise OptionError(f"--h must be a number in (0, {MAX_H:g}], got {self.h}")
        if self.p1 is not None:
            _check_open("--p1", self.p1)
        if self.arl0 is not None and not (math.isfinite(self.arl0) and 1 < self.arl0 <= MAX_ARL0):
            raise OptionError(f"--arl0 must be in (1, {MAX_ARL0:g}] verdicts, got {self.arl0}")

    @property
    def rule_set(self) -> RuleSet:
        """The run rules applied: the chosen set (default ``weco``) on p, np and laney."""
        if self.chart not in _RULE_CHARTS or self.rules == "none":
            return "none"
        return "nelson" if self.rules == "nelson" else "weco"

    @property
    def limit_width(self) -> float:
        """L: the limit width in sigmas (3, or 2.814 for the EWMA, unless given)."""
        if self.nsigmas is not None:
            return self.nsigmas
        return DEFAULT_EWMA_NSIGMAS if self.chart == "ewma" else DEFAULT_NSIGMAS

    def ignored_options(self) -> list[str]:
        """Options given that the chosen chart does not use (for a note in the report)."""
        used: dict[str, set[str]] = {
            "lam": {"ewma"},
            "k": {"cusum"},
            "h": {"cusum", "bernoulli-cusum"},
            "p1": {"bernoulli-cusum"},
            "arl0": {"bernoulli-cusum"},
            "nsigmas": {"p", "np", "laney", "ewma"},
        }
        flags = {
            "nsigmas": "--L",
            "arl0": "--arl0",
            "lam": "--lam",
            "k": "--k",
            "h": "--h",
            "p1": "--p1",
        }
        ignored = [
            flags[name]
            for name, charts in used.items()
            if getattr(self, name) is not None and self.chart not in charts
        ]
        if self.rules not in (None, "none") and self.chart not in _RULE_CHARTS:
            ignored.append("--rules")
        return ignored


def _check_open(flag: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise OptionError(f"{flag} is an error proportion strictly between 0 and 1, got {value}")


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubgroupData:
    """The verdicts of one group in one period."""

    index: int
    """1-based position in the group's series, as shown in the report."""
    start: datetime
    """Start of the period (aware, in the report's time zone)."""
    n: int
    errors: int

    @property
    def p(self) -> float:
        """Error proportion."""
        return self.errors / self.n


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """One point of a chart: a subgroup, or one verdict for per-verdict charts.

    ``statistic``, ``center``, ``lcl`` and ``ucl`` are on the chart's own scale (error
    proportion for p and laney, error count for np, the EWMA, C⁺ for the CUSUM, B_t for the
    Bernoulli CUSUM); ``p`` is always the error proportion of the subgroup (or 0/1 for a
    verdict).
    """

    index: int
    subgroup: int
    start: datetime
    n: int
    errors: int
    statistic: float
    center: float
    lcl: float | None
    ucl: float | None
    signals: tuple[str, ...]
    phase: Phase = "II"
    excluded: bool = False
    z: float | None = None
    lower_statistic: float | None = None
    """−C⁻ for the tabular CUSUM (plotted below zero against −h)."""
    onset: int | None = None
    """For a CUSUM signal: the first point of the run that led to it (the point after the
    statistic last stood at 0), an estimate of when the change began."""

    @property
    def p(self) -> float:
        """Error proportion of the point's verdicts."""
        return self.errors / self.n

    @property
    def accuracy(self) -> float:
        """1 − p."""
        return 1.0 - self.p


@dataclass(frozen=True, slots=True)
class BaselineInfo:
    """Where the centre line came from.

    ``excluded`` holds 1-based subgroup numbers; ``sigma_z`` is Laney's σ_z (laney only).
    """

    source: BaselineSource
    p_bar: float
    n_total: int = 0
    errors_total: int = 0
    n_subgroups: int = 0
    excluded: tuple[int, ...] = ()
    sigma_z: float | None = None

    def describe(self) -> str:
        """One line for the report."""
        if self.source == "standard":
            text = f"standard given: p̄ = {rate_text(self.p_bar)}"
        else:
            of = self.n_subgroups + len(self.excluded)
            if self.source == "trial":
                used = f"{self.n_subgroups} of" if self.excluded else "all"
                what = f"trial limits from {used} {of}"
            elif self.excluded:
                what = f"Phase I: {self.n_subgroups} of the first {of}"
            else:
                what = f"Phase I: first {of}"
            text = (
                f"{what} subgroups: p̄ = "
                f"{rate_text(self.p_bar)} ({self.errors_total:,} errors / {self.n_total:,} verdicts)"
            )
            if self.excluded:
                text += f", excluding {', '.join(map(str, self.excluded))}"
        if self.sigma_z is not None:
            text += f", σ_z = {self.sigma_z:.3f}"
        return text


@dataclass(frozen=True, slots=True)
class GroupChart:
    """The chart of one group (a queue, a site or a policy).

    ``error`` is set, and ``points`` empty, when this group cannot be charted (for example
    no errors at all in its baseline for an EWMA); the other groups are still charted.
    """

    group: str
    chart: str
    subgroups: tuple[SubgroupData, ...]
    baseline: BaselineInfo | None
    points: Sequence[ChartPoint] = ()
    """A tuple, or :class:`VerdictPoints` for a per-verdict chart computed on columns."""
    design: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    error: str | None = None

    @property
    def n(self) -> int:
        return sum(sg.n for sg in self.subgroups)

    @property
    def errors(self) -> int:
        return sum(sg.errors for sg in self.subgroups)

    @property
    def accuracy(self) -> float:
        """Accuracy over all the group's verdicts."""
        return 1.0 - self.errors / self.n

    @property
    def signal_count(self) -> int:
        """Points with at least one signal."""
        if isinstance(self.points, VerdictPoints):
            return self.points.signal_count()
        return sum(1 for pt in self.points if pt.signals)


# --------------------------------------------------------------------------------------------
# Grouping and subgrouping
# --------------------------------------------------------------------------------------------


def group_rows(rows: Iterable[VerdictRow], by: str) -> dict[str, list[VerdictRow]]:
    """Verdicts per group, each list in time order (ties keep file order)."""
    column = _COLUMN_OF_GROUP[by]
    groups: dict[str, list[VerdictRow]] = defaultdict(list)
    for row in rows:
        value = getattr(row, column)
        groups[value if value is not None else f"(no {column})"].append(row)
    return {name: sorted(items, key=lambda r: r.reviewed_at) for name, items in groups.items()}


def subgroup_rows(
    rows: Sequence[VerdictRow], period: Period, tz: tzinfo
) -> tuple[list[SubgroupData], list[int]]:
    """Subgroups of time-ordered rows, and each row's 1-based subgroup number."""
    counts: dict[datetime, list[int]] = {}
    keys: list[datetime] = []
    for row in rows:
        key = period.floor(row.reviewed_at, tz).astimezone(UTC)
        tally = counts.setdefault(key, [0, 0])
        tally[0] += 1
        tally[1] += row.incorrect
        keys.append(key)
    ordered = sorted(counts)
    number = {key: i for i, key in enumerate(ordered, start=1)}
    subgroups = [
        SubgroupData(number[key], key.astimezone(tz), counts[key][0], counts[key][1])
        for key in ordered
    ]
    return subgroups, [number[key] for key in keys]


# --------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------


def analyze(rows: Sequence[VerdictRow], spec: ChartSpec) -> tuple[GroupChart, ...]:
    """Chart every group of ``rows`` (sorted by group name) as ``spec`` says.

    Raises:
        OptionError: ``by`` names a column no row has, ``only`` names no existing group, or
            an exclusion names an unknown group.
    """
    column = _COLUMN_OF_GROUP[spec.by]
    if spec.by != "queue" and all(getattr(r, column) is None for r in rows):
        raise OptionError(f"--by {spec.by} needs a {column} column with values")
    groups = group_rows(rows, spec.by)
    if spec.only:
        unknown = [name for name in spec.only if name not in groups]
        if unknown:
            raise OptionError(
                f"--only: no {spec.by} named {', '.join(map(repr, unknown))} "
                f"(there are: {_some(sorted(groups))})"
            )
        groups = {name: groups[name] for name in spec.only}
    _check_exclusion_groups(spec, groups)
    return tuple(_chart_group(name, groups[name], spec) for name in sorted(groups))


def _check_exclusion_groups(spec: ChartSpec, charted: Container[str]) -> None:
    """Every group an exclusion names is charted (with ``--only``, one of those)."""
    for exclusion in spec.exclude:
        if exclusion.group is not None and exclusion.group not in charted:
            among = " among those --only charts" if spec.only else ""
            raise OptionError(f"--exclude: no {spec.by} named {exclusion.group!r}{among}")


def _some(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _chart_group(name: str, rows: Sequence[VerdictRow], spec: ChartSpec) -> GroupChart:
    subgroups, membership = subgroup_rows(rows, spec.period, spec.tz)
    excluded = sorted({e.index for e in spec.exclude if e.group in (None, name)})
    try:
        return _Charter(name, rows, subgroups, membership, excluded, spec).run()
    except (StatsError, AnalysisError) as exc:
        return GroupChart(name, spec.chart, tuple(subgroups), None, error=str(exc))


class _Charter:
    """Charts one group; a class only to share the prepared data between the steps."""

    def __init__(
        self,
        name: str,
        rows: Sequence[VerdictRow],
        subgroups: list[SubgroupData],
        membership: list[int],
        excluded: list[int],
        spec: ChartSpec,
    ) -> None:
        self.name = name
        self.rows = rows
        self.subgroups = subgroups
        self.membership = membership
        self.excluded = excluded
        self.spec = spec
        self.notes: list[str] = []
        k = len(subgroups)
        if spec.phase1 is not None:
            self.phase1_count = min(spec.phase1, k)
            if spec.phase1 >= k:
                self.notes.append(
                    f"only {k} subgroups: all are Phase I (--phase1 {spec.phase1}), none to monitor"
                )
        elif spec.baseline_rate is None:
            self.phase1_count = k
        else:
            self.phase1_count = 0
        for index in excluded:
            if index > self.phase1_count:
                scope = (
                    f"the {self.phase1_count} Phase I subgroups"
                    if spec.phase1 is not None
                    else f"its {k} subgroups"
                )
                raise AnalysisError(f"--exclude {index}: {name} has no subgroup {index} in {scope}")

    def phase(self, index: int) -> Phase:
        return "I" if index <= self.phase1_count else "II"

    def run(self) -> GroupChart:
        chart = self.spec.chart
        if chart == "laney":
            baseline, points = self._laney()
            design: dict[str, float] = {"L": self.spec.limit_width}
        else:
            baseline = self._baseline()
            if chart in ("p", "np"):
                points = self._shewhart(baseline)
                design = {"L": self.spec.limit_width}
            elif chart == "ewma":
                points, design = self._ewma(baseline)
            elif chart == "cusum":
                points, design = self._cusum(baseline)
            else:
                points, design = self._bernoulli(baseline)
        if chart in _RULE_CHARTS:
            points = self._with_rules(points)
        return GroupChart(
            group=self.name,
            chart=chart,
            subgroups=tuple(self.subgroups),
            baseline=baseline,
            points=tuple(points),
            design=design,
            notes=tuple(self.notes),
        )

    # -- baselines ------------------------------------------------------------------------

    def _phase1_data(self) -> list[Subgroup]:
        return [Subgroup(sg.errors, sg.n) for sg in self.subgroups[: self.phase1_count]]

    def _estimated(self, frozen: Baseline | LaneyBaseline, sz: float | None = None) -> BaselineInfo:
        """What the output says about a baseline estimated from this file's Phase I."""
        return BaselineInfo(
            "trial" if self.spec.phase1 is None else "phase1",
            frozen.p_bar,
            frozen.n_total,
            frozen.errors_total,
            frozen.n_subgroups,
            tuple(self.excluded),
            sz,
        )

    def _baseline(self) -> BaselineInfo:
        if self.spec.baseline_rate is not None:
            return BaselineInfo("standard", self.spec.baseline_rate)
        trial = trial_limits(
            self._phase1_data(), self.spec.limit_width, [i - 1 for i in self.excluded]
        )
        return self._estimated(trial.baseline())

    def _laney(self) -> tuple[BaselineInfo, list[ChartPoint]]:
        width = self.spec.limit_width
        if self.spec.baseline_rate is not None:
            p_bar = self.spec.baseline_rate
            if len(self.subgroups) < 2:
                raise AnalysisError("the Laney p′ chart needs at least 2 subgroups")
            standard = Baseline.from_standard(p_bar)
            sz = sigma_z(standardize(sg.errors, sg.n, standard) for sg in self.subgroups)
            self.notes.append(
                "σ_z estimated from the moving ranges of all subgroups against the given rate"
            )
            info = BaselineInfo("standard", p_bar, sigma_z=sz)
            frozen = LaneyBaseline(p_bar, sz)
        else:
            if self.phase1_count < 2:
                raise AnalysisError("the Laney p′ chart needs at least 2 subgroups")
            phase1 = laney_chart(self._phase1_data(), width, [i - 1 for i in self.excluded])
            frozen = phase1.baseline()
            info = self._estimated(frozen, frozen.sigma_z)
        points = []
        for sg in self.subgroups:
            lcl, center, ucl = laney_limits_for(frozen, sg.n, width)
            z = laney_standardize(sg.errors, sg.n, frozen)
            points.append(self._point(sg, sg.p, center, lcl, ucl, _beyond(sg.p, lcl, ucl), z))
        return info, points

    # -- charts ---------------------------------------------------------------------------

    def _point(
        self,
        sg: SubgroupData,
        statistic: float,
        center: float,
        lcl: float | None,
        ucl: float | None,
        signals: tuple[str, ...],
        z: float | None,
        *,
        lower_statistic: float | None = None,
        onset: int | None = None,
    ) -> ChartPoint:
        return ChartPoint(
            index=sg.index,
            subgroup=sg.index,
            start=sg.start,
            n=sg.n,
            errors=sg.errors,
            statistic=statistic,
            center=center,
            lcl=lcl,
            ucl=ucl,
            signals=signals,
            phase=self.phase(sg.index),
            excluded=sg.index in self.excluded,
            z=z,
            lower_statistic=lower_statistic,
            onset=onset,
        )

    def _z(self, sg: SubgroupData, baseline: Baseline) -> float | None:
        if not 0.0 < baseline.p_bar < 1.0:
            return None
        return standardize(sg.errors, sg.n, baseline)

    def _shewhart(self, info: BaselineInfo) -> list[ChartPoint]:
        baseline = Baseline(info.p_bar)
        width = self.spec.limit_width
        points = []
        for sg in self.subgroups:
            if self.spec.chart == "np":
                lcl, center, ucl = np_limits_for(baseline, sg.n, width)
                value = float(sg.errors)
            else:
                lcl, center, ucl = limits_for(baseline, sg.n, width)
                value = sg.p
            signals = _beyond(value, lcl, ucl)
            points.append(self._point(sg, value, center, lcl, ucl, signals, self._z(sg, baseline)))
        if not 0.0 < info.p_bar < 1.0:
            self.notes.append(
                f"p̄ = {info.p_bar:g}: the limits collapse and z-scores are undefined, so run "
                "rules are skipped; use a longer baseline or --baseline-rate"
            )
        return points

    def _ewma(self, info: BaselineInfo) -> tuple[list[ChartPoint], dict[str, float]]:
        _require_open(info.p_bar, "the EWMA")
        lam = self.spec.lam if self.spec.lam is not None else DEFAULT_LAMBDA
        width = self.spec.limit_width
        state = EwmaState(info.p_bar, lam, width)
        baseline = Baseline(info.p_bar)
        points = []
        for sg in self.subgroups:
            pt = state.update(sg.errors, sg.n)
            signals = ("ucl",) if pt.upper_signal else ("lcl",) if pt.lower_signal else ()
            z = self._z(sg, baseline)
            points.append(self._point(sg, pt.statistic, info.p_bar, pt.lcl, pt.ucl, signals, z))
        return points, {"lam": lam, "L": width}

    def _cusum(self, info: BaselineInfo) -> tuple[list[ChartPoint], dict[str, float]]:
        _require_open(info.p_bar, "the CUSUM of z-scores")
        k = self.spec.k if self.spec.k is not None else DEFAULT_K
        h = self.spec.h if self.spec.h is not None else DEFAULT_CUSUM_H
        state = CusumState(k, h)
        baseline = Baseline(info.p_bar)
        points = []
        upper_zero = lower_zero = 0  # last subgroup where C⁺ (C⁻) was 0, or 0 at the start
        for sg in self.subgroups:
            z = standardize(sg.errors, sg.n, baseline)
            pt = state.update(z)
            signals = ("ucl",) * pt.upper_signal + ("lcl",) * pt.lower_signal
            onset = None
            if pt.upper_signal:
                onset = upper_zero + 1
            elif pt.lower_signal:
                onset = lower_zero + 1
            points.append(
                self._point(
                    sg, pt.upper, 0.0, -h, h, signals, z, lower_statistic=-pt.lower, onset=onset
                )
            )
            if pt.signal:
                state.reset()  # as a monitoring scheme restarts once an alarm is handled
            if state.upper == 0.0:
                upper_zero = sg.index
            if state.lower == 0.0:
                lower_zero = sg.index
        return points, {"k": k, "h": h}

    def _bernoulli_design(self, info: BaselineInfo) -> tuple[BernoulliCusumDesign, float]:
        """The design and its in-control ARL (before any verdict: an h beyond the lattice
        bound is refused here)."""
        p0 = info.p_bar
        _require_open(p0, "the Bernoulli CUSUM")
        p1 = self.spec.p1 if self.spec.p1 is not None else min(2.0 * p0, (1.0 + p0) / 2.0)
        if p1 <= p0:
            raise AnalysisError(
                f"--p1 {p1:g} must be above the baseline error rate p̄ = {rate_text(p0)}: the "
                "Bernoulli CUSUM looks for increases"
            )
        if self.spec.h is not None:
            design = BernoulliCusumDesign.create(p0, p1, self.spec.h)
        else:
            design = choose_h(p0, p1, self.spec.arl0 or DEFAULT_ARL0)
        return design, design.arl(p0)

    def _bernoulli_summary(
        self, design: BernoulliCusumDesign, arl0: float, count: int
    ) -> dict[str, float]:
        fewer = "a larger --h" if self.spec.h is not None else "raise --arl0"
        expected = count / arl0  # (one significant digit where one decimal would say 0.0)
        shown = f"{expected:.1f}" if expected >= 0.05 or not expected else f"{expected:.1g}"
        self.notes.append(
            f"in control, {shown} false alarms are expected in "
            f"{count:,} verdicts (ARL0 {arl0:,.0f}); {fewer} for fewer"
        )
        return {
            "p0": design.p0,
            "p1": design.p1,
            "p1_effective": design.p1_effective,
            "h": design.h,
            "arl0": arl0,
            "arl1": design.arl(design.p1),
        }

    def _bernoulli(self, info: BaselineInfo) -> tuple[list[ChartPoint], dict[str, float]]:
        design, arl0 = self._bernoulli_design(info)
        state = BernoulliCusum(design)
        points = []
        zero = 0  # last verdict after which B was 0
        for i, (row, sub) in enumerate(zip(self.rows, self.membership, strict=True), start=1):
            pt = state.update(row.incorrect)
            points.append(
                ChartPoint(
                    index=i,
                    subgroup=sub,
                    start=row.reviewed_at.astimezone(self.spec.tz),
                    n=1,
                    errors=int(row.incorrect),
                    statistic=pt.statistic,
                    center=0.0,
                    lcl=None,
                    ucl=design.h,
                    signals=("ucl",) if pt.signal else (),
                    phase=self.phase(sub),
                    excluded=sub in self.excluded,
                    onset=zero + 1 if pt.signal else None,
                )
            )
            if pt.signal:
                state.reset()  # as a monitoring scheme restarts once an alarm is handled
            if state.s == 0:
                zero = i
        return points, self._bernoulli_summary(design, arl0, len(self.rows))

    def run_verdicts(
        self, time: Int64s, subgroup: Int64s, incorrect: npt.NDArray[np.bool_]
    ) -> GroupChart:
        """The Bernoulli CUSUM of time-ordered verdicts held as columns (as :meth:`run`)."""
        baseline = self._baseline()
        design, arl0 = self._bernoulli_design(baseline)
        up, down, limit = design.up, design.g, design.limit
        statistic = array("q")
        alarms: list[int] = []
        onsets: list[int] = []
        s = 0
        zero = 0  # last verdict after which S was 0
        for i, bad in enumerate(incorrect.tolist(), start=1):
            s = s + up if bad else (s - down if s > down else 0)
            statistic.append(s)
            if s >= limit:
                alarms.append(i - 1)
                onsets.append(zero + 1)
                s = 0  # restart after an alarm, as BernoulliCusum.reset
            if s == 0:
                zero = i
        signal = np.zeros(time.size, dtype=np.bool_)
        onset = np.zeros(time.size, dtype=np.int64)
        if alarms:
            signal[alarms] = True
            onset[alarms] = onsets
        points = VerdictPoints(
            time=time,
            subgroup=subgroup,
            incorrect=incorrect,
            statistic=np.frombuffer(statistic, dtype=np.int64) if statistic else time[:0].copy(),
            signal=signal,
            onset=onset,
            m=design.m,
            h=design.h,
            phase1_count=self.phase1_count,
            excluded=self.excluded,
            tz=self.spec.tz,
        )
        summary = self._bernoulli_summary(design, arl0, int(time.size))
        return GroupChart(
            group=self.name,
            chart=self.spec.chart,
            subgroups=tuple(self.subgroups),
            baseline=baseline,
            points=points,
            design=summary,
            notes=tuple(self.notes),
        )

    # -- rules ----------------------------------------------------------------------------

    def _with_rules(self, points: list[ChartPoint]) -> list[ChartPoint]:
        rule_set = self.spec.rule_set
        if rule_set == "none" or any(pt.z is None for pt in points):
            return points
        names = NELSON_RULES if rule_set == "nelson" else WESTERN_ELECTRIC_RULES
        if self.spec.limit_width == DEFAULT_NSIGMAS:
            names = tuple(n for n in names if n not in ("nelson1", "weco1"))
        state = RuleState(names, "both")
        result = []
        for pt in points:
            assert pt.z is not None
            fired = state.update(pt.z)
            result.append(replace(pt, signals=pt.signals + fired))
        return result


def _beyond(value: float, lcl: float, ucl: float) -> tuple[str, ...]:
    if value > ucl:
        return ("ucl",)
    if value < lcl:
        return ("lcl",)
    return ()


def _require_open(p_bar: float, what: str) -> None:
    if not 0.0 < p_bar < 1.0:
        raise AnalysisError(
            f"the baseline error rate is {p_bar:g}: {what} needs 0 < p̄ < 1; use a longer "
            "baseline or --baseline-rate"
        )


# --------------------------------------------------------------------------------------------
# The whole analysis
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Report:
    """Everything ``qwatch analyze`` shows: the input, the options and one chart per group."""

    source: str
    spec: ChartSpec
    rows_read: int
    rows_used: int
    groups: tuple[GroupChart, ...]
    notes: tuple[str, ...] = ()

    @property
    def charted(self) -> tuple[GroupChart, ...]:
        """The groups that could be charted."""
        return tuple(g for g in self.groups if g.error is None)


def build_report(verdicts: Verdicts, spec: ChartSpec, source: str) -> Report:
    """Chart ``verdicts`` and collect the notes of loading and charting."""
    notes = _report_notes(list(verdicts.notes), spec)
    groups = analyze(verdicts.rows, spec)
    return Report(source, spec, verdicts.rows_read, len(verdicts.rows), groups, tuple(notes))


def _report_notes(notes: list[str], spec: ChartSpec) -> list[str]:
    ignored = spec.ignored_options()
    if ignored:
        notes.append(f"{', '.join(ignored)} not used by the {spec.chart} chart")
    if spec.chart in _RULE_CHARTS and spec.rule_set != "none":
        notes.append(
            f"run rules: {spec.rule_set} on the standardized points"
            + (" (rule 1 is the ucl/lcl signal)" if spec.limit_width == DEFAULT_NSIGMAS else "")
        )
    elif spec.chart not in _RULE_CHARTS:
        notes.append(f"run rules are not applied to the {spec.chart} chart (correlated points)")
    return notes


# --------------------------------------------------------------------------------------------
# The same analysis on columns (shared.analysis.columnar): what qwatch analyze runs
# --------------------------------------------------------------------------------------------

_HOUR_US = 3_600_000_000
_DAY_US = 24 * _HOUR_US


def period_keys(time: Int64s, period: Period, tz: tzinfo) -> Int64s:
    """``Period.floor(t, tz)`` of every time (microseconds since the epoch, UTC), in UTC µs.

    Exactly :meth:`Period.floor`: each UTC hour of the data is converted to ``tz`` once; in
    an hour where the offset and the fold are the same at both ends, every instant has that
    offset and fold, so its wall time is ``t + offset`` and its period's wall start is an
    integer floor; each distinct (wall start, fold) is then converted back by
    :meth:`Period.floor` itself on one of its verdicts.  Hours with a time-zone transition
    inside go through :meth:`Period.floor` verdict by verdict.
    """
    if time.size == 0:
        return time.copy()
    hours, hour_of = np.unique(time // _HOUR_US, return_inverse=True)
    offsets, folds, plain, _ = zone_hours(hours, tz)
    del hours
    wall = time + offsets[hour_of]
    span = period.count * _HOUR_US if period.unit == "h" else _DAY_US
    wall -= wall % span
    # one (wall start, fold) pair per code; transition hours get codes of their own
    pair = wall * 2 + folds[hour_of]
    del wall
    odd = ~plain[hour_of]
    del hour_of
    if odd.any():
        pair[odd] = np.iinfo(np.int64).min  # placeholder, computed one by one below
    uniques, first_row, pair_of = np.unique(pair, return_index=True, return_inverse=True)
    del pair
    key_of_pair = np.empty(uniques.size, dtype=np.int64)
    for j, row in enumerate(first_row.tolist()):
        key_of_pair[j] = _floor_micros(int(time[row]), period, tz)
    keys = key_of_pair[pair_of]
    for row in np.flatnonzero(odd).tolist():
        keys[row] = _floor_micros(int(time[row]), period, tz)
    return keys


def zone_hours(
    hours: Int64s, tz: tzinfo
) -> tuple[Int64s, Int64s, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """For each UTC hour (hours since the epoch): the offset of ``tz`` (µs) and the fold,
    whether both are the same at both ends of the hour (then at every instant of it: no
    transition inside), and whether numpy may also write its wall times as
    ``datetime.isoformat`` does (a whole-minute offset, years 1000 to 9999)."""
    offsets = np.zeros(hours.size, dtype=np.int64)
    folds = np.zeros(hours.size, dtype=np.int64)
    constant = np.zeros(hours.size, dtype=np.bool_)
    formattable = np.zeros(hours.size, dtype=np.bool_)
    for i, hour in enumerate(hours.tolist()):
        start = micros_to_datetime(hour * _HOUR_US)
        first = start.astimezone(tz)
        last = (start + timedelta(microseconds=_HOUR_US - 1)).astimezone(tz)
        offset = first.utcoffset()
        if offset is not None and offset == last.utcoffset() and first.fold == last.fold:
            offsets[i] = offset // US
            folds[i] = first.fold
            constant[i] = True
            whole = not offset % timedelta(minutes=1)
            formattable[i] = whole and first.year >= 1000 and last.year <= 9999
    return offsets, folds, constant, formattable


def _floor_micros(micros: int, period: Period, tz: tzinfo) -> int:
    return (period.floor(micros_to_datetime(micros), tz).astimezone(UTC) - EPOCH) // US


class VerdictPoints(Sequence[ChartPoint]):
    """The points of a per-verdict chart, held as columns; a :class:`ChartPoint` is made
    only when one is asked for (10 million points would not fit as objects)."""

    __slots__ = (
        "excluded",
        "h",
        "incorrect",
        "m",
        "onset",
        "phase1_count",
        "signal",
        "statistic",
        "subgroup",
        "time",
        "tz",
    )

    def __init__(
        self,
        *,
        time: Int64s,
        subgroup: Int64s,
        incorrect: npt.NDArray[np.bool_],
        statistic: Int64s,
        signal: npt.NDArray[np.bool_],
        onset: Int64s,
        m: int,
        h: float,
        phase1_count: int,
        excluded: Sequence[int],
        tz: tzinfo,
    ) -> None:
        self.time = time
        self.subgroup = subgroup
        self.incorrect = incorrect
        self.statistic = statistic  # S, on the lattice: B = S / m
        self.signal = signal
        self.onset = onset
        self.m = m
        self.h = h
        self.phase1_count = phase1_count
        self.excluded = frozenset(excluded)
        self.tz = tz

    def __len__(self) -> int:
        return int(self.time.size)

    @overload
    def __getitem__(self, index: int) -> ChartPoint: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ChartPoint]: ...

    def __getitem__(self, index: int | slice) -> ChartPoint | Sequence[ChartPoint]:
        if isinstance(index, slice):
            return [self._point(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._point(index)

    def __iter__(self) -> Iterator[ChartPoint]:
        for i in range(len(self)):
            yield self._point(i)

    def _point(self, i: int) -> ChartPoint:
        sub = int(self.subgroup[i])
        signal = bool(self.signal[i])
        errors = int(self.incorrect[i])
        return ChartPoint(
            index=i + 1,
            subgroup=sub,
            start=micros_to_datetime(int(self.time[i])).astimezone(self.tz),
            n=1,
            errors=errors,
            statistic=int(self.statistic[i]) / self.m,
            center=0.0,
            lcl=None,
            ucl=self.h,
            signals=("ucl",) if signal else (),
            phase="I" if sub <= self.phase1_count else "II",
            excluded=sub in self.excluded,
            onset=int(self.onset[i]) if signal else None,
        )

    def signal_count(self) -> int:
        return int(self.signal.sum())

    def by_subgroup(self, count: int) -> list[tuple[float, int, ChartPoint | None]]:
        """Per subgroup 1..count: the largest B, the number of alarms and the first alarm."""
        peak = np.zeros(count + 1, dtype=np.int64)
        np.maximum.at(peak, self.subgroup, self.statistic)
        alarms = np.bincount(self.subgroup[self.signal], minlength=count + 1)
        first: dict[int, ChartPoint] = {}
        for i in np.flatnonzero(self.signal).tolist():
            sub = int(self.subgroup[i])
            if sub not in first:
                first[sub] = self._point(i)
        present = np.bincount(self.subgroup, minlength=count + 1) > 0
        return [
            ((int(peak[s]) / self.m) if present[s] else 0.0, int(alarms[s]), first.get(s))
            for s in range(1, count + 1)
        ]


def analyze_columns(columns: VerdictColumns, spec: ChartSpec) -> tuple[GroupChart, ...]:
    """:func:`analyze` on columns: the same groups, subgroups, baselines, points, errors."""
    if spec.by != columns.by:
        raise ValueError(f"columns grouped by {columns.by}, not {spec.by}")
    column = _COLUMN_OF_GROUP[spec.by]
    present = np.bincount(columns.group, minlength=len(columns.names)) > 0
    if spec.by != "queue" and not any(
        valued for valued, used in zip(columns.valued, present, strict=True) if used
    ):
        raise OptionError(f"--by {spec.by} needs a {column} column with values")
    names = sorted({columns.names[c] for c in np.flatnonzero(present).tolist()})
    if spec.only:
        unknown = [name for name in spec.only if name not in names]
        if unknown:
            raise OptionError(
                f"--only: no {spec.by} named {', '.join(map(repr, unknown))} "
                f"(there are: {_some(names)})"
            )
        names = sorted(set(spec.only))
    if len(names) > MAX_GROUPS:
        raise OptionError(
            f"{len(names):,} {spec.by}s: at most {MAX_GROUPS:,} can be charted at once; "
            "choose some with --only"
        )
    _check_exclusion_groups(spec, set(names))
    rank = {name: i for i, name in enumerate(names)}
    rank_of_code = np.array([rank.get(name, -1) for name in columns.names], dtype=np.int64)
    ranks = rank_of_code[columns.group]
    chosen = np.flatnonzero(ranks >= 0)
    order = chosen[np.lexsort((columns.time[chosen], ranks[chosen]))]  # stable: ties in file order
    del chosen
    ranks = ranks[order]
    time = columns.time[order]
    incorrect = columns.incorrect[order]
    del order
    keys = period_keys(time, spec.period, spec.tz)
    bounds = np.searchsorted(ranks, np.arange(len(names) + 1))
    del ranks
    charts = []
    for i, name in enumerate(names):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        charts.append(_chart_group_columns(name, time[lo:hi], incorrect[lo:hi], keys[lo:hi], spec))
    return tuple(charts)


def _chart_group_columns(
    name: str,
    time: Int64s,
    incorrect: npt.NDArray[np.bool_],
    keys: Int64s,
    spec: ChartSpec,
) -> GroupChart:
    starts, member = np.unique(keys, return_inverse=True)
    n = np.bincount(member, minlength=starts.size)
    errors = np.bincount(member[incorrect], minlength=starts.size)
    subgroups = [
        SubgroupData(i, micros_to_datetime(key).astimezone(spec.tz), count, bad)
        for i, (key, count, bad) in enumerate(
            zip(starts.tolist(), n.tolist(), errors.tolist(), strict=True), start=1
        )
    ]
    excluded = sorted({e.index for e in spec.exclude if e.group in (None, name)})
    try:
        charter = _Charter(name, (), subgroups, [], excluded, spec)
        if spec.chart != "bernoulli-cusum":
            return charter.run()
        return charter.run_verdicts(time, member + 1, incorrect)
    except (StatsError, AnalysisError) as exc:
        return GroupChart(name, spec.chart, tuple(subgroups), None, error=str(exc))


def build_report_columns(columns: VerdictColumns, spec: ChartSpec, source: str) -> Report:
    """:func:`build_report` on columns (what ``qwatch analyze`` runs)."""
    groups = analyze_columns(columns, spec)
    return Report(
        source,
        spec,
        columns.rows_read,
        columns.rows_used,
        groups,
        tuple(_report_notes(list(columns.notes), spec)),
    )
