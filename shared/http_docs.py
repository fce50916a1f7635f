"""The FastAPI app of each HTTP service, with its interactive documentation served offline.

FastAPI's ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a public CDN (and ReDoc
its fonts from Google): on a network without the internet they were blank. Here ``/docs``
is Swagger UI from the files the ``fastapi-offline`` package ships (swagger-ui-dist 5, its
style sheet and a favicon), served by the service itself under ``/docs/static``; the page
names no other origin. ``/redoc`` is not served: the same document is at ``/docs`` and
``/openapi.json``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline

DOCS_URL = "/docs"
DOCS_STATIC = "/docs/static"

# ``GET /metrics`` in each service's OpenAPI document: Prometheus' text exposition format
METRICS_ROUTE: dict[str, Any] = {
    "operation_id": "metrics",
    "response_class": Response,
    "summary": "Prometheus metrics",
    "description": "The service's metrics in Prometheus' text exposition format (0.0.4), "
    "for a Prometheus scrape; never behind an API key. Series: docs/operations.md.",
    "responses": {
        200: {
            "description": "the metrics, `text/plain; version=0.0.4; charset=utf-8`",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
}


def service_app(title: str) -> FastAPI:
    """A FastAPI app titled ``title`` (version 1) whose ``/docs`` needs no other origin and
    which never redirects a trailing slash."""
    return FastAPIOffline(
        DOCS_URL,
        None,  # no /redoc
        title=title,
        version="1",
        static_url=DOCS_STATIC,
        # no badge from the public validator (Swagger UI sends the document there)
        swagger_ui_parameters={"validatorUrl": None},
        # a path with a trailing slash is no route, answered 404 like any unknown path: not
        # an undocumented 307 to the path without it (which every client would have to
        # follow, and which a contract cannot state)
        redirect_slashes=False,
    )
