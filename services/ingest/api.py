"""The ingest HTTP API: batches of decisions and verdicts in, validated events to Kafka.

A batch with invalid items is answered 422 naming each bad item (its index and errors); the
valid items of that batch are still produced and counted in ``accepted``, so nothing valid
is lost and the caller resends only what it must fix.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from pydantic import BaseModel

from services.ingest.publisher import Publisher
from services.ingest.validation import BodyError, EventKind, parse_body, validate_items
from shared.codec import json_response


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


_DOC = (
    "Body: a JSON array of events (or one object), or NDJSON with Content-Type "
    "application/x-ndjson. 202 when every item is valid; 422 names each invalid item by its "
    "index, while the valid items of the same batch are accepted."
)


@router.post("/decisions", status_code=202, response_model=IngestResult, description=_DOC)
async def post_decisions(request: Request, publisher: PublisherDep) -> Response:
    return await _ingest(request, publisher, "decision")


@router.post("/verdicts", status_code=202, response_model=IngestResult, description=_DOC)
async def post_verdicts(request: Request, publisher: PublisherDep) -> Response:
    return await _ingest(request, publisher, "verdict")


@router.post(
    "/events",
    status_code=202,
    response_model=IngestResult,
    description=_DOC + ' Each item names its type in "kind": "decision" or "verdict".',
)
async def post_events(request: Request, publisher: PublisherDep) -> Response:
    return await _ingest(request, publisher, None)


def create_app(publisher: Publisher, max_body_bytes: int = 16 * 1024 * 1024) -> FastAPI:
    app = FastAPI(title="QualityWatch ingest", version="1")
    app.state.publisher = publisher
    app.state.max_body_bytes = max_body_bytes
    app.include_router(router)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
