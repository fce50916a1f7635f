"""The health API and the Prometheus endpoint.

``GET /v1/queues``                    every queue with its health score and band
``GET /v1/queues/{queue_id}/health``  one queue: score, components, explanation
``GET /v1/queues/{queue_id}/chart``   one queue's closed subgroups (p-chart points), paged
``GET /v1/alerts``                    recent alerts; ``?status=firing`` for the open ones
``POST /v1/alerts/{id}/ack``          acknowledge a firing alert
``GET /v1/webhooks``                  the webhook receivers, and which are disabled (410)
``GET /metrics``                      Prometheus exposition
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Path, Query, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db, incidents, wall
from services.alerts.deps import Problem, SessionDep, SettingsDep, unprocessable
from services.alerts.health import Health, health
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from services.alerts.webhook_policy import describe
from shared.apikeys import AuthPolicy
from shared.events import Cause, EventTime, QualitySnapshot, SubgroupPoint
from shared.http_auth import AUTH_RESPONSES, needs
from shared.ids import INT_ID_MAX, KEY_ID_DESCRIPTION, KEY_ID_MAX, KEY_ID_PATTERN

# path ids follow shared/ids.py: a queue id is a key id, an alert id a positive BIGINT; any
# other value is a 422 naming the parameter, never a 500 or a miss of the route
QueueId = Annotated[
    str,
    Path(
        min_length=1, max_length=KEY_ID_MAX, pattern=KEY_ID_PATTERN, description=KEY_ID_DESCRIPTION
    ),
]
AlertId = Annotated[
    int, Path(ge=1, le=INT_ID_MAX, description="an alert's id: an integer from 1 to 2^63 - 1")
]


def _lookup(missing: str, bad: str) -> dict[int | str, dict[str, Any]]:
    """The refusals of an endpoint that looks one thing up by a path id."""
    return {404: {"model": Problem, "description": missing}, 422: unprocessable(bad)}


NOT_FOUND = "no data for queue {!r}: it is unknown, or nothing for it was scored yet"


class QueueHealth(BaseModel):
    queue_id: str
    health: Health
    snapshot: QualitySnapshot


class AlertOut(BaseModel):
    id: int
    dedup_key: str
    queue_id: str
    rule: str
    kind: str
    severity: str
    status: str
    suppressed: bool
    message: str
    first_seen_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    occurrences: int
    incident_id: int | None = Field(
        default=None, description="its incident (null: recorded before incidents existed)"
    )
    cause_summary: str | None = Field(
        default=None, description="the root cause in words, when one slice explains most"
    )
    causes: list[Cause] = Field(
        default_factory=list, description="the slices behind it, most first (root cause)"
    )

    @classmethod
    def of(cls, a: db.Alert) -> AlertOut:
        out = cls.model_validate(a, from_attributes=True)
        summary, ranked = db.causes_of(a)
        return out.model_copy(update={"cause_summary": summary, "causes": ranked})


async def _health(
    session: AsyncSession, settings: AlertsSettings, snap: QualitySnapshot, received: datetime
) -> Health:
    firing = [a.rule for a in await db.firing_alerts(session, snap.queue_id)]
    age = (datetime.now(UTC) - received).total_seconds()
    return health(
        snap, target=settings.quality.accuracy_target,
        confidence=settings.quality.target_confidence, min_sample=settings.min_sample, age_s=age,
        stale_after_s=settings.stale_after_s, firing=firing,
    )  # fmt: skip


# writes need their scope (route dependencies); reads a key with scope "read" when
# QW_API_PROTECT_READS is set (added where the router is included, so the OpenAPI
# document declares security exactly where it is asked for)
router = APIRouter(prefix="/v1")


# OpenAPI links: where a response's ids can be used next (generated clients and
# schemathesis' stateful phase follow them)
_QUEUE_LINKS = {
    "QueueHealth": {"operationId": "queue_health", "parameters": {"queue_id": "$response.body#/0/queue_id"}},
    "QueueChart": {"operationId": "queue_chart", "parameters": {"queue_id": "$response.body#/0/queue_id"}},
}  # fmt: skip
_ALERT_LINKS = {
    "AckAlert": {"operationId": "ack_alert", "parameters": {"alert_id": "$response.body#/0/id"}},
}


@router.get(
    "/queues",
    response_model=list[QueueHealth],
    operation_id="list_queues",
    responses={200: {"description": "every queue with data", "links": _QUEUE_LINKS}},
)
async def list_queues(session: SessionDep, settings: SettingsDep) -> list[QueueHealth]:
    out = []
    for snap, received in await db.snapshots(session):
        h = await _health(session, settings, snap, received)
        out.append(QueueHealth(queue_id=snap.queue_id, health=h, snapshot=snap))
    return out


@router.get(
    "/queues/{queue_id}/health",
    response_model=QueueHealth,
    operation_id="queue_health",
    responses=_lookup("no data for this queue yet", "a queue id outside the key-id grammar"),
)
async def queue_health(
    queue_id: QueueId, session: SessionDep, settings: SettingsDep
) -> QueueHealth:
    found = await db.snapshot(session, queue_id)
    if found is None:
        raise HTTPException(404, NOT_FOUND.format(queue_id))
    snap, received = found
    return QueueHealth(
        queue_id=queue_id, health=await _health(session, settings, snap, received), snapshot=snap
    )


class Chart(BaseModel):
    """One page of a queue's p-chart: closed subgroups at their newest revision."""

    queue_id: str
    points: list[SubgroupPoint] = Field(description="oldest first (by subgroup start)")
    next: str | None = Field(
        description="pass as `after` (with the same `from`, `to`, `limit`) for the next page; "
        "null on the last page"
    )


def _cursor(start: datetime) -> str:
    """A point's start as the ``after`` of the next page: UTC with ``Z``, so it survives a
    query string unencoded (a ``+00:00`` would be read as a space)."""
    return start.astimezone(UTC).isoformat().replace("+00:00", "Z")


@router.get(
    "/queues/{queue_id}/chart",
    response_model=Chart,
    operation_id="queue_chart",
    responses={
        200: {"description": "the page of points, oldest first; `next` is null on the last one"},
        404: {"model": Problem, "description": "no snapshot or subgroup of this queue yet"},
        422: unprocessable(
            "a bad queue id, `limit` outside 1..1000, or a time that is not RFC 3339 with a "
            "time zone"
        ),
    },
)
async def queue_chart(
    queue_id: QueueId,
    session: SessionDep,
    since: Annotated[
        EventTime | None,
        Query(alias="from", description="first subgroup start to include (ISO 8601, with zone)"),
    ] = None,
    until: Annotated[
        EventTime | None,
        Query(alias="to", description="subgroup starts before this (exclusive; ISO 8601)"),
    ] = None,
    after: Annotated[
        EventTime | None,
        Query(description="paging cursor: the previous page's `next` (points starting later)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="points per page")] = 200,
) -> Chart:
    """The queue's closed subgroups in start order, each at its newest revision: counts,
    limits, EWMA, signals, the counts as first closed and the late verdicts since."""
    # ``from`` at or after ``to`` is an empty range, answered as such (200, no points): a
    # relation between two parameters that the OpenAPI document could not state as a refusal
    points = await db.subgroups(
        session, queue_id, since=since, until=until, after=after, limit=limit + 1
    )
    if not points and not await db.queue_known(session, queue_id):
        raise HTTPException(404, NOT_FOUND.format(queue_id))
    more = len(points) > limit
    points = points[:limit]
    return Chart(queue_id=queue_id, points=points, next=_cursor(points[-1].start) if more else None)


@router.get(
    "/alerts",
    response_model=list[AlertOut],
    operation_id="list_alerts",
    responses={
        200: {"description": "alerts, newest first", "links": _ALERT_LINKS},
        422: unprocessable("`status` not firing|all, or `limit` outside 1..1000"),
    },
)
async def list_alerts(
    session: SessionDep,
    status: Annotated[Literal["firing", "all"], Query()] = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlertOut]:
    rows = (
        await db.firing_alerts(session)
        if status == "firing"
        else await db.recent_alerts(session, limit)
    )
    return [AlertOut.of(a) for a in rows[:limit]]


@router.post(
    "/alerts/{alert_id}/ack",
    response_model=AlertOut,
    operation_id="ack_alert",
    responses={
        **_lookup("no alert with this id", "an id that is not an integer from 1 to 2^63 - 1"),
        **AUTH_RESPONSES,
    },
)
async def ack_alert(alert_id: AlertId, session: SessionDep, key: incidents.Caller) -> AlertOut:
    """Acknowledge the alert, and its incident if that is still unacknowledged (prefer
    ``POST /v1/incidents/{id}/ack``, which takes a note)."""
    alert = await db.acknowledge(session, alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert with id {alert_id}")
    if alert.incident_id is not None:
        with contextlib.suppress(db.IncidentClosedError):
            await db.acknowledge_incident(
                session, alert.incident_id, actor=incidents.actor(key),
                note=f"via alert {alert.id}", now=datetime.now(UTC),
            )  # fmt: skip
    return AlertOut.of(alert)


class WebhookReceiverOut(BaseModel):
    receiver: str = Field(description="index in QW_ALERTS_WEBHOOK_URLS, as in the metrics")
    target: str = Field(description="scheme, host and port (the path may hold a token)")
    disabled_at: datetime | None = Field(description="when it answered 410 Gone, if it did")
    disabled_reason: str | None = None


@router.get("/webhooks", response_model=list[WebhookReceiverOut], operation_id="list_webhooks")
async def list_webhook_receivers(
    session: SessionDep, settings: SettingsDep
) -> list[WebhookReceiverOut]:
    """The configured webhook receivers; a disabled one (410 Gone) gets nothing until the
    alerts service restarts."""
    disabled = {e.url: e for e in await db.disabled_endpoints(session)}
    out = []
    for i, url in enumerate(settings.webhook_urls):
        gone = disabled.get(url)
        out.append(WebhookReceiverOut(
            receiver=str(i), target=describe(url),
            disabled_at=gone.disabled_at if gone else None,
            disabled_reason=gone.disabled_reason if gone else None,
        ))  # fmt: skip
    return out


def create_app(
    settings: AlertsSettings,
    sessions: async_sessionmaker[AsyncSession],
    metrics: Metrics,
    auth: AuthPolicy | None = None,
) -> FastAPI:
    """``auth``: the API-key policy (``shared/http_auth.py``); None lets every call in."""
    app = FastAPI(title="QualityWatch alerts and health", version="1")
    app.state.settings = settings
    app.state.auth = auth
    app.state.sessions = sessions
    if auth is not None and auth.protect_reads:
        app.include_router(router, dependencies=[needs("read")], responses=AUTH_RESPONSES)
        app.include_router(incidents.router, dependencies=[needs("read")], responses=AUTH_RESPONSES)
        wall.include(app, dependencies=[needs("read")], responses=AUTH_RESPONSES)
    else:
        app.include_router(router)
        app.include_router(incidents.router)  # services/alerts/incidents.py
        wall.include(app)  # GET /wall: the page for the operations room (services/alerts/wall.py)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    return app
