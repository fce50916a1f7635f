"""The health API and the Prometheus endpoint.

``GET /v1/queues``                    every queue with its health score and band
``GET /v1/queues/{queue_id}/health``  one queue: score, components, explanation
``GET /v1/alerts``                    recent alerts; ``?status=firing`` for the open ones
``POST /v1/alerts/{id}/ack``          acknowledge a firing alert
``GET /metrics``                      Prometheus exposition
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.health import Health, health
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from shared.events import QualitySnapshot


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session, session.begin():
        yield session


def get_settings(request: Request) -> AlertsSettings:
    settings: AlertsSettings = request.app.state.settings
    return settings


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[AlertsSettings, Depends(get_settings)]
QueueId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\s/]+$")]


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

    @classmethod
    def of(cls, a: db.Alert) -> AlertOut:
        return cls.model_validate(a, from_attributes=True)


async def _health(
    session: AsyncSession, settings: AlertsSettings, snap: QualitySnapshot, received: datetime
) -> Health:
    firing = [a.rule for a in await db.firing_alerts(session, snap.queue_id)]
    age = (datetime.now(UTC) - received).total_seconds()
    return health(
        snap, target=settings.quality.accuracy_target, min_sample=settings.min_sample, age_s=age,
        stale_after_s=settings.stale_after_s, firing=firing,
    )  # fmt: skip


router = APIRouter(prefix="/v1")


@router.get("/queues", response_model=list[QueueHealth])
async def list_queues(session: SessionDep, settings: SettingsDep) -> list[QueueHealth]:
    out = []
    for snap, received in await db.snapshots(session):
        h = await _health(session, settings, snap, received)
        out.append(QueueHealth(queue_id=snap.queue_id, health=h, snapshot=snap))
    return out


@router.get(
    "/queues/{queue_id}/health",
    response_model=QueueHealth,
    responses={404: {"description": "no data for this queue yet"}},
)
async def queue_health(
    queue_id: QueueId, session: SessionDep, settings: SettingsDep
) -> QueueHealth:
    found = await db.snapshot(session, queue_id)
    if found is None:
        raise HTTPException(
            404,
            f"no data for queue {queue_id!r}: it is unknown, or no event for it was scored yet",
        )
    snap, received = found
    return QueueHealth(
        queue_id=queue_id, health=await _health(session, settings, snap, received), snapshot=snap
    )


@router.get("/alerts", response_model=list[AlertOut])
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


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut)
async def ack_alert(alert_id: int, session: SessionDep) -> AlertOut:
    alert = await db.acknowledge(session, alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert with id {alert_id}")
    return AlertOut.of(alert)


def create_app(
    settings: AlertsSettings, sessions: async_sessionmaker[AsyncSession], metrics: Metrics
) -> FastAPI:
    app = FastAPI(title="QualityWatch alerts and health", version="1")
    app.state.settings = settings
    app.state.sessions = sessions
    app.include_router(router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    return app
