"""The wall: one page for a screen across the operations room, served by the alerts service.

``GET /wall``                        the page (HTML; its CSS and JavaScript ship in ``static/``)
``GET /wall/wall.css``, ``wall.js``  the page's style and script: no CDN, works offline
``GET /wall/tiles``                  every queue as a tile, worst first (JSON)
``GET /wall/queues/{queue_id}``      one queue's control chart (newest subgroups), its
                                     incident history and its sites
``GET /wall/events``                 server-sent events: the tiles, then what changes

One task per process (the ``WallHub``) recomputes the tiles every ``wall_refresh_s`` while
at least one page is open and pushes only the tiles that changed to every open stream, so
N open pages cost one computation, not N polls. At most ``wall_max_streams`` streams are
served at once; one more is refused with 503 and a ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.background import BackgroundTask

from services.alerts import db
from services.alerts.health import Band, SiteHealth, health, site_health
from services.alerts.incidents import IncidentOut
from services.alerts.settings import AlertsSettings
from shared.events import QUEUE_ID_PATTERN, QualitySnapshot, SubgroupPoint
from shared.http_head import is_head
from shared.stats.intervals import wilson_interval

TREND_POINTS = 48  # subgroups in a tile's sparkline
CHART_POINTS = 200  # subgroups in the chart a click opens
ALERT_HISTORY = 50  # alerts in the history a click opens
INCIDENT_HISTORY = 20  # incidents in the history a click opens
KEEPALIVE_S = 15.0  # an SSE comment line this often, so proxies keep the stream open
STREAM_BACKLOG = 64  # messages a slow page may lag behind before its stream is closed

BAND_TEXT: dict[str, str] = {
    "red": "RED: act now",
    "amber": "AMBER: watch",
    "green": "GREEN: in control",
    "insufficient_data": "NO DATA: too few verdicts",
}
BAND_LABEL: dict[str, str] = {  # the compact tile's words for the band
    "red": "RED",
    "amber": "AMBER",
    "green": "GREEN",
    "insufficient_data": "NO DATA",
}
BAND_RANK: dict[str, int] = {"red": 0, "amber": 1, "insufficient_data": 2, "green": 3}


class WallAlert(BaseModel):
    """An alert of the queue: its rule, what the scorer said, and its cause when the breach
    carries one."""

    id: int
    rule: str
    kind: str
    severity: str
    status: str = Field(description="firing, acknowledged or resolved")
    message: str
    cause: str | None = Field(description="the breach's cause, when it carries one")
    subgroup_start: datetime | None
    first_seen_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    occurrences: int


class WallIncident(IncidentOut):
    """An incident of the queue as its history shows it: what ``GET /v1/incidents`` says of
    it, with its signals by rule, its top cause and its notes (``GET /v1/incidents/{id}``
    has the rest)."""

    signals_by_rule: dict[str, int] = Field(
        description="the detectors that signalled in it: rule -> its alerts (signals), in "
        "order of first signal"
    )
    top_cause: str | None = Field(
        description="the root cause in words of its first signal that carries one"
    )
    notes: int = Field(
        description="notes people wrote in its trail (as a note, or on an acknowledgement or "
        "a resolution)"
    )
    last_note: str | None = Field(description="the newest of those notes")
    last_note_by: str | None
    last_note_at: datetime | None


def wall_incident(h: db.IncidentHistory) -> WallIncident:
    note = h.last_note
    return WallIncident(
        **IncidentOut.of(h.incident).model_dump(),
        signals_by_rule=h.rule_signals or dict.fromkeys(h.incident.rules, 0),
        top_cause=h.top_cause, notes=h.notes, last_note=note.note if note else None,
        last_note_by=note.actor if note else None, last_note_at=note.at if note else None,
    )  # fmt: skip


class Tile(BaseModel):
    queue_id: str
    band: Band
    band_text: str = Field(description="the band in words: colour is never the only signal")
    band_label: str = Field(
        default="",
        description="the band in one word (RED, AMBER, GREEN, NO DATA): the compact tile's",
    )
    score: float | None = Field(
        description="the health score, as the health API gives it: capped at the band's top "
        "(59 red, 79 amber) when `band_reason` holds the band down, so it never reads 100 "
        "beside a red band"
    )
    band_reason: str | None = Field(
        default=None,
        description="why the band is not green, in one line (the health's `band_reason`: the "
        "queue or a site below target, an open alert, what the score's components say, too "
        "few verdicts); null while green. Full and compact tiles print it",
    )
    explanation: str
    accuracy_24h: float | None
    accuracy_low: float | None = Field(description="95% Wilson interval of the 24h accuracy")
    accuracy_high: float | None
    n_24h: int
    target: float
    baseline_state: str = Field(description="phase1 (learning the baseline) or frozen")
    phase1_subgroups: int = Field(description="subgroups learned from so far, while in Phase I")
    baseline: str = Field(
        default="", description="the health's words for it: learning (5/24), estimated, configured"
    )
    top_error: str | None = Field(description="the most frequent error type in 24 h")
    trend: list[float | None] = Field(
        description=f"error rate of the last {TREND_POINTS} published subgroups, oldest first "
        "(null where the subgroup had no random verdict)"
    )
    trend_ucl: list[float | None] = Field(description="each trend point's upper limit")
    alerts: list[WallAlert] = Field(description="open alerts (firing or acknowledged)")
    incident: IncidentOut | None = Field(
        default=None,
        description="the queue's open incident (firing or acknowledged: who acknowledged it "
        "and when), if any",
    )
    as_of: datetime = Field(description="the queue's event-time watermark")


class WallState(BaseModel):
    generated_at: datetime
    tiles: list[Tile] = Field(description="worst first: band, then score, then queue id")


class QueueDetail(BaseModel):
    tile: Tile
    points: list[SubgroupPoint] = Field(
        description=f"the newest {CHART_POINTS} subgroups at their newest revision, oldest first"
    )
    incidents: list[WallIncident] = Field(
        default_factory=list,
        description=f"the newest {INCIDENT_HISTORY} incidents of the queue, newest first: "
        "what the dialog shows as its history",
    )
    alerts: list[WallAlert] = Field(description=f"the newest {ALERT_HISTORY} alerts, newest first")
    sites: list[SiteHealth] = Field(
        default_factory=list,
        description="the queue's sites against their targets over 24 h and 7 d, as in the "
        "health API's `health.sites`",
    )


class WallProblem(BaseModel):
    """What went wrong (404, 503)."""

    detail: str


def sort_key(tile: Tile) -> tuple[int, float, int, str]:
    """Worst first: red, amber, no data, green; then the lower score, the more open alerts."""
    score = tile.score if tile.score is not None else 101.0
    return (BAND_RANK[tile.band], score, -len(tile.alerts), tile.queue_id)


def _cause(breach: dict[str, Any]) -> str | None:
    """The breach's root cause in words (``cause_summary``, services/scorer/causes.py)."""
    summary = breach.get("cause_summary")
    if isinstance(summary, str) and summary:
        return summary
    cause = breach.get("cause")
    if isinstance(cause, str) and cause:
        return cause
    if isinstance(cause, dict):
        text = cause.get("summary") or cause.get("text")
        if isinstance(text, str) and text:
            return text
        return ", ".join(f"{k}: {v}" for k, v in cause.items()) or None
    return None


def wall_alert(a: db.Alert) -> WallAlert:
    return WallAlert(
        id=a.id, rule=a.rule, kind=a.kind, severity=a.severity, status=a.status,
        message=a.message, cause=_cause(a.breach or {}), subgroup_start=a.subgroup_start,
        first_seen_at=a.first_seen_at, last_seen_at=a.last_seen_at, resolved_at=a.resolved_at,
        occurrences=a.occurrences,
    )  # fmt: skip


def tile(
    settings: AlertsSettings,
    snap: QualitySnapshot,
    received: datetime,
    open_alerts: list[db.Alert],
    trend: list[dict[str, Any]],
    now: datetime,
    incident: db.Incident | None = None,
) -> Tile:
    # as the health API computes it (services/alerts/view.py): the same band and words,
    # a site below its target with confidence included
    h = health(
        snap, target=settings.quality.accuracy_target,
        confidence=settings.quality.target_confidence, min_sample=settings.min_sample,
        age_s=(now - received).total_seconds(), stale_after_s=settings.stale_after_s,
        firing=[a.rule for a in open_alerts], site_target=settings.quality.site_target,
    )  # fmt: skip
    low = high = None
    if snap.accuracy_24h is not None and snap.n_24h > 0:
        ci = wilson_interval(
            round(snap.accuracy_24h * snap.n_24h), snap.n_24h, settings.quality.target_confidence
        )
        low, high = ci.lower, ci.upper
    errors = snap.errors_24h_by_type
    top = max(sorted(errors), key=lambda k: errors[k]) if any(errors.values()) else None
    text = BAND_TEXT[h.band]
    if h.band == "green" and snap.baseline_state == "phase1":
        text = "GREEN: on target, learning"  # the charts wait for Phase I: not "in control"
    return Tile(
        queue_id=snap.queue_id, band=h.band, band_text=text, band_label=BAND_LABEL[h.band],
        score=h.score, band_reason=h.band_reason,
        explanation=h.explanation, accuracy_24h=snap.accuracy_24h, accuracy_low=low,
        accuracy_high=high, n_24h=snap.n_24h, target=h.target,
        baseline_state=snap.baseline_state,
        phase1_subgroups=snap.phase1_subgroups, baseline=h.baseline,
        top_error=top,
        trend=[p.get("p") for p in trend], trend_ucl=[p.get("ucl") for p in trend],
        alerts=[wall_alert(a) for a in open_alerts],
        incident=None if incident is None else IncidentOut.of(incident), as_of=snap.as_of,
    )  # fmt: skip


async def _trends(session: AsyncSession, points: int) -> dict[str, list[dict[str, Any]]]:
    """The last ``points`` subgroups of every queue, oldest first, in one query."""
    rn = (
        func.row_number()
        .over(partition_by=db.Subgroup.queue_id, order_by=db.Subgroup.start.desc())
        .label("rn")
    )
    inner = select(db.Subgroup.queue_id, db.Subgroup.start, db.Subgroup.point, rn).subquery()
    rows = await session.execute(
        select(inner.c.queue_id, inner.c.point)
        .where(inner.c.rn <= points)
        .order_by(inner.c.queue_id, inner.c.start)
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for queue_id, point in rows:
        out.setdefault(queue_id, []).append(point)
    return out


async def wall_state(
    sessions: async_sessionmaker[AsyncSession], settings: AlertsSettings
) -> WallState:
    async with sessions() as session, session.begin():
        snaps = await db.snapshots(session)
        firing = await db.firing_alerts(session)
        trends = await _trends(session, TREND_POINTS)
        incidents = await db.open_incidents_by_queue(session)
    by_queue: dict[str, list[db.Alert]] = {}
    for a in firing:
        by_queue.setdefault(a.queue_id, []).append(a)
    now = datetime.now(UTC)
    tiles = [
        tile(settings, snap, received, by_queue.get(snap.queue_id, []),
             trends.get(snap.queue_id, []), now, incidents.get(snap.queue_id))
        for snap, received in snaps
    ]  # fmt: skip
    return WallState(generated_at=now, tiles=sorted(tiles, key=sort_key))


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class WallHub:
    """Computes the wall once per refresh for every open stream and pushes what changed.

    A new stream first gets the whole wall (``snapshot``), then ``update`` events with the
    tiles that changed, the ids of queues that went away and the new order.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: AlertsSettings,
        *,
        max_streams: int,
        refresh_s: float,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.max_streams = max_streams
        self.refresh_s = refresh_s
        self._streams: set[asyncio.Queue[str | None]] = set()
        self._tiles: dict[str, str] | None = None  # queue id -> the tile's JSON, last pushed
        self._order: list[str] = []
        self._order_pushed: list[str] = []
        self._generated_at = ""
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.computations = 0

    @property
    def streams(self) -> int:
        return len(self._streams)

    def subscribe(self) -> asyncio.Queue[str | None] | None:
        """A stream's queue of messages, or None when ``max_streams`` are open (or closing)."""
        if self._closed or len(self._streams) >= self.max_streams:
            return None
        q: asyncio.Queue[str | None] = asyncio.Queue(maxsize=STREAM_BACKLOG)
        self._streams.add(q)
        if self._tiles is not None:
            q.put_nowait(self._snapshot())
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="wall")
        return q

    def unsubscribe(self, q: asyncio.Queue[str | None]) -> None:
        self._streams.discard(q)

    def close(self) -> None:
        """End every stream (the server is stopping) and refuse new ones."""
        self._closed = True
        for q in list(self._streams):
            self._drop(q)
        if self._task is not None:
            self._task.cancel()

    def _drop(self, q: asyncio.Queue[str | None]) -> None:
        self._streams.discard(q)
        while True:  # make room for the end marker
            try:
                q.put_nowait(None)
                return
            except asyncio.QueueFull:
                q.get_nowait()

    def _snapshot(self) -> str:
        tiles = self._tiles or {}
        body = ",".join(tiles[q] for q in self._order)
        return (
            f'event: snapshot\ndata: {{"generated_at":"{self._generated_at}","tiles":[{body}]}}\n\n'
        )

    def _push(self, message: str) -> None:
        for q in list(self._streams):
            try:
                q.put_nowait(message)
            except asyncio.QueueFull:  # a page that does not read: close its stream
                self._drop(q)

    async def _run(self) -> None:
        try:
            while self._streams and not self._closed:
                state = await wall_state(self.sessions, self.settings)
                self.computations += 1
                self._apply(state)
                await asyncio.sleep(self.refresh_s)
        finally:
            self._tiles = None  # stale once nobody watches: the next stream starts afresh

    def _apply(self, state: WallState) -> None:
        new = {t.queue_id: t.model_dump_json() for t in state.tiles}
        order = [t.queue_id for t in state.tiles]
        generated = state.generated_at.isoformat()
        old, self._tiles, self._order, self._generated_at = self._tiles, new, order, generated
        if old is None:
            self._push(self._snapshot())
            self._order_pushed = order
            return
        changed = [q for q in order if old.get(q) != new[q]]
        removed = [q for q in old if q not in new]
        if not changed and not removed and order == self._order_pushed:
            return
        self._push(
            f'event: update\ndata: {{"generated_at":"{generated}",'
            f'"tiles":[{",".join(new[q] for q in changed)}],'
            f'"removed":{json.dumps(removed)},"order":{json.dumps(order)}}}\n\n'
        )
        self._order_pushed = order


def hub(request: Request) -> WallHub:
    app = request.app
    found: WallHub | None = getattr(app.state, "wall", None)
    if found is None:
        settings: AlertsSettings = app.state.settings
        found = WallHub(
            app.state.sessions, settings,
            max_streams=settings.wall_max_streams, refresh_s=settings.wall_refresh_s,
        )  # fmt: skip
        app.state.wall = found
    return found


def close(app: FastAPI) -> None:
    """End the wall's open streams so the HTTP server can stop (call on shutdown)."""
    found: WallHub | None = getattr(app.state, "wall", None)
    if found is not None:
        found.close()


def _static(name: str) -> str:
    return files("services.alerts").joinpath("static", name).read_text(encoding="utf-8")


QueueId = Annotated[
    str, Path(pattern=QUEUE_ID_PATTERN, description="queue id (letters, digits, `._:-`)")
]
router = APIRouter(prefix="/wall", tags=["wall"])


@router.get(
    "",
    operation_id="wall_page",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "the wall page"}},
)
async def wall_page() -> HTMLResponse:
    """The wall: every queue as a tile, worst first, live."""
    return HTMLResponse(_static("wall.html"), headers={"Cache-Control": "no-cache"})


@router.get(
    "/wall.css",
    operation_id="wall_css",
    response_class=Response,
    responses={200: {"content": {"text/css": {}}, "description": "the wall's style sheet"}},
)
async def wall_css() -> Response:
    return Response(_static("wall.css"), media_type="text/css; charset=utf-8")


@router.get(
    "/wall.js",
    operation_id="wall_js",
    response_class=Response,
    responses={200: {"content": {"text/javascript": {}}, "description": "the wall's script"}},
)
async def wall_js() -> Response:
    return Response(_static("wall.js"), media_type="text/javascript; charset=utf-8")


@router.get("/tiles", response_model=WallState, operation_id="wall_tiles")
async def wall_tiles(request: Request) -> WallState:
    """Every queue as a tile, worst first (what the page's first ``snapshot`` event holds)."""
    return await wall_state(request.app.state.sessions, request.app.state.settings)


@router.get(
    "/queues/{queue_id}",
    operation_id="wall_queue",
    response_model=QueueDetail,
    responses={404: {"model": WallProblem, "description": "no snapshot of this queue yet"}},
)
async def wall_queue(queue_id: QueueId, request: Request) -> QueueDetail:
    """What a click on a tile opens: the control chart's newest subgroups, the queue's
    incidents (its history) and alerts, its sites."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session, session.begin():
        found = await db.snapshot(session, queue_id)
        if found is None:
            raise HTTPException(404, f"no snapshot of queue {queue_id!r} yet")
        newest = (
            await session.scalars(
                select(db.Subgroup.point)
                .where(db.Subgroup.queue_id == queue_id)
                .order_by(db.Subgroup.start.desc())
                .limit(CHART_POINTS)
            )
        ).all()
        history = (
            await session.scalars(
                select(db.Alert)
                .where(db.Alert.queue_id == queue_id)
                .order_by(db.Alert.id.desc())
                .limit(ALERT_HISTORY)
            )
        ).all()
        firing = await db.firing_alerts(session, queue_id)
        open_incident = (await db.open_incidents_by_queue(session, queue_id)).get(queue_id)
        history_of_incidents = await db.incident_history(session, queue_id, INCIDENT_HISTORY)
    snap, received = found
    points = [SubgroupPoint.model_validate(p) for p in reversed(newest)]
    raw = [p.model_dump(mode="json") for p in points[-TREND_POINTS:]]
    s: AlertsSettings = request.app.state.settings
    return QueueDetail(
        tile=tile(s, snap, received, firing, raw, datetime.now(UTC), open_incident),
        points=points,
        incidents=[wall_incident(h) for h in history_of_incidents],
        alerts=[wall_alert(a) for a in history],
        sites=site_health(snap, s.quality.site_target, s.quality.target_confidence, s.min_sample),
    )


@router.get(
    "/events",
    operation_id="wall_events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "server-sent events: `snapshot` (every tile, worst first), then "
            "`update` (the tiles that changed, `removed` ids, the new `order`)",
        },
        503: {
            "model": WallProblem,
            "description": "as many live walls as `QW_ALERTS_WALL_MAX_STREAMS` are open",
        },
    },
)
async def wall_events(request: Request) -> Response:
    """The live wall: one stream per open page, fed by one computation for all of them."""
    wall = hub(request)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if is_head(request.scope) and wall.streams < wall.max_streams:
        # a HEAD (shared/http_head.py): the stream's headers, without taking a stream's slot
        return Response(media_type="text/event-stream", headers=headers)
    q = None if is_head(request.scope) else wall.subscribe()
    if q is None:
        return JSONResponse(
            {"detail": f"{wall.max_streams} live walls are open; retry later"},
            status_code=503,
            headers={"Retry-After": "30"},
        )

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 3000\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(q.get(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if message is None:
                    return
                yield message
        finally:
            wall.unsubscribe(q)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers=headers,
        background=BackgroundTask(wall.unsubscribe, q),
    )


def include(app: FastAPI, **options: Any) -> None:
    """Serve the wall from ``app`` (whose state holds ``settings`` and ``sessions``);
    ``options`` go to ``include_router`` (the API's read-key dependency, when reads are
    protected)."""
    app.include_router(router, **options)
