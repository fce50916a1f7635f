"""The health API and the Prometheus endpoint.

``GET /v1/queues``                    queues with their health score and band: paged, filtered
                                      by band, team and site, with an ETag
``GET /v1/queues/{queue_id}/health``  one queue: score, components, explanation
``POST /v1/health:batch``             the health of up to 500 queues
``GET /v1/queues/{queue_id}/chart``   one queue's closed subgroups (p-chart points), paged,
                                      and its baseline changes
``POST /v1/queues/{queue_id}/baseline:reset``, ``GET /v1/queues/{queue_id}/baselines``
                                      a new Phase I, and the audit trail (baselines.py)
``GET /v1/alerts``                    recent alerts; ``?status=firing`` for the open ones
``POST /v1/alerts/{id}/ack``          acknowledge a firing alert
``GET /v1/webhooks``                  the webhook receivers, and which are disabled (410)
``GET /metrics``                      Prometheus exposition

The health of queues is served from memory (``services/alerts/view.py``), not computed per
request; the other endpoints read the database.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
)
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from services.alerts import baselines, db, incidents, wall
from services.alerts.deps import Problem, QueueIdFilter, SessionDep, SettingsDep, unprocessable
from services.alerts.health import Band
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from services.alerts.view import HealthView, QueueHealth
from services.alerts.webhook_policy import describe
from shared import http_auth, http_docs, http_errors, http_head
from shared.apikeys import AuthError, AuthPolicy, authorize, token_from
from shared.events import BaselineEvent, Cause, EventTime, SubgroupPoint
from shared.http_auth import AUTH_RESPONSES, needs
from shared.http_head import HeadAsGet
from shared.ids import (
    INT_ID_MAX,
    KEY_ID_DESCRIPTION,
    KEY_ID_MAX,
    KEY_ID_PATTERN,
    KeyId,
    is_key_id,
)

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
    site: str | None = Field(
        default=None,
        description="the one site behind it, when its breach names one (a `cusum_site_upper` "
        "whose site stands out from the rest of the queue, or a breach whose root cause is one "
        "site; the Alertmanager `site` label); null otherwise",
    )
    cause_summary: str | None = Field(
        default=None, description="the root cause in words (what stands out, or queue-wide)"
    )
    causes: list[Cause] = Field(
        default_factory=list, description="the slices behind it, most first (root cause)"
    )

    @classmethod
    def of(cls, a: db.Alert) -> AlertOut:
        out = cls.model_validate(a, from_attributes=True)
        summary, ranked = db.causes_of(a)
        return out.model_copy(
            update={"cause_summary": summary, "causes": ranked, "site": db.site_of(a)}
        )


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


def get_view(request: Request) -> HealthView:
    view: HealthView = request.app.state.view
    return view


ViewDep = Annotated[HealthView, Depends(get_view)]


async def _loaded(view: HealthView) -> HealthView:
    # the service loads its view before it serves; an app built without one (create_app
    # with no view: tests, embedding) reads the database on its first health request
    if not view.loaded:
        await view.load()
    return view


def _json(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, media_type="application/json", headers=headers)


LIST_DEFAULT, LIST_MAX = 100, 1000
TEAM_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_ETAG_HEADER = {
    "description": "the page's entity tag: send it back as If-None-Match to get 304 while "
    "the page is unchanged",
    "schema": {"type": "string"},
}
_LIST_HEADERS = {
    "ETag": _ETAG_HEADER,
    "Link": {
        "description": 'when another page follows: `</v1/queues?...&after=ID>; rel="next"`',
        "schema": {"type": "string"},
    },
    "X-Next-After": {
        "description": "when another page follows: the `after` of the next page (the last "
        "queue id of this one)",
        "schema": {"type": "string"},
    },
}


def _matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match (RFC 9110 13.1.2): ``*`` or a list of tags, compared weakly."""
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


@router.get(
    "/queues",
    response_model=list[QueueHealth],
    operation_id="list_queues",
    responses={
        200: {
            "description": "a page of queues with data, by queue id; `Link` and "
            "`X-Next-After` name the next page when one follows",
            "links": _QUEUE_LINKS,
            "headers": _LIST_HEADERS,
        },
        304: {
            "description": "the page is unchanged since the ETag sent as If-None-Match",
            "headers": {"ETag": _ETAG_HEADER},
        },
        422: unprocessable(
            f"`limit` outside 1..{LIST_MAX}, `after` or `site` outside the key-id grammar, an "
            "unknown `band`, or a `team` outside its grammar"
        ),
    },
)
async def list_queues(
    request: Request,
    view: ViewDep,
    limit: Annotated[int, Query(ge=1, le=LIST_MAX, description="queues per page")] = LIST_DEFAULT,
    after: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=KEY_ID_MAX,
            pattern=KEY_ID_PATTERN,
            description="paging cursor: queues whose id sorts after this one (the previous "
            "page's `X-Next-After`)",
        ),
    ] = None,
    band: Annotated[
        list[Band] | None,
        Query(max_length=4, description="only queues in these bands (repeat for several)"),
    ] = None,
    team: Annotated[
        str | None,
        Query(
            pattern=TEAM_PATTERN,
            description="only queues of this team (QW_ALERTS_ALERTMANAGER_TEAMS, else "
            "QW_ALERTS_ALERTMANAGER_DEFAULT_TEAM)",
        ),
    ] = None,
    site: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=KEY_ID_MAX,
            pattern=KEY_ID_PATTERN,
            description="only queues with decisions or verdicts of this site in the last 7 "
            "days (one the queue counts by name: QW_SCORER_SITES_PER_QUEUE)",
        ),
    ] = None,
    if_none_match: Annotated[
        str | None,
        Header(max_length=2000, description="an ETag of this page from an earlier answer"),
    ] = None,
) -> Response:
    """Every queue with data, with its health score and band, sorted by queue id (a stable
    order to page through: a worst-first order would move queues between pages as their
    health changes; the wall's `/wall/tiles` is worst first). Each queue's health lists
    its sites against their targets (`health.sites`)."""
    view = await _loaded(view)
    page = view.page(limit=limit, after=after, bands=band or (), team=team, site=site)
    headers = {"ETag": page.etag}
    if if_none_match is not None and _matches(if_none_match, page.etag):
        return Response(status_code=304, headers=headers)
    if page.next_after is not None:
        nxt = request.url.include_query_params(after=page.next_after)
        headers["Link"] = f'<{nxt.path}?{nxt.query}>; rel="next"'
        headers["X-Next-After"] = page.next_after
    return _json(page.json(), headers)


@router.get(
    "/queues/{queue_id}/health",
    response_model=QueueHealth,
    operation_id="queue_health",
    responses=_lookup("no data for this queue yet", "a queue id outside the key-id grammar"),
)
async def queue_health(queue_id: QueueId, view: ViewDep) -> Response:
    entry = (await _loaded(view)).get(queue_id)
    if entry is None:
        raise HTTPException(404, NOT_FOUND.format(queue_id))
    return _json(entry.body)


BATCH_MAX = 500


class HealthBatchRequest(BaseModel):
    queue_ids: list[KeyId] = Field(
        min_length=1, max_length=BATCH_MAX,
        description=f"1 to {BATCH_MAX} queue ids (a repeated id is answered each time)",
    )  # fmt: skip


class HealthBatchItem(BaseModel):
    queue_id: str
    status: Literal["ok", "unknown"] = Field(
        description="ok: `result` holds the queue's health; unknown: no data for this queue "
        "(it is unknown, or nothing for it was scored yet)"
    )
    result: QueueHealth | None = Field(description="what GET /v1/queues/{id}/health answers")


class HealthBatch(BaseModel):
    results: list[HealthBatchItem] = Field(description="one per id asked, in the same order")


@router.post(
    "/health:batch",
    response_model=HealthBatch,
    operation_id="health_batch",
    responses={
        422: unprocessable(
            f"no ids or more than {BATCH_MAX}, or an id outside the key-id grammar (`loc` "
            "names the item: `['body', 'queue_ids', 3]`)"
        )
    },
)
async def health_batch(body: HealthBatchRequest, view: ViewDep) -> Response:
    """The health of up to 500 queues in one call, for routing services."""
    return _json((await _loaded(view)).batch(body.queue_ids))


class Chart(BaseModel):
    """One page of a queue's p-chart: closed subgroups at their newest revision."""

    queue_id: str
    points: list[SubgroupPoint] = Field(description="oldest first (by subgroup start)")
    next: str | None = Field(
        description="pass as `after` (with the same `from`, `to`, `limit`) for the next page; "
        "null on the last page"
    )
    baseline_changes: list[BaselineEvent] = Field(
        default_factory=list,
        description="every baseline change of the queue, oldest first, to mark on the chart: "
        "a `reset` at `phase1_from` (the first subgroup of its Phase I; who and why), a "
        "`frozen` at `last_subgroup` (the Phase I's last subgroup; the new baseline)",
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
    return Chart(
        queue_id=queue_id, points=points, next=_cursor(points[-1].start) if more else None,
        baseline_changes=await db.baseline_changes(session, queue_id),
    )  # fmt: skip


@router.get(
    "/alerts",
    response_model=list[AlertOut],
    operation_id="list_alerts",
    responses={
        200: {"description": "alerts, newest first", "links": _ALERT_LINKS},
        422: unprocessable(
            "`status` not firing|all, `limit` outside 1..1000, or a `queue_id` outside the "
            "key-id grammar"
        ),
    },
)
async def list_alerts(
    session: SessionDep,
    status: Annotated[Literal["firing", "all"], Query()] = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    queue_id: QueueIdFilter = None,
) -> list[AlertOut]:
    """Newest first (``status=firing``: the open ones, oldest first), at most ``limit``."""
    rows = (
        await db.firing_alerts(session, queue_id)
        if status == "firing"
        else await db.recent_alerts(session, limit, queue_id)
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


class HealthFastPath:
    """``GET /v1/queues/{id}/health`` answered before FastAPI's routing, dependencies and
    validation: the id checked against the key-id grammar, the read key checked as
    ``needs("read")`` checks it (``shared/apikeys.authorize``), the view's bytes sent. Only a
    success is answered here; anything else (an unknown queue, a bad id, a missing or
    refused key, a view not loaded yet) goes on to the route, which answers as documented.
    The route stays the one the OpenAPI document describes; this is a shortcut to it."""

    PREFIX, SUFFIX = "/v1/queues/", "/health"

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state  # the FastAPI app's state: view and auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            body = self._answer(scope)
            if body is not None:
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                ]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> bytes | None:
        path: str = scope["path"]
        if not (path.startswith(self.PREFIX) and path.endswith(self.SUFFIX)):
            return None
        queue_id = path[len(self.PREFIX) : -len(self.SUFFIX)]
        view: HealthView = self.state.view
        if not view.loaded or not is_key_id(queue_id):
            return None
        auth: AuthPolicy | None = self.state.auth
        if auth is not None and auth.protect_reads and auth.enforced("read"):
            key = bearer = None  # the first of each, as the route's dependency reads them
            for name, value in scope["headers"]:
                if name == b"x-api-key" and key is None:
                    key = value
                elif name == b"authorization" and bearer is None:
                    bearer = value
            try:
                authorize(auth, "read", token_from(
                    bearer.decode("latin-1") if bearer else None,
                    key.decode("latin-1") if key else None,
                ))  # fmt: skip
            except AuthError:
                return None
        entry = view.get(queue_id)
        return entry.body if entry is not None else None


def create_app(
    settings: AlertsSettings,
    sessions: async_sessionmaker[AsyncSession],
    metrics: Metrics,
    auth: AuthPolicy | None = None,
    view: HealthView | None = None,
    control: baselines.ControlSender | None = None,
) -> FastAPI:
    """``auth``: the API-key policy (``shared/http_auth.py``); None lets every call in.
    ``view``: the health view the service keeps current (``services/alerts/view.py``); None
    makes one that loads from ``sessions`` on its first read and is not kept current.
    ``control``: produces a baseline reset onto the scorer's input topic (``main.py``);
    None answers a reset with 503."""
    app = http_docs.service_app(
        "QualityWatch alerts and health"
    )  # /docs offline (shared/http_docs.py)
    http_errors.install(app, max_body_bytes=settings.max_body_bytes)
    app.state.settings = settings
    app.state.view = view if view is not None else HealthView(settings, sessions)
    app.state.auth = auth
    app.state.sessions = sessions
    app.state.control = control
    if auth is not None and auth.protect_reads:
        app.include_router(router, dependencies=[needs("read")], responses=AUTH_RESPONSES)
        app.include_router(incidents.router, dependencies=[needs("read")], responses=AUTH_RESPONSES)
        app.include_router(baselines.router, dependencies=[needs("read")], responses=AUTH_RESPONSES)
        # (its page is HTML, its refusals JSON: said outright, not under the page's type)
        wall.include(app, dependencies=[needs("read")], responses=http_auth.AUTH_RESPONSES_JSON)
    else:
        app.include_router(router)
        app.include_router(incidents.router)  # services/alerts/incidents.py
        app.include_router(baselines.router)  # services/alerts/baselines.py
        wall.include(app)  # GET /wall: the page for the operations room (services/alerts/wall.py)

    app.add_middleware(HealthFastPath, state=app.state)
    app.add_middleware(HeadAsGet)  # HEAD on every GET (shared/http_head.py): outermost

    @app.get("/metrics", **http_docs.METRICS_ROUTE)
    async def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", operation_id="healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    http_head.document_head(app)  # a head operation beside every get, in the document
    http_auth.publish_security(app)  # security where keys are enforced (shared/http_auth.py)
    return app
