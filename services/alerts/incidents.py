"""Incidents over HTTP: list, read, acknowledge, annotate, resolve (services/alerts/db.py keeps
them; docs/operations.md says how a team works with them).

``GET  /v1/incidents``                   newest first; ``?status=open``, ``?queue_id=``, paged
``GET  /v1/incidents/{id}``              one incident: its signals and its audit trail
``POST /v1/incidents/{id}/ack``          someone is on it (scope ``ack``), with a note
``POST /v1/incidents/{id}/notes``        a line in the trail (scope ``ack``)
``POST /v1/incidents/{id}/resolve``      resolved by hand (scope ``ack``), with a note

Every change names who made it: the API key's id and name (``anonymous`` where keys are
not enforced, in development without a key file), and when.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.alerts import db
from services.alerts.deps import Problem, QueueIdFilter, SessionDep, SettingsDep, unprocessable
from shared.apikeys import ApiKey
from shared.events import Cause
from shared.http_auth import AUTH_RESPONSES, require
from shared.ids import INT_ID_MAX
from shared.text import OPTIONAL_TEXT_PATTERN, TEXT_PATTERN, clean_text

NOTE_MAX = 2000
IncidentId = Annotated[
    int, Path(ge=1, le=INT_ID_MAX, description="an incident's id: an integer from 1 to 2^63 - 1")
]
Caller = Annotated[ApiKey | None, Depends(require("ack"))]


def actor(key: ApiKey | None) -> str:
    """Who made a change, as the audit trail keeps it (never the key's secret)."""
    return "anonymous" if key is None else f"key {key.id} ({key.name})"


class IncidentOut(BaseModel):
    id: int
    queue_id: str
    status: Literal["firing", "acknowledged", "resolved"]
    severity: Literal["info", "warning", "critical"]
    rules: list[str] = Field(description="what signalled, in order of first signal")
    signals: int = Field(description="alerts recorded in it, notified or not")
    summary: str = Field(description="the first signal's message")
    opened_at: datetime
    last_signal_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None = Field(description="`system` when every signal recovered")

    @classmethod
    def of(cls, i: db.Incident) -> IncidentOut:
        return cls.model_validate(i, from_attributes=True)


class SignalOut(BaseModel):
    """One alert of the incident: a detector that signalled, and whether it notified."""

    id: int
    rule: str
    kind: str
    severity: str
    status: str
    notified: bool = Field(description="false: recorded in the open incident without a page")
    message: str
    subgroup_start: datetime | None
    first_seen_at: datetime
    resolved_at: datetime | None
    cause_summary: str | None = Field(description="the root cause in words, if one")
    causes: list[Cause] = Field(description="the slices behind it, most first")

    @classmethod
    def of(cls, a: db.Alert) -> SignalOut:
        summary, ranked = db.causes_of(a)
        return cls(
            id=a.id, rule=a.rule, kind=a.kind, severity=a.severity, status=a.status,
            notified=not a.suppressed, message=a.message, subgroup_start=a.subgroup_start,
            first_seen_at=a.first_seen_at, resolved_at=a.resolved_at,
            cause_summary=summary, causes=ranked,
        )  # fmt: skip


class TrailEntry(BaseModel):
    id: int
    at: datetime
    action: Literal["opened", "signal", "escalated", "acknowledged", "note", "resolved"]
    actor: str = Field(description="`system`, `anonymous`, or `key <id> (<name>)`")
    note: str | None
    # (not named alert_id: a nullable field of that name reads, to link-inferring clients,
    # as a link to /v1/alerts/{alert_id})
    signal_id: int | None = Field(
        description="the id of the signal (an alert of `signal_list`) the entry is about"
    )

    @classmethod
    def of(cls, e: db.IncidentEvent) -> TrailEntry:
        return cls(
            id=e.id,
            at=e.at,
            action=e.action,
            actor=e.actor,
            note=e.note,
            signal_id=e.alert_id,
        )


class IncidentDetail(IncidentOut):
    signal_list: list[SignalOut] = Field(description="its alerts, oldest first")
    trail: list[TrailEntry] = Field(description="who did what when, in order")


class Note(BaseModel):
    """A note for the trail: 1-2,000 characters of text (leading and trailing blanks
    dropped; shared.text.clean_text: no control characters but newline and tab, no
    bidirectional controls)."""

    model_config = ConfigDict(extra="forbid")
    note: str = Field(
        min_length=1, max_length=NOTE_MAX, json_schema_extra={"pattern": TEXT_PATTERN}
    )

    @field_validator("note")
    @classmethod
    def _text(cls, value: str) -> str:
        value = clean_text(value)
        if not value:
            raise ValueError("a note needs some text")
        return value


class OptionalNote(BaseModel):
    """An optional note for the trail (as ``Note``; empty or absent: none)."""

    model_config = ConfigDict(extra="forbid")
    note: str = Field(
        default="", max_length=NOTE_MAX, json_schema_extra={"pattern": OPTIONAL_TEXT_PATTERN}
    )

    @field_validator("note")
    @classmethod
    def _text(cls, value: str) -> str:
        return clean_text(value)


def _refusals(*extra: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {
        404: {"model": Problem, "description": "no incident with this id"},
        422: unprocessable("an id that is not an integer from 1 to 2^63 - 1, or a bad body"),
    }
    if 409 in extra:
        out[409] = {"model": Problem, "description": "the incident is already resolved"}
    return out


router = APIRouter(prefix="/v1", tags=["incidents"])
_MISSING = "no incident with id {}"
_CLOSED = "incident {} is already resolved"


@router.get(
    "/incidents",
    response_model=list[IncidentOut],
    operation_id="list_incidents",
    responses={422: unprocessable("a bad `status`, `queue_id`, `before` or `limit`")},
)
async def list_incidents(
    session: SessionDep,
    status: Annotated[Literal["open", "resolved", "all"], Query()] = "all",
    queue_id: QueueIdFilter = None,
    before: Annotated[
        int | None,
        Query(ge=1, le=INT_ID_MAX, description="paging: incidents with a smaller id"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[IncidentOut]:
    """Newest first. For the next page pass the last id as ``before``."""
    rows = await db.incidents(session, status=status, queue_id=queue_id, before=before, limit=limit)
    return [IncidentOut.of(i) for i in rows]


@router.get(
    "/incidents/{incident_id}",
    response_model=IncidentDetail,
    operation_id="get_incident",
    responses=_refusals(),
)
async def get_incident(incident_id: IncidentId, session: SessionDep) -> IncidentDetail:
    found = await db.incident_detail(session, incident_id)
    if found is None:
        raise HTTPException(404, _MISSING.format(incident_id))
    incident, alerts, trail = found
    return IncidentDetail(
        **IncidentOut.of(incident).model_dump(),
        signal_list=[SignalOut.of(a) for a in alerts],
        trail=[TrailEntry.of(e) for e in trail],
    )


async def _changed(incident_id: int, change: Awaitable[db.Incident | None]) -> IncidentOut:
    """The incident after ``change``: 409 when it was already resolved, 404 when missing."""
    try:
        incident = await change
    except db.IncidentClosedError:
        raise HTTPException(409, _CLOSED.format(incident_id)) from None
    if incident is None:
        raise HTTPException(404, _MISSING.format(incident_id))
    return IncidentOut.of(incident)


def _note(body: OptionalNote | None) -> str | None:
    return (body.note or None) if body else None


@router.post(
    "/incidents/{incident_id}/ack",
    response_model=IncidentOut,
    operation_id="ack_incident",
    responses={**_refusals(409), **AUTH_RESPONSES},
)
async def ack_incident(
    incident_id: IncidentId, session: SessionDep, key: Caller, body: OptionalNote | None = None
) -> IncidentOut:
    """Someone is on it. The incident still resolves by itself when its signals recover."""
    return await _changed(incident_id, db.acknowledge_incident(
        session, incident_id, actor=actor(key), note=_note(body), now=datetime.now(UTC)
    ))  # fmt: skip


@router.post(
    "/incidents/{incident_id}/notes",
    response_model=TrailEntry,
    status_code=201,
    operation_id="annotate_incident",
    responses={**_refusals(), **AUTH_RESPONSES},
)
async def annotate_incident(
    incident_id: IncidentId, body: Note, session: SessionDep, key: Caller
) -> TrailEntry:
    """A line in the incident's trail: what was found, what was done."""
    event = await db.annotate_incident(
        session, incident_id, actor=actor(key), note=body.note, now=datetime.now(UTC)
    )
    if event is None:
        raise HTTPException(404, _MISSING.format(incident_id))
    return TrailEntry.of(event)


@router.post(
    "/incidents/{incident_id}/resolve",
    response_model=IncidentOut,
    operation_id="resolve_incident",
    responses={**_refusals(409), **AUTH_RESPONSES},
)
async def resolve_incident(
    incident_id: IncidentId, session: SessionDep, settings: SettingsDep, key: Caller,
    body: OptionalNote | None = None,
) -> IncidentOut:  # fmt: skip
    """Resolved by hand, with the "resolved" webhooks. If the condition persists, the
    next breach opens a new incident."""
    return await _changed(incident_id, db.resolve_incident(
        session, incident_id, actor=actor(key), note=_note(body),
        receivers=settings.webhook_urls, now=datetime.now(UTC),
    ))  # fmt: skip
