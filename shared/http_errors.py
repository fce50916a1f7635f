"""Refusals both HTTP services answer alike, whatever the request holds.

FastAPI's 422 echoes the offending input. JSON lets a client send a lone surrogate
(``"\\ud800"``), which is not text: Starlette's UTF-8 rendering of the echo then raises, and
a bad request became a 500. Here the answer falls back to ASCII-escaped JSON (the same
document, every non-ASCII character as ``\\uXXXX``), so a refusal is always a 422.

The echo is bounded too: FastAPI puts the whole offending value in ``input``, so a list of
501 ids came back whole and a 30 MB body made a 30 MB answer. An error keeps its ``loc``,
``msg``, ``type`` (and ``ctx``); its ``input`` is kept only when it is a scalar, a string cut
to ``ECHO_MAX`` characters, and dropped when it is an object or an array.

An id never holds a ``/`` (docs/events.md, "Identifiers and times"), but an encoded one
(``/v1/queues/a%2Fb/health``) is decoded before routing and missed every route: a 404 of the
router. ``EncodedSlash`` answers such a path 422 naming the parameter, as for any other id
outside its grammar.

``BodyLimit`` refuses a request body larger than a limit with 413, from its Content-Length
before reading anything, and while it is read when it has none (chunked): never held whole.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ECHO_MAX = 100  # characters of a string input echoed in a 422


class SafeJSONResponse(JSONResponse):
    """JSON that renders whatever strings it holds (lone surrogates escaped)."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            text = json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
            return text.encode("ascii")


def bounded(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error with its echoed ``input`` bounded (see the module's doc); an
    encoded slash in a path id said as such."""
    out = {k: v for k, v in error.items() if k != "input"}
    if "input" in error:
        value = error["input"]
        if isinstance(value, str) and SLASH_MARK in value:
            value = value.replace(SLASH_MARK, "/")
            out.update(type="slash_in_id", msg=SLASH_MSG)
            out.pop("ctx", None)
        if isinstance(value, str):
            out["input"] = value if len(value) <= ECHO_MAX else value[:ECHO_MAX] + "…"
        elif value is None or isinstance(value, bool | int | float):
            out["input"] = value
    return out


async def _unprocessable(request: Request, exc: Exception) -> SafeJSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [bounded(e) for e in exc.errors()]
    return SafeJSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})


_SLASH = re.compile(rb"%2f", re.IGNORECASE)
# what an encoded slash is routed as: inside its path segment, and outside every id grammar
# (each path id has a pattern or is an integer), so the route's own validation refuses it
SLASH_MARK = "\x00%2F\x00"
SLASH_MSG = "ids have no '/': an encoded slash (%2F) is not part of any id"


class EncodedSlash:
    """Pure ASGI middleware: a path whose raw form holds an encoded slash is routed with the
    slash kept inside its segment (``SLASH_MARK``), so a route taking an id there is found
    and refuses it as it refuses any id outside its grammar: 422 naming the parameter
    (``_unprocessable`` says why); a path that takes no id there stays a 404."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw: bytes = (scope.get("raw_path") or b"") if scope["type"] == "http" else b""
        if _SLASH.search(raw):
            pieces = _SLASH.split(raw.split(b"?", 1)[0])  # (an ASGI client may send the query)
            path = SLASH_MARK.join(unquote(p.decode("latin-1")) for p in pieces)
            scope = {**scope, "path": path}
        await self.app(scope, receive, send)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passed the limit. An ``HTTPException``, so that
    FastAPI passes it on as it is (another error while reading a body becomes its 400) and
    the app's exception middleware answers it: 413 with the detail."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit), headers={"Connection": "close"})


def too_large(limit: int, declared: int | None = None) -> str:
    size = f"body of {declared} bytes" if declared is not None else "body"
    return f"{size} exceeds the limit of {limit} bytes per request"


class BodyLimit:
    """Pure ASGI middleware: a request body over ``limit`` bytes is answered 413 and not
    read further. A Content-Length over the limit is refused before reading; a body without
    one (chunked) is counted as it is read and refused at the first chunk past the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _refuse(send, too_large(self.limit, int(value)))
                return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:  # read outside FastAPI's handling of HTTPException
            if started:
                raise
            await _refuse(send, exc.detail)


async def _refuse(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def install(app: FastAPI, *, max_body_bytes: int | None = None) -> None:
    """Answer request validation errors with ``SafeJSONResponse`` (FastAPI's shape, the echo
    bounded), and an encoded slash in a path id likewise; with ``max_body_bytes``, refuse
    larger request bodies with 413."""
    app.add_exception_handler(RequestValidationError, _unprocessable)
    app.add_middleware(EncodedSlash)
    if max_body_bytes is not None:
        app.add_middleware(BodyLimit, limit=max_body_bytes)
        _document_body_refusals(app, max_body_bytes)


def _document_body_refusals(app: FastAPI, limit: int) -> None:
    """State the refusals of a body as a whole in the OpenAPI document, on every operation
    that takes one: 413 over the limit, and FastAPI's own 400 for bytes it cannot decode at
    all (not UTF-8: "There was an error parsing the body"; JSON that does not parse is a
    422 naming the position)."""
    build = app.openapi
    problem = {"application/json": {"schema": {
        "type": "object", "properties": {"detail": {"type": "string"}},
        "required": ["detail"], "title": "Problem",
    }}}  # fmt: skip
    refusals = {
        "400": {"description": "the body is not UTF-8 text", "content": problem},
        "413": {"description": f"the body is larger than {limit} bytes", "content": problem},
    }

    def openapi() -> dict[str, Any]:
        doc = build()
        for operations in doc.get("paths", {}).values():
            for op in operations.values():
                if isinstance(op, dict) and "requestBody" in op:
                    for status, refusal in refusals.items():
                        op["responses"].setdefault(status, refusal)
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
