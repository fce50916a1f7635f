"""HEAD on every GET endpoint of a service: the GET's status and headers (ETag,
Content-Length, Content-Type included), no body (RFC 9110 9.3.2).

FastAPI routes a method only where it is declared, so a ``HEAD /v1/queues`` was a 405. Here
a HEAD is handed to the app as the GET it mirrors, and only the answer's start goes back: the
same key check, validation, 404s and 304s as the GET, without a second set of routes. An
endless answer (the wall's event stream) ends after its headers. The OpenAPI document lists
a ``head`` operation beside every ``get`` (``document_head``), so clients and contract
checkers know it is there, and a 405's ``Allow`` lists HEAD wherever it lists GET.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEAD_SCOPE_KEY = "qualitywatch.head"  # in the scope of a GET that answers a HEAD


def is_head(scope: Scope) -> bool:
    """Whether this GET answers a HEAD (its body is dropped)."""
    return bool(scope.get(HEAD_SCOPE_KEY))


class _HeadSentError(OSError):
    """The HEAD's answer is complete: a streaming GET behind it is told to stop (as by a
    client that went away)."""


class HeadAsGet:
    """Answer ``HEAD`` as the app answers ``GET``, without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] != "HEAD":
            await self.app(scope, receive, _allow_head(send))
            return
        done = False

        async def head_send(message: Message) -> None:
            nonlocal done
            if done:
                raise _HeadSentError("the HEAD's answer is complete")
            if message["type"] == "http.response.body":
                done = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                if message.get("more_body", False):
                    raise _HeadSentError("the HEAD's answer is complete")
                return
            await send(message)

        try:
            # a copy: the server keeps its own scope, whose method (HEAD) tells it that no
            # body follows the headers); HEAD_SCOPE_KEY lets a route skip work only a body
            # needs (the wall's stream does not subscribe for a HEAD)
            await self.app(dict(scope, method="GET", **{HEAD_SCOPE_KEY: True}), receive, head_send)
        except (_HeadSentError, ClientDisconnect):
            if not done:
                raise


def _allow_head(send: Send) -> Send:
    """A 405's ``Allow`` lists HEAD wherever it lists GET: every GET answers HEAD here."""

    async def allow_send(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 405:
            headers = []
            for name, value in message.get("headers", []):
                if name.lower() == b"allow":
                    methods = [m.strip() for m in value.split(b",") if m.strip()]
                    if b"GET" in methods and b"HEAD" not in methods:
                        methods.append(b"HEAD")
                    value = b", ".join(methods)
                headers.append((name, value))
            message = {**message, "headers": headers}
        await send(message)

    return allow_send


HEAD_DESCRIPTION = (
    "HEAD: the status and headers `GET {path}` answers (Content-Type, Content-Length, ETag "
    "where the GET sends one), without a body."
)


def document_head(app: FastAPI) -> None:
    """List a ``head`` operation beside every ``get`` of ``app``'s OpenAPI document: the same
    parameters, security and statuses with their headers, no content; its operationId is
    the GET's with ``_head``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        doc = build()
        if any("head" in ops for ops in doc.get("paths", {}).values()):
            return doc  # (FastAPI caches the document: done once)
        for path, ops in doc.get("paths", {}).items():
            get = ops.get("get")
            if not isinstance(get, dict):
                continue
            head = {k: copy.deepcopy(v) for k, v in get.items() if k not in ("responses",)}
            head["operationId"] = f"{get.get('operationId', path)}_head"
            head["summary"] = f"HEAD {path}"
            head["description"] = HEAD_DESCRIPTION.format(path=path)
            head["responses"] = {
                status: {k: copy.deepcopy(v) for k, v in r.items() if k not in ("content", "links")}
                for status, r in get.get("responses", {}).items()
            }
            ops["head"] = head
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
