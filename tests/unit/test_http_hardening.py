"""What both HTTP services refuse, and how, whatever a client sends: a body over the limit
(413, not read whole), a 422 whose echo of the input is bounded, an encoded slash in a path
id (422 naming the parameter, not the router's 404); and ``/docs`` needs no other origin.
In process: ingest with an in-memory publisher, alerts on SQLite."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.api import create_app as alerts_app
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from services.ingest.api import create_app as ingest_app
from services.ingest.publisher import Publisher
from shared.http_docs import DOCS_STATIC
from shared.http_errors import ECHO_MAX
from shared.settings import KafkaSettings
from tests.alerts_cases import sqlite_sessions
from tests.unit.test_ingest_api import MemoryPublisher

Sessions = async_sessionmaker[AsyncSession]
LIMIT = 64 * 1024


@pytest.fixture
async def alerts(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with sqlite_sessions(tmp_path) as sessions:
        settings = AlertsSettings(kafka=KafkaSettings(), max_body_bytes=LIMIT)
        app = alerts_app(settings, sessions, Metrics.create(CollectorRegistry()))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:
            yield client


@pytest.fixture
async def ingest() -> AsyncIterator[httpx.AsyncClient]:
    app = ingest_app(cast(Publisher, MemoryPublisher()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://i") as client:
        yield client


async def test_the_alerts_service_refuses_a_body_over_its_limit_without_reading_it(
    alerts: httpx.AsyncClient,
) -> None:
    big = b'{"queue_ids": [' + b'"q",' * (8 * 1024 * 1024) + b'"q"]}'  # 32 MiB
    start = time.monotonic()
    declared = await alerts.post("/v1/health:batch", content=big)
    took = time.monotonic() - start
    assert declared.status_code == 413
    assert declared.json() == {
        "detail": f"body of {len(big)} bytes exceeds the limit of {LIMIT} bytes per request"
    }
    assert took < 2, f"{took:.1f} s"

    read: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for i in range(0, len(big), 16 * 1024):
            read.append(i)
            yield big[i : i + 16 * 1024]

    streamed = await alerts.post("/v1/health:batch", content=chunks())
    assert streamed.status_code == 413
    assert streamed.json() == {"detail": f"body exceeds the limit of {LIMIT} bytes per request"}
    assert len(read) <= LIMIT // (16 * 1024) + 2  # stopped at the limit, not read whole

    # under the limit: read and answered as before
    ok = await alerts.post("/v1/health:batch", json={"queue_ids": ["q-1"]})
    assert ok.status_code == 200, ok.text
    doc = (await alerts.get("/openapi.json")).json()
    assert {"400", "413"} <= set(doc["paths"]["/v1/health:batch"]["post"]["responses"])
    # bytes that are not UTF-8: FastAPI's 400, as documented
    json_type = {"content-type": "application/json"}
    r = await alerts.post("/v1/health:batch", content=b"\x97X\x9b((\x1f,:", headers=json_type)
    assert (r.status_code, r.json()) == (400, {"detail": "There was an error parsing the body"})
    assert "413" not in doc["paths"]["/v1/alerts"]["get"]["responses"]


async def test_a_422_echoes_no_container_and_cuts_long_strings(
    alerts: httpx.AsyncClient, ingest: httpx.AsyncClient
) -> None:
    ids = [f"queue-{i:04d}-" + "x" * 100 for i in range(501)]
    too_many = await alerts.post("/v1/health:batch", json={"queue_ids": ids})
    assert too_many.status_code == 422
    assert len(too_many.content) < 1000, too_many.text
    [error] = too_many.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", "queue_ids"], "too_long")
    assert "input" not in error

    long_id = "x" * 300 + "|"
    bad = await alerts.post("/v1/health:batch", json={"queue_ids": [long_id]})
    [error] = bad.json()["detail"]
    assert error["loc"] == ["body", "queue_ids", 0]
    assert error["input"] == long_id[:ECHO_MAX] + "…"
    assert error["msg"]

    # the same renderer in ingest (its queue ids, in the path)
    r = await ingest.get("/v1/queues/" + "y" * 200)
    assert r.status_code == 422
    assert r.json()["detail"][0]["input"] == "y" * ECHO_MAX + "…"


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", "/v1/queues/a%2Fb/health", "queue_id"),
        ("GET", "/v1/queues/a%2fb/chart", "queue_id"),
        ("GET", "/wall/queues/a%2Fb", "queue_id"),
        ("GET", "/v1/incidents/1%2F2", "incident_id"),
        ("POST", "/v1/alerts/1%2F2/ack", "alert_id"),
        ("GET", "/v1/queues/%2F/baselines", "queue_id"),
    ],
)
async def test_an_encoded_slash_in_an_alerts_id_is_a_422_naming_it(
    alerts: httpx.AsyncClient, method: str, path: str, name: str
) -> None:
    r = await alerts.request(method, path)
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["path", name]
    assert "ids have no '/'" in error["msg"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/queues/a%2Fb"), ("PUT", "/v1/queues/a%2Fb"), ("DELETE", "/v1/queues/A%2F")],
)
async def test_an_encoded_slash_in_an_ingest_queue_id_is_a_422_naming_it(
    ingest: httpx.AsyncClient, method: str, path: str
) -> None:
    r = await ingest.request(method, path)
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["path", "queue_id"]
    assert "/" in error["input"]


async def test_an_encoded_slash_elsewhere_is_left_to_the_router(
    alerts: httpx.AsyncClient, ingest: httpx.AsyncClient
) -> None:
    # no route takes an id there: the router's 404 as for any unknown path
    assert (await alerts.get("/v1/nothing%2Fhere")).status_code == 404
    assert (await ingest.post("/v1/decisions%2Fx", json=[])).status_code == 404
    # a query string may hold one: not a path id
    r = await alerts.get("/v1/queues", params={"after": "a/b"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "after"]


_LINKS = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")


@pytest.mark.parametrize("service", ["ingest", "alerts"])
async def test_the_docs_page_names_only_this_service(
    service: str, ingest: httpx.AsyncClient, alerts: httpx.AsyncClient
) -> None:
    client = ingest if service == "ingest" else alerts
    page = await client.get("/docs")
    assert page.status_code == 200
    links = [a or b for a, b in _LINKS.findall(page.text)]
    assert len(links) == 4, links  # style sheet, favicon, script, the OpenAPI document
    assert "://" not in page.text  # no absolute URL anywhere (the CDN, Google's fonts)
    for link in links:
        assert link.startswith("/"), link  # same origin
        assert not link.startswith("//"), link
        r = await client.get(link)
        assert r.status_code == 200, link
        assert r.content
    assert "SwaggerUIBundle" in (await client.get(f"{DOCS_STATIC}/swagger-ui-bundle.js")).text
    assert (await client.get("/redoc")).status_code == 404
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200
