"""The ingest HTTP API: batches of decisions and verdicts in, validated events to Kafka.

The published OpenAPI document (``/openapi.json``) states the request bodies (the event
schemas of ``shared.events``) and every status; tests/integration/test_api_contract.py holds
the service to it with schemathesis.

A batch with invalid items is answered 422 naming each bad item (its index and errors); the
valid items of that batch are still produced and counted in ``accepted``, so nothing valid
is lost and the caller resends only what it must fix. An item of a queue that is not admitted
(``services/ingest/admission.py``) is refused the same way (error type
``queue_not_admitted``) and goes to the dead-letter topic too, re-encoded as JSON.

``PUT``/``DELETE /v1/queues/{id}`` (scope ``admin``) admit a queue at run time and remove it,
for every ingest process (``shared/admission.py``); ``GET /v1/queues`` lists what is admitted.

Every ``GET`` answers ``HEAD`` too, as the alerts service's do (``shared/http_head.py``): the
GET's status and headers without a body, a ``head`` operation beside each ``get`` in the
document.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, Response
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from services.ingest.admission import HOW, QueueGate, QueueMode
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import Publisher
from services.ingest.validation import (
    BodyError,
    EventKind,
    TooManyItemsError,
    floor_for,
    parse_body,
    validate_items,
)
from shared import codec, http_auth, http_docs, http_errors, http_head
from shared.apikeys import ApiKey, AuthPolicy
from shared.codec import json_response
from shared.events import Decision, Verdict
from shared.http_auth import AUTH_RESPONSES, needs, require
from shared.http_head import HeadAsGet
from shared.ids import KEY_ID_DESCRIPTION, KEY_ID_MAX, KEY_ID_PATTERN
from shared.topics import queue_key

log = logging.getLogger(__name__)


class Rejected(BaseModel):
    index: int
    errors: list[dict[str, Any]]


class IngestResult(BaseModel):
    accepted: int
    rejected: list[Rejected]


def get_publisher(request: Request) -> Publisher:
    publisher: Publisher = request.app.state.publisher
    return publisher


PublisherDep = Annotated[Publisher, Depends(get_publisher)]

router = APIRouter(prefix="/v1")


class BodyBudget:
    """The bytes of request bodies the process holds at once, across requests
    (QW_INGEST_MAX_INFLIGHT_BYTES): a request's bytes are taken as they arrive (or at once,
    as its Content-Length declares) and given back when it is answered."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0

    @contextlib.contextmanager
    def claim(self) -> Iterator[Claim]:
        claim = Claim(self)
        try:
            yield claim
        finally:
            self.held -= claim.held


class Claim:
    """One request's share of the ``BodyBudget``."""

    def __init__(self, budget: BodyBudget) -> None:
        self.budget, self.held = budget, 0

    def grow_to(self, n: int) -> bool:
        """Hold ``n`` bytes in all (False, holding no more, if the budget has not room)."""
        more = n - self.held
        if more <= 0:
            return True
        if self.budget.held + more > self.budget.limit:
            return False
        self.budget.held += more
        self.held = n
        return True


def _busy(budget: BodyBudget) -> Response:
    response = json_response(
        {
            "detail": f"busy: {budget.held} bytes of request bodies are already held, and this "
            f"one would pass the limit of {budget.limit} (QW_INGEST_MAX_INFLIGHT_BYTES): "
            "retry after Retry-After seconds"
        },
        status_code=503,
    )
    response.headers["Retry-After"] = "1"
    return response


async def _ingest(request: Request, publisher: Publisher, kind: EventKind | None) -> Response:
    max_bytes: int = request.app.state.max_body_bytes
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return json_response(
            {
                "detail": f"Content-Encoding {encoding[:40]!r} is not taken: send the body "
                "uncompressed (JSON or NDJSON as it is)"
            },
            status_code=415,
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return json_response(
            {
                "detail": f"body of {declared} bytes exceeds the limit of {max_bytes} "
                "(QW_INGEST_MAX_BODY_BYTES): split it into smaller requests"
            },
            status_code=413,
        )
    budget: BodyBudget = request.app.state.body_budget
    with budget.claim() as claim:
        if not claim.grow_to(int(declared) if declared.isdigit() else 0):
            return _busy(budget)
        return await _take_body(request, publisher, kind, claim)


async def _take_body(
    request: Request, publisher: Publisher, kind: EventKind | None, claim: Claim
) -> Response:
    max_bytes: int = request.app.state.max_body_bytes
    body = bytearray()
    async for chunk in request.stream():  # never hold more than the limit in memory
        body += chunk
        if not claim.grow_to(len(body)):  # more than declared, or nothing was
            return _busy(claim.budget)
        if len(body) > max_bytes:
            break
    if len(body) > max_bytes:
        return json_response(
            {
                "detail": f"body exceeds the limit of {max_bytes} bytes "
                "(QW_INGEST_MAX_BODY_BYTES): split it into smaller requests"
            },
            status_code=413,
        )
    content_type = request.headers.get("content-type", "application/json")
    try:
        items = parse_body(bytes(body), content_type, request.app.state.max_items)
    except TooManyItemsError as exc:
        return json_response({"detail": str(exc)}, status_code=413)
    except BodyError as exc:
        return json_response({"detail": str(exc)}, status_code=400)
    max_age: int | None = request.app.state.max_age_days
    result = validate_items(items, kind, None if max_age is None else floor_for(max_age))
    rejected = [Rejected(index=e.index, errors=e.errors) for e in result.errors]
    events = result.events
    gate: QueueGate | None = request.app.state.gate
    refused = await gate.refused(e.queue_id for e in events) if gate else set()
    if refused:
        assert gate is not None
        bad = {e.index for e in result.errors}
        indexed = zip((i for i in range(len(items)) if i not in bad), events, strict=True)
        events, dlq = [], []
        for i, event in indexed:
            if event.queue_id not in refused:
                events.append(event)
                continue
            error = gate.policy.error(event.queue_id)
            rejected.append(Rejected(index=i, errors=[error]))
            item = {"kind": event.kind, **items[i]}  # its kind: replayed to its raw topic
            sent = await publisher.dead_letter(
                reason=error["msg"], errors=[error], value=codec.dumps(item),
                source_topic=None, key=queue_key(event.queue_id),
            )  # fmt: skip
            dlq.append(sent)
        await asyncio.gather(*dlq)
        rejected.sort(key=lambda r: r.index)
    accepted = await publisher.publish(events)
    metrics: IngestMetrics | None = request.app.state.metrics
    if metrics is not None:
        metrics.count("http", accepted, len(result.errors), len(rejected) - len(result.errors))
    payload = IngestResult(accepted=accepted, rejected=rejected).model_dump()
    return json_response(payload, status_code=422 if rejected else 202)


class Problem(BaseModel):
    """The body of a 400 or 413: what is wrong with the request as a whole."""

    detail: str


def _event_body(item: dict[str, Any], what: str) -> dict[str, Any]:
    """The request body of one endpoint: a JSON array of ``item`` (or one item alone), or
    NDJSON, one item per line. Described under ``application/x-ndjson`` as the array of the
    lines' values, which is what the service reads."""
    array = {"type": "array", "items": item}
    return {
        "required": True,
        "description": f"{what}: a JSON array, or one event alone; or NDJSON "
        "(`application/x-ndjson`), one event per line. Any other Content-Type is read as JSON.",
        "content": {
            "application/json": {"schema": {"anyOf": [array, item]}},
            "application/x-ndjson": {"schema": array},
        },
    }


_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": IngestResult, "description": "every item valid: all accepted"},
    400: {"model": Problem, "description": "the body is empty or not JSON at all"},
    413: {
        "model": Problem,
        "description": "the body is larger than QW_INGEST_MAX_BODY_BYTES, or holds more items "
        "than QW_INGEST_MAX_ITEMS (refused whole, before any item is validated: split it)",
    },
    415: {
        "model": Problem,
        "description": "the body has a Content-Encoding (gzip, ...): ingest takes it "
        "uncompressed only",
    },
    503: {
        "model": Problem,
        "description": "busy: taking this body would pass QW_INGEST_MAX_INFLIGHT_BYTES of "
        "request bodies held at once (others are being read, validated or sent to the "
        "broker); nothing of it was taken: send it again after Retry-After seconds",
        "headers": {
            "Retry-After": {
                "description": "seconds to wait before sending the request again",
                "schema": {"type": "integer"},
            }
        },
    },
    422: {
        "model": IngestResult,
        "description": "some items are not valid events (any JSON value that is not an event, "
        "e.g. `42`, is one such item), or are events of a queue that is not admitted (error "
        "type `queue_not_admitted`, also sent to the dead-letter topic): each is named by its "
        "index with its errors; the other items of the same body are accepted and counted",
    },
}

_DOC = (
    "202 when every item is valid; 422 names each invalid item by its index, while the valid "
    "items of the same body are accepted. Only admitted queues are taken (GET /v1/queues): an "
    "event of another is an invalid item (`queue_not_admitted`). Ids follow the grammar of "
    "docs/events.md; an event "
    "time more than 15 minutes ahead of the clock is an invalid item (`future_timestamp`), "
    "and so is one before 2000-01-01 or older than QW_INGEST_MAX_AGE_DAYS (`past_timestamp`)."
)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


Endpoint = Callable[[Request, Publisher], Awaitable[Response]]


def _post(
    path: str, ref: dict[str, Any], what: str, doc: str, operation_id: str
) -> Callable[[Endpoint], Endpoint]:
    return router.post(
        path,
        operation_id=operation_id,
        status_code=202,
        response_model=IngestResult,
        responses={**_RESPONSES, **AUTH_RESPONSES},
        dependencies=[needs("ingest")],
        description=doc,
        openapi_extra={"requestBody": _event_body(ref, what)},
    )


@_post("/decisions", _ref("Decision"), "decisions", _DOC, "post_decisions")
async def post_decisions(request: Request, publisher: PublisherDep) -> Response:
    return await _ingest(request, publisher, "decision")


@_post("/verdicts", _ref("Verdict"), "verdicts", _DOC, "post_verdicts")
async def post_verdicts(request: Request, publisher: PublisherDep) -> Response:
    return await _ingest(request, publisher, "verdict")


@_post(
    "/events",
    {
        # here "kind" is required: it says which of the two an item is
        "oneOf": [
            {"allOf": [_ref(name)], "required": ["kind"]} for name in ("Decision", "Verdict")
        ],
        "discriminator": {"propertyName": "kind"},
    },
    "decisions and verdicts mixed, each naming its `kind`",
    _DOC + ' Each item names its type in "kind": "decision" or "verdict".',
    "post_events",
)
async def post_events(request: Request, publisher: PublisherDep) -> Response:
    return await _ingest(request, publisher, None)


# -- known queues ------------------------------------------------------------------------------

QueueId = Annotated[
    str,
    Path(
        min_length=1, max_length=KEY_ID_MAX, pattern=KEY_ID_PATTERN, description=KEY_ID_DESCRIPTION
    ),
]


class QueueState(BaseModel):
    queue_id: str
    admitted: bool
    how: HOW | None = Field(
        description="static (QW_INGEST_QUEUES_ALLOW or the file), runtime (PUT), open (taken "
        "on first sight in open mode), or null when not admitted"
    )


class QueueList(BaseModel):
    mode: QueueMode = Field(description="QW_INGEST_QUEUES")
    static: list[str] = Field(description="the static list: queue ids and globs")
    runtime: list[str] = Field(description="queues admitted at run time, sorted")
    open_taken: int = Field(description="open mode: distinct queues taken by this process")
    open_max: int = Field(description="open mode: QW_INGEST_QUEUES_OPEN_MAX")


class QueueAdmin:
    """What the queue endpoints need beyond the gate: writing the admitted-queues log."""

    def __init__(
        self,
        admit: Callable[[str, str], Awaitable[None]],
        remove: Callable[[str], Awaitable[None]],
    ) -> None:
        self.admit = admit  # (queue id, by whom): returns once acknowledged and applied here
        self.remove = remove  # (queue id): likewise


def _gate(request: Request) -> QueueGate:
    gate: QueueGate | None = request.app.state.gate
    if gate is None:
        raise HTTPException(404, "this ingest admits every queue (no queue policy)")
    return gate


def _admin(request: Request, gate: QueueGate) -> QueueAdmin:
    admin: QueueAdmin | None = request.app.state.queue_admin
    if not gate.policy.runtime_admission or admin is None:
        raise HTTPException(
            409,
            f"run-time admission is off (QW_INGEST_QUEUES={gate.policy.mode}): add the queue "
            "to QW_INGEST_QUEUES_ALLOW or QW_INGEST_QUEUES_FILE",
        )
    return admin


def _state(gate: QueueGate, queue_id: str) -> QueueState:
    how = gate.policy.how(queue_id, take=False)
    return QueueState(queue_id=queue_id, admitted=how is not None, how=how)


_Q_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    404: {"model": Problem, "description": "no such run-time admission (or no queue policy)"},
    409: {
        "model": Problem,
        "description": "run-time admission is off (QW_INGEST_QUEUES=allowlist)",
    },
}


@router.get(
    "/queues",
    operation_id="list_admitted_queues",
    response_model=QueueList,
    responses={**AUTH_RESPONSES, 404: _Q_RESPONSES[404]},
    dependencies=[needs("ingest")],  # a producer may ask what is taken
    description="The admission mode, the static list and the queues admitted at run time.",
)
async def list_queues(request: Request) -> QueueList:
    gate = _gate(request)
    p = gate.policy
    return QueueList(
        mode=p.mode, static=list(p.allow), runtime=sorted(p.runtime), open_taken=len(p.seen),
        open_max=p.open_max,
    )  # fmt: skip


@router.get(
    "/queues/{queue_id}",
    operation_id="get_queue_admission",
    response_model=QueueState,
    responses={**AUTH_RESPONSES, 404: _Q_RESPONSES[404]},
    dependencies=[needs("ingest")],  # a producer may ask what is taken
    description="Whether ingest takes events of this queue, and why.",
)
async def get_queue(request: Request, queue_id: QueueId) -> QueueState:
    return _state(_gate(request), queue_id)


AdminKey = Annotated[ApiKey | None, Depends(require("admin"))]


def _queue_write(method: str, description: str, operation_id: str) -> Callable[[Any], Any]:
    """A route that writes the admitted-queues log (scope ``admin``)."""
    return router.api_route(
        "/queues/{queue_id}", methods=[method], response_model=QueueState,
        responses=_Q_RESPONSES, description=description, operation_id=operation_id,
    )  # fmt: skip


def _who(key: ApiKey | None) -> str:
    return f"key {key.id} ({key.name})" if key is not None else "no key (keys are off)"


@_queue_write(
    "PUT",
    "Admit the queue at run time, for every ingest process and across restarts (the "
    "compacted topic qw.queues.v1); answered once the broker acknowledged it and this process "
    "applied it. Idempotent.",
    "admit_queue",
)
async def admit_queue(request: Request, queue_id: QueueId, key: AdminKey) -> QueueState:
    gate = _gate(request)
    await _admin(request, gate).admit(queue_id, _who(key))
    log.info("queue %s admitted by %s", queue_id, _who(key))
    return _state(gate, queue_id)


@_queue_write(
    "DELETE",
    "Remove the queue's run-time admission, for every ingest process; its events are refused "
    "from then on (unless the static list admits it: the answer says).",
    "remove_queue",
)
async def remove_queue(request: Request, queue_id: QueueId, key: AdminKey) -> QueueState:
    gate = _gate(request)
    admin = _admin(request, gate)
    if queue_id not in gate.policy.runtime:
        raise HTTPException(404, f"queue {queue_id!r} was not admitted at run time")
    await admin.remove(queue_id)
    log.info("queue %s removed by %s", queue_id, _who(key))
    return _state(gate, queue_id)


def create_app(
    publisher: Publisher,
    max_body_bytes: int = 16 * 1024 * 1024,
    auth: AuthPolicy | None = None,
    *,
    gate: QueueGate | None = None,
    queue_admin: QueueAdmin | None = None,
    metrics: IngestMetrics | None = None,
    max_age_days: int | None = None,
    max_items: int = 10_000,
    max_inflight_bytes: int = 64 * 1024 * 1024,
) -> FastAPI:
    """``auth``: the API-key policy (``shared/http_auth.py``); None lets every call in.
    ``gate``: the queues admitted; None takes every queue (tests of other concerns).
    ``queue_admin``: writes run-time admissions (None: PUT and DELETE answer 409).
    ``max_age_days``: QW_INGEST_MAX_AGE_DAYS (None: only times before 2000 are too old).
    ``max_items``: QW_INGEST_MAX_ITEMS, the most items one request body may hold.
    ``max_inflight_bytes``: QW_INGEST_MAX_INFLIGHT_BYTES, request bodies held at once."""
    app = http_docs.service_app("QualityWatch ingest")  # /docs offline (shared/http_docs.py)
    http_errors.install(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.state.publisher = publisher
    app.state.auth = auth
    app.state.max_body_bytes = max_body_bytes
    app.state.gate = gate
    app.state.queue_admin = queue_admin
    app.state.metrics = metrics
    app.state.max_age_days = max_age_days
    app.state.max_items = max_items
    app.state.body_budget = BodyBudget(max_inflight_bytes)
    app.include_router(router)

    @app.get("/healthz", operation_id="healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if metrics is not None:

        @app.get("/metrics", **http_docs.METRICS_ROUTE)
        async def metrics_endpoint() -> Response:
            if gate is not None:
                metrics.set_admitted(gate.policy.counts())
            return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(HeadAsGet)  # HEAD on every GET (shared/http_head.py): outermost
    http_head.document_head(app)  # a head operation beside every get, in the document
    http_auth.publish_security(app)  # security where keys are enforced (shared/http_auth.py)
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the event schemas the request bodies refer to (the
    endpoints read the raw body, so FastAPI does not collect them itself)."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for model in (Decision, Verdict):
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(found.pop("$defs", {}))
            schemas[model.__name__] = found
        app.openapi_schema = doc
    return app.openapi_schema
