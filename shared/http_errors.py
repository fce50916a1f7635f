"""Refusals both HTTP services answer alike, whatever the request holds.

FastAPI's 422 echoes the offending input. JSON lets a client send a lone surrogate
(``"\\ud800"``), which is not text: Starlette's UTF-8 rendering of the echo then raises, and
a bad request became a 500. Here the answer falls back to ASCII-escaped JSON (the same
document, every non-ASCII character as ``\\uXXXX``), so a refusal is always a 422.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class SafeJSONResponse(JSONResponse):
    """JSON that renders whatever strings it holds (lone surrogates escaped)."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            text = json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
            return text.encode("ascii")


async def _unprocessable(request: Request, exc: Exception) -> SafeJSONResponse:
    assert isinstance(exc, RequestValidationError)
    return SafeJSONResponse(status_code=422, content={"detail": jsonable_encoder(exc.errors())})


def install(app: FastAPI) -> None:
    """Answer request validation errors with ``SafeJSONResponse`` (FastAPI's shape)."""
    app.add_exception_handler(RequestValidationError, _unprocessable)
