"""Versioned event schemas: the contract between upstream systems and QualityWatch.

Every event carries ``v`` (schema version). A consumer accepts the versions it knows and
sends anything else to the dead-letter topic with the reason, so a producer that moves to a
new version never silently corrupts the statistics.

Times are timezone-aware UTC datetimes on the wire (ISO 8601); naive timestamps are
rejected because a moderation operation spans time zones and a naive time is ambiguous.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a time zone (e.g. 2026-11-25T10:00:00Z)")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
Ident = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\s]+$")]

# A queue id becomes part of Kafka keys, state-store keys, metric labels and URL paths, so it
# has one restricted grammar everywhere (ingest, the scorer's batch decoder, the API): ASCII
# letters and digits, then also ``.``, ``_``, ``:`` and ``-``; at most 128 characters. No
# ``|`` (a state-key separator), no ``/`` (a path separator), nothing to escape in a URL.
QUEUE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
QUEUE_ID_RE = re.compile(QUEUE_ID_PATTERN)
QueueId = Annotated[str, Field(min_length=1, max_length=128, pattern=QUEUE_ID_PATTERN)]


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
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class Decision(_Event):
    """A moderator's action on a piece of content in a queue."""

    v: Literal[1] = 1
    kind: Literal["decision"] = "decision"
    decision_id: Ident
    content_id: Ident
    queue_id: QueueId
    moderator_id: Ident
    site_id: Ident
    policy_id: Ident
    action: Action
    decided_at: AwareDatetime
    market: str | None = Field(default=None, max_length=32)
    severity: int = Field(default=2, ge=1, le=4, description="1 = highest (e.g. child safety)")


class Verdict(_Event):
    """A QA specialist's re-review of a sampled decision; the ground truth.

    ``queue_id`` is required so a verdict is partitioned with its decision (the QA tool
    samples from a queue and knows it); the rest of the decision's context comes from the
    join with the decision, which may arrive later.
    """

    v: Literal[1] = 1
    kind: Literal["verdict"] = "verdict"
    verdict_id: Ident
    decision_id: Ident
    queue_id: QueueId
    auditor_id: Ident
    reviewed_at: AwareDatetime
    outcome: Outcome
    error_type: ErrorType | None = None
    sample_type: SampleType = SampleType.RANDOM

    @model_validator(mode="after")
    def _error_type_matches_outcome(self) -> Verdict:
        if self.outcome is Outcome.INCORRECT and self.error_type is None:
            raise ValueError("an incorrect verdict needs an error_type")
        if self.outcome is Outcome.CORRECT and self.error_type is not None:
            raise ValueError("a correct verdict cannot have an error_type")
        return self


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
    LEARNING_SKIPPED = "learning_skipped"  # too small while in Phase I: not in the baseline


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
    in_control_streak: int = 0  # consecutive charted subgroups without an upper signal
    dropped_verdicts: int = 0  # verdicts whose decision never arrived (expired or over cap)
    late_verdicts_total: int = 0  # verdicts counted after their subgroup had closed
    late_verdicts_24h: int = 0  # of those, in the subgroups of the last 24 h
    subgroups_closed: int = 0  # subgroups closed so far (each published on qw.subgroups.v1)
    failed_batches: int = 0  # batches dead-lettered whole because scoring them raised


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
