"""Baseline resets over HTTP: start a new Phase I for a queue, and its audit trail.

``POST /v1/queues/{id}/baseline:reset``  a new Phase I after a policy change or a migration
                                        (scope ``admin``), with the reason
``GET  /v1/queues/{id}/baselines``      the queue's baselines: each reset (who, when, why),
                                        when the scorer applied it, and what it froze

The request is written to the audit table first (``db.BaselineRequest``), then its control
record (``shared/control.py``) is produced onto the scorer's input topic, keyed by the queue
like its events, and the row marked sent once the broker has it. The scorer applies it in
order with the queue's events, once per request id, and publishes the change on
``qw.baselines.v1``; the consumer stores it, resolves the queue's chart alerts (raised
against the old baseline) and the health shows the queue learning. A client that retries
(a timeout, a 503) sends the same ``Idempotency-Key``: the request is found, produced again
if it was not sent, and reset once whatever happened (docs/operations.md, "Re-baselining a
queue").
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from services.alerts import db
from services.alerts.deps import Problem, SessionDep, unprocessable
from services.alerts.incidents import actor
from shared import control
from shared.apikeys import ApiKey
from shared.events import BaselineEvent, EventTime
from shared.http_auth import AUTH_RESPONSES, require
from shared.ids import KEY_ID_DESCRIPTION, KEY_ID_MAX, KEY_ID_PATTERN
from shared.text import TEXT_PATTERN, clean_text

#: How the service hands a control record to the scorer's input topic: ``(queue_id,
#: value)``, returning once the broker acknowledged it (``services/alerts/main.py``).
ControlSender = Callable[[str, bytes], Awaitable[None]]

QueueId = Annotated[
    str,
    Path(
        min_length=1, max_length=KEY_ID_MAX, pattern=KEY_ID_PATTERN, description=KEY_ID_DESCRIPTION
    ),
]
Admin = Annotated[ApiKey | None, Depends(require("admin"))]
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:-]{1,200}$"
MAX_AHEAD = timedelta(minutes=15)  # as event times: effective_at no further in the future

router = APIRouter(prefix="/v1", tags=["baselines"])


class BaselineResetRequest(BaseModel):
    """Why the queue's baseline no longer holds, and from when the new one should learn."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1, max_length=control.REASON_MAX,
        json_schema_extra={"pattern": TEXT_PATTERN},
        description="why (a policy change, a migration, an accepted shift): 1-2,000 "
        "characters, kept in the audit trail",
    )  # fmt: skip
    effective_at: EventTime | None = Field(
        default=None,
        description="the event time the change took effect (RFC 3339 with a zone): the new "
        "Phase I learns from the first subgroup starting at or after it; absent: from the "
        "queue's latest event time when the scorer applies the reset. Not in the future.",
    )
    replace_configured: StrictBool = Field(
        default=False,
        description="reset a queue whose baseline is configured (QW_SCORER_BASELINE_P, a "
        "standard such as a contract's) and let it learn its own; without it such a queue "
        "is refused with 409",
    )

    @field_validator("reason")
    @classmethod
    def _text(cls, value: str) -> str:
        value = clean_text(value)
        if not value:
            raise ValueError("a reason needs some text")
        return value

    @field_validator("effective_at")
    @classmethod
    def _not_ahead(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > datetime.now(UTC) + MAX_AHEAD:
            raise ValueError("effective_at is in the future: a reset takes effect from a past time")
        return value


class BaselineRequestOut(BaseModel):
    """A reset as asked and recorded: the scorer applies it within seconds (watch
    ``GET /v1/queues/{id}/baselines`` or the queue's health)."""

    request_id: str
    queue_id: str
    actor: str = Field(description="`anonymous`, or `key <id> (<name>)`")
    reason: str
    effective_at: datetime | None
    replace_configured: bool
    requested_at: datetime
    status: Literal["pending", "sent"] = Field(description="sent: the scorer's input topic has it")
    replayed: bool = Field(description="true: an earlier request with this Idempotency-Key")

    @classmethod
    def of(cls, row: db.BaselineRequest, replayed: bool) -> BaselineRequestOut:
        return cls(
            request_id=row.request_id, queue_id=row.queue_id, actor=row.actor,
            reason=row.reason, effective_at=row.effective_at,
            replace_configured=row.replace_configured, requested_at=row.requested_at,
            status="sent" if row.status == "sent" else "pending", replayed=replayed,
        )  # fmt: skip


class BaselineOut(BaseModel):
    """One of the queue's baselines: the reset that began it (absent for its first), its
    Phase I, and the baseline it froze."""

    epoch: int | None = Field(description="0: the queue's first; null: asked, not applied yet")
    status: Literal["requested", "learning", "frozen"]
    current: bool = Field(description="the baseline in force, or the Phase I under way")
    request_id: str | None
    actor: str | None
    reason: str | None
    requested_at: datetime | None
    effective_at: datetime | None
    request_status: Literal["pending", "sent"] | None = Field(
        description="a reset asked over this API: whether the scorer's input topic has it"
    )
    applied_at: datetime | None = Field(description="event time the scorer applied the reset")
    phase1_from: datetime | None = Field(description="the first subgroup its Phase I takes")
    previous_p: float | None = Field(description="the baseline the reset ended")
    baseline_p: float | None = Field(description="the baseline frozen (null while learning)")
    baseline_n: int | None
    baseline_errors: int | None
    subgroups: int | None = Field(description="Phase I subgroups it was frozen from")
    frozen_at: datetime | None = Field(description="event time Phase I ended")


class BaselineHistory(BaseModel):
    queue_id: str
    baselines: list[BaselineOut] = Field(description="newest first")


def _refusals() -> dict[int | str, dict[str, Any]]:
    return {
        404: {"model": Problem, "description": "nothing was ever received for this queue"},
        422: unprocessable("a bad queue id, body or Idempotency-Key"),
    }


_NOT_FOUND = "no data for queue {!r}: it is unknown, or nothing for it was scored yet"


@router.post(
    "/queues/{queue_id}/baseline:reset",
    response_model=BaselineRequestOut,
    status_code=202,
    operation_id="reset_baseline",
    responses={
        **_refusals(),
        **AUTH_RESPONSES,
        409: {
            "model": Problem,
            "description": "the queue's baseline is configured (send `replace_configured`), "
            "or the Idempotency-Key was used for a different request",
        },
        503: {
            "model": Problem,
            "description": "the broker did not take the request: retry with the same "
            "Idempotency-Key",
        },
    },
)
async def reset_baseline(
    queue_id: QueueId,
    body: BaselineResetRequest,
    request: Request,
    key: Admin,
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="the client's key for this request (1-200 of `A-Za-z0-9._:-`): a "
            "retry with the same key resets once",
        ),
    ] = None,
) -> BaselineRequestOut:
    """Start a new Phase I for the queue: its estimated baseline is cleared and learnt
    again from the subgroups that follow, while the queue shows `learning` and the
    below-target rule keeps applying. Its chart alerts (raised against the old baseline)
    resolve once the scorer has applied the reset."""
    sessions = request.app.state.sessions
    send: ControlSender | None = request.app.state.control
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        found = None
        if idempotency_key is not None:
            found = await db.baseline_request(session, queue_id, idempotency_key)
        if found is not None:
            if (found.reason, found.effective_at, found.replace_configured) != (
                body.reason,
                body.effective_at,
                body.replace_configured,
            ):
                raise HTTPException(
                    409, f"Idempotency-Key {idempotency_key!r} was used for another request "
                    f"({found.request_id}) of queue {queue_id!r}",
                )  # fmt: skip
            row, replayed = found, True
        else:
            if not await db.queue_known(session, queue_id):
                raise HTTPException(404, _NOT_FOUND.format(queue_id))
            stored = await db.snapshot(session, queue_id)
            snap = stored[0] if stored else None
            if (
                snap is not None
                and snap.baseline_source == "configured"
                and not body.replace_configured
            ):
                raise HTTPException(
                    409, f"queue {queue_id!r} has a configured baseline "
                    f"({snap.baseline_p:.2%}, QW_SCORER_BASELINE_P): a standard, not "
                    "learnt. A reset replaces it with one learnt from a new Phase I: "
                    "send replace_configured=true to do so",
                )  # fmt: skip
            new = db.BaselineRequest(
                request_id=uuid.uuid4().hex, queue_id=queue_id,
                idempotency_key=idempotency_key, actor=actor(key), reason=body.reason,
                effective_at=body.effective_at, replace_configured=body.replace_configured,
                requested_at=now, status="pending",
            )  # fmt: skip
            row = await db.add_baseline_request(session, new)
            replayed = row is not new  # a concurrent request with this key was first
    if row.status != "sent":
        if send is None:
            raise HTTPException(503, "this service has no producer for control records")
        record = control.baseline_reset(
            queue_id, request_id=row.request_id, reason=row.reason, actor=row.actor,
            requested_at=row.requested_at.timestamp(),
            effective_at=row.effective_at.timestamp() if row.effective_at else None,
        )  # fmt: skip
        try:
            await send(queue_id, control.encode(record))
        except Exception as exc:
            raise HTTPException(
                503, f"the broker did not take the reset ({type(exc).__name__}); it is "
                f"recorded as {row.request_id}: retry with the same Idempotency-Key",
            ) from exc  # fmt: skip
        async with sessions() as session, session.begin():
            await db.mark_baseline_request_sent(session, row.request_id, datetime.now(UTC))
        row.status = "sent"
    return BaselineRequestOut.of(row, replayed)


@router.get(
    "/queues/{queue_id}/baselines",
    response_model=BaselineHistory,
    operation_id="queue_baselines",
    responses=_refusals(),
)
async def queue_baselines(
    queue_id: QueueId,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="baselines, newest first")] = 100,
) -> BaselineHistory:
    """The queue's baselines, newest first: each reset asked (who, when, why), when the
    scorer applied it and from which subgroup its Phase I learns, and the baseline each
    Phase I froze. A reset asked but not applied yet has `epoch` null."""
    changes = await db.baseline_changes(session, queue_id)
    asked = await db.baseline_requests(session, queue_id)
    if not changes and not asked and not await db.queue_known(session, queue_id):
        raise HTTPException(404, _NOT_FOUND.format(queue_id))
    return BaselineHistory(queue_id=queue_id, baselines=history(changes, asked)[:limit])


def history(changes: list[BaselineEvent], asked: list[db.BaselineRequest]) -> list[BaselineOut]:
    """The audit trail: the scorer's changes by epoch, each with the request that caused
    it, then the requests not applied yet; newest first."""
    requests = {r.request_id: r for r in asked}
    epochs: dict[int, dict[str, BaselineEvent]] = {}
    for change in changes:
        epochs.setdefault(change.epoch, {})[change.event] = change
    out: list[BaselineOut] = []
    applied: set[str] = set()
    newest = max(epochs, default=None)
    for epoch in sorted(epochs):
        reset, frozen = epochs[epoch].get("reset"), epochs[epoch].get("frozen")
        row = requests.get(reset.request_id) if reset is not None and reset.request_id else None
        if row is not None:
            applied.add(row.request_id)
        out.append(BaselineOut(
            epoch=epoch, status="frozen" if frozen else "learning", current=epoch == newest,
            request_id=reset.request_id if reset else None,
            actor=reset.actor if reset else None, reason=reset.reason if reset else None,
            requested_at=reset.requested_at if reset else None,
            effective_at=reset.effective_at if reset else None,
            request_status=_sent(row) if row else None,
            applied_at=reset.at if reset else None,
            phase1_from=reset.phase1_from if reset else None,
            previous_p=reset.previous_p if reset else None,
            baseline_p=frozen.baseline_p if frozen else None,
            baseline_n=frozen.baseline_n if frozen else None,
            baseline_errors=frozen.baseline_errors if frozen else None,
            subgroups=frozen.subgroups if frozen else None,
            frozen_at=frozen.at if frozen else None,
        ))  # fmt: skip
    for row in asked:
        if row.request_id in applied:
            continue
        out.append(BaselineOut(
            epoch=None, status="requested", current=False, request_id=row.request_id,
            actor=row.actor, reason=row.reason, requested_at=row.requested_at,
            effective_at=row.effective_at, request_status=_sent(row), applied_at=None,
            phase1_from=None, previous_p=None, baseline_p=None, baseline_n=None,
            baseline_errors=None, subgroups=None, frozen_at=None,
        ))  # fmt: skip
    return out[::-1]


def _sent(row: db.BaselineRequest) -> Literal["pending", "sent"]:
    return "sent" if row.status == "sent" else "pending"
