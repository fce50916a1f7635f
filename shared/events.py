"""Versioned event schemas: the contract between upstream systems and QualityWatch.

Every event has ``v`` (schema version); in a decision and a verdict it may be left out and
then means 1 (docs/events.md). A consumer accepts the versions it knows and sends anything
else to the dead-letter topic with the reason, so a producer that moves to a new version
never silently corrupts the statistics.

Times are timezone-aware UTC datetimes on the wire (ISO 8601); naive timestamps are
rejected because a moderation operation spans time zones and a naive time is ambiguous.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from shared.ids import KEY_ID_PATTERN, KEY_ID_RE, KeyId, OpaqueId

SCHEMA_VERSION = 1


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a time zone (e.g. 2026-11-25T10:00:00Z)")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]

# RFC 3339 date-time with a zone, as JSON Schema's ``date-time`` format means it; pydantic
# alone would also take a Unix number or a date without time
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
# the same grammar anchored for a whole-text match by pydantic-core's (Rust) regex
RFC3339_PATTERN = f"^(?:{_RFC3339.pattern})$"


def _rfc3339_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("a time is a string: RFC 3339 with a zone, e.g. 2026-11-25T10:00:00Z")
    if _RFC3339.fullmatch(value) is None:
        raise ValueError(
            f"{value[:64]!r} is not an RFC 3339 date-time: it must carry a time zone and read "
            "like 2026-11-25T10:00:00Z"
        )
    return value


def _integer(value: Any) -> Any:
    # JSON Schema's integer: no booleans, no numeric strings (pydantic's lax mode takes both);
    # null passes on to the field's own type (allowed where it is optional, refused elsewhere)
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON integer")
    return value


# a time on the wire (an event's, a query parameter's): RFC 3339 text with a zone, exactly
# what JSON Schema's ``date-time`` format says
EventTime = Annotated[
    datetime,
    BeforeValidator(_rfc3339_text),
    AfterValidator(_aware),
    Field(json_schema_extra={"format": "date-time"}),
]

# what an event time's JSON Schema cannot say (the bounds move with the clock), said in its
# description so that a generated client's user reads it (services/ingest/validation.py)
_TIME_BOUNDS = (
    "when {what} happened: RFC 3339 with a zone. Ingest refuses (422 past_timestamp or "
    "future_timestamp; a raw-topic event goes to the dead-letter topic) a time more than "
    "15 minutes ahead of its clock, older than QW_INGEST_MAX_AGE_DAYS (default 400 days), or "
    "before 2000-01-01"
)

# the schema version: 1 exactly (pydantic's lax mode would also take ``true``)
Version1 = Annotated[Literal[1], BeforeValidator(_integer)]

# The identifier grammar is in shared/ids.py; these names stay for the modules that use them.
QUEUE_ID_PATTERN = KEY_ID_PATTERN
QUEUE_ID_RE = KEY_ID_RE
QueueId = KeyId


class Action(StrEnum):
    """What the moderator did with the content."""

    APPROVE = "approve"
    REMOVE = "remove"
    RESTRICT = "restrict"
    LABEL = "label"
    ESCALATE = "escalate"


class Outcome(StrEnum):
    """The QA specialist's verdict on a decision."""

    CORRECT = "correct"
    INCORRECT = "incorrect"


class ErrorType(StrEnum):
    """Why an incorrect decision was incorrect."""

    OVER_ENFORCEMENT = "over_enforcement"  # false positive: removed content that was fine
    UNDER_ENFORCEMENT = "under_enforcement"  # false negative: missed a violation
    WRONG_POLICY = "wrong_policy"  # right intervention, wrong policy or action
    TECHNICAL = "technical"  # right call, the action failed


class SampleType(StrEnum):
    """How the decision was chosen for QA. Only RANDOM estimates a queue's accuracy."""

    RANDOM = "random"
    TARGETED = "targeted"  # risk-based, biased by design; for root cause
    APPEAL = "appeal"  # appeal overturns
    CALIBRATION = "calibration"  # calibration and blind gold items, to measure auditors


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Decision(_Event):
    """A moderator's action on a piece of content in a queue."""

    v: Version1 = 1
    kind: Literal["decision"] = "decision"
    decision_id: OpaqueId
    content_id: OpaqueId
    queue_id: QueueId
    moderator_id: OpaqueId
    site_id: KeyId
    policy_id: KeyId
    action: Action
    decided_at: Annotated[EventTime, Field(description=_TIME_BOUNDS.format(what="the decision"))]
    market: str | None = Field(default=None, max_length=32)
    severity: Annotated[int, BeforeValidator(_integer)] = Field(
        default=2, ge=1, le=4, description="1 = highest (e.g. child safety)"
    )
    moderator_tenure_days: Annotated[int | None, BeforeValidator(_integer)] = Field(
        default=None,
        ge=0,
        le=36500,
        description="the moderator's days in the role when deciding: root cause ranks tenure "
        "bands (<30d, 30-89d, 90-364d, 1y+), never individual moderators",
    )


class Verdict(_Event):
    """A QA specialist's re-review of a sampled decision; the ground truth.

    ``queue_id`` is required so a verdict is partitioned with its decision (the QA tool
    samples from a queue and knows it); the rest of the decision's context comes from the
    join with the decision, which may arrive later.
    """

    # error_type is required with "incorrect" and forbidden with "correct", in the JSON
    # Schema too (OpenAPI 3.1 is JSON Schema 2020-12), so a generated client knows it
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"outcome": {"const": "incorrect"}}, "required": ["outcome"]},
            "then": {
                "required": ["error_type"],
                "properties": {"error_type": {"type": "string"}},
            },
            "else": {"properties": {"error_type": {"type": "null"}}},
        }
    )

    v: Version1 = 1
    kind: Literal["verdict"] = "verdict"
    verdict_id: OpaqueId
    decision_id: OpaqueId
    queue_id: QueueId
    auditor_id: OpaqueId
    reviewed_at: Annotated[EventTime, Field(description=_TIME_BOUNDS.format(what="the review"))]
    outcome: Outcome
    # validated when absent too (validate_default), so that the check below runs then
    error_type: ErrorType | None = Field(default=None, validate_default=True)
    sample_type: SampleType = SampleType.RANDOM

    # a field validator, not a model validator: its refusal names the field (loc
    # ["error_type"]), in the API's 422 and in a dead letter's reason alike
    @field_validator("error_type")
    @classmethod
    def _error_type_matches_outcome(
        cls, error_type: ErrorType | None, info: ValidationInfo
    ) -> ErrorType | None:
        outcome = info.data.get("outcome")  # absent: the outcome was refused, and says so
        if outcome is Outcome.INCORRECT and error_type is None:
            raise ValueError("an incorrect verdict needs an error_type")
        if outcome is Outcome.CORRECT and error_type is not None:
            raise ValueError("a correct verdict cannot have an error_type")
        return error_type


class ChartPoint(BaseModel):
    """One subgroup of a queue's p-chart, as the scorer evaluated it."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    n: int
    errors: int
    p: float
    center: float
    lcl: float
    ucl: float
    signals: list[str] = Field(default_factory=list)


class SubgroupStatus(StrEnum):
    """What the scorer did with a closed subgroup."""

    CHARTED = "charted"  # Phase II: limits and signals against the frozen baseline
    PHASE1 = "phase1"  # part of the Phase I sample the baseline is being learned from
    TOO_SMALL = "too_small"  # fewer random verdicts than QW_SCORER_MIN_SUBGROUP_N: not charted
    # while in Phase I, not in the baseline: too small, or it starts before the Phase I a
    # baseline reset began (its effective_at)
    LEARNING_SKIPPED = "learning_skipped"


class SiteCounts(BaseModel):
    """One site's share of a subgroup: its decisions and their random-sample verdicts."""

    model_config = ConfigDict(frozen=True)

    decisions: int = Field(ge=0)
    n: int = Field(ge=0, description="random-sample verdicts")
    errors: int = Field(ge=0)


# the key of the sites a queue does not count by name (QW_SCORER_SITES_PER_QUEUE): outside
# the key-id grammar, so never a real site's id
OTHER_SITES = "(other)"


class SubgroupPoint(BaseModel):
    """One closed subgroup of a queue, published on ``qw.subgroups.v1`` when it closes and
    again, as a new ``revision``, each time late verdicts change its counts.

    Keyed ``queue_id@start`` (see ``shared.topics.subgroup_key``) on a compacted topic: the
    latest revision of every subgroup stays. A revision never re-fires an alert; it shows
    the original counts beside the final ones, and its limits for the final n.
    """

    model_config = ConfigDict(frozen=True)

    v: Literal[1] = 1
    queue_id: str
    start: datetime
    end: datetime
    revision: int = Field(ge=0, description="0 as closed; 1, 2, ... after late verdicts")
    status: SubgroupStatus
    n: int = Field(ge=0, description="random-sample verdicts")
    errors: int = Field(ge=0)
    p: float | None = Field(description="errors / n; None when n = 0")
    decisions: int = Field(ge=0)
    other_verdicts: int = Field(ge=0, description="targeted, appeal and calibration verdicts")
    late: int = Field(ge=0, description="verdicts counted after the subgroup closed")
    errors_by_type: dict[str, int] = Field(default_factory=dict)
    center: float | None = None
    lcl: float | None = None
    ucl: float | None = None
    ewma: float | None = None
    ewma_ucl: float | None = None
    signals: list[str] = Field(default_factory=list)
    baseline_p: float | None = None
    baseline_n: int = Field(default=0, description="verdicts behind an estimated baseline")
    original_n: int = Field(ge=0, description="n when the subgroup first closed")
    original_errors: int = Field(ge=0)
    as_of: datetime  # the queue's watermark (event time) when this revision was made
    emitted_at: datetime  # wall time
    sites: dict[str, SiteCounts] = Field(
        default_factory=dict,
        description="per site (`(other)`: the sites past the per-queue bound); they add up "
        "to `decisions`, `n` and `errors`. Empty in records made before per-site counts",
    )


class SiteWindows(BaseModel):
    """One site of a queue over the snapshot's 24 h and 7 d windows (the queue's own)."""

    model_config = ConfigDict(frozen=True)

    decisions_24h: int = Field(ge=0)
    n_24h: int = Field(ge=0, description="random-sample verdicts")
    errors_24h: int = Field(ge=0)
    decisions_7d: int = Field(ge=0)
    n_7d: int = Field(ge=0)
    errors_7d: int = Field(ge=0)


class CusumInfo(BaseModel):
    """One side of a queue's live per-verdict Bernoulli CUSUM (``docs/statistics.md``):
    its statistic, decision interval and design, in a snapshot and in the breach it raises."""

    model_config = ConfigDict(frozen=True)

    side: Literal["upper", "lower"]  # upper: errors up; lower: errors down (QA feed broken?)
    p0: float = Field(description="the baseline error rate the chart runs against")
    p1: float = Field(description="the error rate it is tuned to detect")
    statistic: float = Field(ge=0, description="B (Reynolds-Stoumbos units); signals at h")
    h: float = Field(gt=0, description="decision interval in B units")
    verdicts: int = Field(ge=0, description="random verdicts since the chart last restarted")
    errors: int = Field(ge=0, description="of those, incorrect")
    signals: int = Field(ge=0, description="signals so far (each restarts the chart)")
    run_verdicts: int = Field(
        default=0,
        ge=0,
        description="random verdicts since the statistic last stood at 0: the chart's own "
        "estimate of when a change began (a signal's observed rate is over these)",
    )
    run_errors: int = Field(default=0, ge=0, description="of those, incorrect")
    recovery: float | None = Field(
        default=None,
        ge=0,
        description="after a signal, the recovery CUSUM's evidence (B units) that the rate "
        "is back nearer p0 than half the shift: recovered, and null again, at h; while it "
        "runs the queue's in-control streak stays 0, so the incident stays open. Null: not "
        "recovering",
    )
    arl0_verdicts: float = Field(gt=0, description="designed in-control ARL, in verdicts")
    arl0_days: float | None = Field(description="the same in days at the measured rate")
    rate_per_day: float | None = Field(description="random verdicts a day it was designed for")
    design: dict[str, Any] = Field(description="the library's BernoulliCusumDesign.to_dict()")
    site: str | None = Field(
        default=None,
        description="a per-site chart's site (its p0 is the site's Phase I baseline, its "
        "verdicts the site's); null: the queue's chart",
    )


class TargetRule(BaseModel):
    """The below-target rule's design, as the scorer runs it (``docs/statistics.md``): once a
    subgroup closes it compares the exact (Clopper-Pearson) upper bound of the queue's 24 h
    accuracy, at one-sided ``confidence``, with the target, and raises at most one breach a
    UTC day."""

    model_config = ConfigDict(frozen=True)

    confidence: float = Field(
        gt=0, lt=1, description="one-sided confidence of the exact (Clopper-Pearson) upper "
        "bound of the 24h accuracy compared with the target: 1 - tail_per_look",
    )  # fmt: skip
    tail_per_look: float = Field(
        gt=0, lt=1, description="the bound's tail: at most the chance a look breaches for a "
        "queue exactly at its target (the exact binomial test's level)",
    )  # fmt: skip
    looks_per_day: float = Field(
        gt=0, description="looks a day: one per subgroup closed, at most ceil(86400 / subgroup "
        "seconds) in a UTC day",
    )  # fmt: skip
    false_alarms_per_day: float = Field(
        ge=0, le=1, description="at most this many false breaches a day from this queue's rule "
        "when it is exactly at its target (fewer above it): tail_per_look x looks_per_day, and "
        "never more than 1 (one breach a UTC day)",
    )  # fmt: skip
    source: Literal["budget", "configured"] = Field(
        description="budget: its share of QW_SCORER_FALSE_ALARMS_PER_DAY; configured: "
        "QW_TARGET_RULE_CONFIDENCE (outside the budget)"
    )


class BaselineEvent(BaseModel):
    """A change of a queue's baseline, published on ``qw.baselines.v1``: a ``reset`` (a new
    Phase I begins, on an operator's request: who, when, why) or ``frozen`` (a Phase I
    ended: the baseline the charts now run against). ``epoch`` numbers the queue's
    baselines: 0 is its first, each reset adds one, and its ``frozen`` follows it."""

    model_config = ConfigDict(frozen=True)

    v: Literal[1] = 1
    queue_id: str
    epoch: int = Field(ge=0)
    event: Literal["reset", "frozen"]
    at: datetime = Field(description="the queue's watermark (event time) when it happened")
    emitted_at: datetime  # wall time
    # a reset: the request (docs/events.md, "Control records")
    request_id: str | None = None
    reason: str | None = None
    actor: str | None = None
    requested_at: datetime | None = None
    effective_at: datetime | None = None
    phase1_from: datetime | None = Field(
        default=None, description="a reset: the first subgroup start its Phase I may take"
    )
    previous_p: float | None = Field(default=None, description="a reset: the baseline it ended")
    # frozen: the baseline and what it was estimated from
    baseline_p: float | None = None
    baseline_n: int = Field(default=0, ge=0, description="frozen: Phase I random verdicts")
    baseline_errors: int = Field(default=0, ge=0)
    subgroups: int = Field(default=0, ge=0, description="frozen: Phase I subgroups")
    last_subgroup: datetime | None = Field(
        default=None, description="frozen: the start of the subgroup that completed Phase I"
    )


class QualitySnapshot(BaseModel):
    """The scorer's view of one queue, produced whenever the queue's state changes."""

    model_config = ConfigDict(frozen=True)

    v: Literal[1] = 1
    queue_id: str
    as_of: datetime  # event time (the queue's watermark), not wall time
    emitted_at: datetime  # wall time
    decisions_total: int
    verdicts_total: int
    pending_verdicts: int
    accuracy_1h: float | None
    accuracy_24h: float | None
    accuracy_7d: float | None
    n_1h: int
    n_24h: int
    n_7d: int
    errors_24h_by_type: dict[str, int] = Field(default_factory=dict)
    baseline_p: float | None
    baseline_state: Literal["phase1", "frozen"]
    ewma: float | None = None
    ewma_ucl: float | None = None
    last_point: ChartPoint | None = None
    in_control_streak: int = (
        0  # charted subgroups without an upper signal since the last one or the last CUSUM signal
    )
    dropped_verdicts: int = 0  # verdicts whose decision never arrived (expired or over cap)
    late_verdicts_total: int = 0  # verdicts counted after their subgroup had closed
    late_verdicts_24h: int = 0  # of those, in the subgroups of the last 24 h
    subgroups_closed: int = 0  # subgroups closed so far (each published on qw.subgroups.v1)
    failed_batches: int = 0  # batches dead-lettered whole because scoring them raised
    rejected_items: int = 0  # events the scorer dead-lettered one by one (bad fields)
    cusum_upper: CusumInfo | None = None  # the live CUSUMs; None before baseline and rate
    cusum_lower: CusumInfo | None = None
    verdict_rate_per_day: float | None = None  # measured random verdicts a day (event time)
    # the baseline: where it came from (configured: a standard given by QW_SCORER_BASELINE_P;
    # estimated: frozen from a Phase I; None while learning), how many resets the queue had,
    # the Phase I's progress, and the last reset (who, when, why)
    baseline_source: Literal["configured", "estimated"] | None = None
    baseline_epoch: int = 0
    phase1_subgroups: int = 0  # subgroups taken into the Phase I (under way, or frozen from)
    phase1_length: int | None = None  # subgroups a Phase I takes (QW_SCORER_PHASE1_SUBGROUPS)
    # subgroups of that Phase I skipped for having fewer random verdicts than a subgroup
    # needs (min_subgroup_n, QW_SCORER_MIN_SUBGROUP_N), and the most one of them had
    phase1_too_small: int = 0
    phase1_too_small_max_n: int | None = None
    min_subgroup_n: int | None = None
    last_reset: BaselineEvent | None = None
    # the sites with decisions or verdicts in the last 7 d, by id (`(other)`: those past the
    # per-queue bound); each window adds up to the queue's n_24h and n_7d
    sites: dict[str, SiteWindows] = Field(default_factory=dict)
    # the per-site upper CUSUMs, by site: sites with enough verdicts in the Phase I of an
    # estimated baseline (docs/statistics.md); empty for a configured baseline
    site_cusums: dict[str, CusumInfo] = Field(default_factory=dict)
    # the below-target rule's design (None: a snapshot from before it was published)
    target_rule: TargetRule | None = None


CauseDimension = Literal["site", "policy", "tenure", "severity", "site_policy"]


class Cause(BaseModel):
    """One slice of a queue's random-sample verdicts in a breach's window whose error rate
    is above the rest of the queue's (below, for a lower CUSUM): its errors, those the
    baseline expects, and the share of the window's excess over the baseline that would
    vanish were it at the rest's rate. ``site_policy`` values are ``<site>/<policy>``;
    services/scorer/causes.py."""

    model_config = ConfigDict(frozen=True)

    dimension: CauseDimension
    value: str
    n: int
    errors: int
    expected_errors: float
    # of the window's excess it explains, in [0, 1] (None: the window has no excess)
    excess_share: float | None
    p: float
    p_interval: tuple[float, float]  # Wilson, 95%
    # it stands out from the rest of the queue on the breach's side (Fisher's exact test,
    # one-sided, Holm-corrected across the slices tested, at 95%)
    significant: bool
    error_types: dict[str, int] = Field(default_factory=dict)
    rest_p: float | None = None  # the rest of the queue's error rate (None: before it)
    p_value: float | None = None  # the test's, Holm-adjusted (None: before it)


class BreachKind(StrEnum):
    SPC = "spc"  # a control chart signal
    BELOW_TARGET = "below_target"  # accuracy under target with statistical confidence


class Breach(BaseModel):
    """A signal that something is wrong with a queue, produced by the scorer.

    ``dedup_key`` is stable: the same condition on the same subgroup always yields the same
    key, so replays and re-evaluations never alert twice.
    """

    model_config = ConfigDict(frozen=True)

    v: Literal[1] = 1
    breach_id: str
    dedup_key: str
    queue_id: str
    kind: BreachKind
    rule: str  # e.g. "p_chart_ucl", "ewma_ucl", "accuracy_24h_below_target"
    severity: Literal["info", "warning", "critical"]
    subgroup_start: datetime | None
    observed_p: float
    expected_p: float
    ucl: float | None
    n: int
    message: str
    detected_at: datetime  # event time
    emitted_at: datetime  # wall time
    cusum: CusumInfo | None = None  # a CUSUM breach: the chart at the signal, and its design
    verdicts_total: int | None = None  # a CUSUM breach: the queue's verdicts counted then
    # root cause: the slices that explain the excess errors (or, for cusum_lower, the
    # missing ones), most first; services/scorer/causes.py
    causes: list[Cause] = Field(default_factory=list)
    cause_summary: str | None = None  # the top cause in words, also ending the message
    site: str | None = None  # the one site behind it, when one explains most (a routing label)
    policy: str | None = None  # the one policy behind it, likewise
