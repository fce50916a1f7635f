"""The ingest HTTP API: batches of decisions and verdicts in, validated events to Kafka.

The published OpenAPI document (``/openapi.json``) states the request bodies (the event
schemas of ``shared.events``) and every status; tests/integration/test_api_contract.py holds
the service to it with schemathesis.

A batch with invalid items is answered 422 naming each bad item (its index and errors); the
valid items of that batch are still produced and counted in ``accepted``, so nothing valid
is lost and the caller resends only what it must fix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from services.ingest.publisher import Publisher
from services.ingest.validation import BodyError, EventKind, parse_body, validate_items
from shared.apikeys import AuthPolicy
from shared.codec import json_response
from shared.events import Decision, Verdict
from shared.http_auth import AUTH_RESPONSES, needs


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


async def _ingest(request: Request, publisher: Publisher, kind: EventKind | None) -> Response:
    max_bytes: int = request.app.state.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return json_response(
            {"detail": f"body of {declared} bytes exceeds the limit of {max_bytes}"},
            status_code=413,
        )
    body = bytearray()
    async for chunk in request.stream():  # never hold more than the limit in memory
        body += chunk
        if len(body) > max_bytes:
            break
    if len(body) > max_bytes:
        return json_response(
            {"detail": f"body exceeds the limit of {max_bytes} bytes"},
            status_code=413,
        )
    try:
        items = parse_body(bytes(body), request.headers.get("content-type", "application/json"))
    except BodyError as exc:
        return json_response({"detail": str(exc)}, status_code=400)
    result = validate_items(items, kind)
    accepted = await publisher.publish(result.events)
    payload = IngestResult(
        accepted=accepted,
        rejected=[Rejected(index=e.index, errors=e.errors) for e in result.errors],
    ).model_dump()
    return json_response(payload, status_code=422 if result.errors else 202)


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
    413: {"model": Problem, "description": "the body is larger than QW_INGEST_MAX_BODY_BYTES"},
    422: {
        "model": IngestResult,
        "description": "some items are not valid events (any JSON value that is not an event, "
        "e.g. `42`, is one such item): each is named by its index with its errors; the valid "
        "items of the same body are accepted and counted",
    },
}

_DOC = (
    "202 when every item is valid; 422 names each invalid item by its index, while the valid "
    "items of the same body are accepted. Ids follow the grammar of docs/events.md; an event "
    "time more than 15 minutes ahead of the clock is an invalid item (`future_timestamp`)."
)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


Endpoint = Callable[[Request, Publisher], Awaitable[Response]]


def _post(path: str, ref: dict[str, Any], what: str, doc: str) -> Callable[[Endpoint], Endpoint]:
    return router.post(
        path,
        status_code=202,
        response_model=IngestResult,
        responses={**_RESPONSES, **AUTH_RESPONSES},
        dependencies=[needs("ingest")],
        description=doc,
        openapi_extra={"requestBody": _event_body(ref, what)},
    )


@_post("/decisions", _ref("Decision"), "decisions", _DOC)
async def post_decisions(request: Request, publisher: PublisherDep) -> Response:
    return await _ingest(request, publisher, "decision")


@_post("/verdicts", _ref("Verdict"), "verdicts", _DOC)
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
)
async def post_events(request: Request, publisher: PublisherDep) -> Response:
    return await _ingest(request, publisher, None)


def create_app(
    publisher: Publisher, max_body_bytes: int = 16 * 1024 * 1024, auth: AuthPolicy | None = None
) -> FastAPI:
    """``auth``: the API-key policy (``shared/http_auth.py``); None lets every call in."""
    app = FastAPI(title="QualityWatch ingest", version="1")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.state.publisher = publisher
    app.state.auth = auth
    app.state.max_body_bytes = max_body_bytes
    app.include_router(router)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

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
