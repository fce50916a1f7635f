"""Both services' OpenAPI documents: every operation has a stable operationId of its own
(not FastAPI's path-derived default), ``/metrics`` is documented as Prometheus text, and
``security`` is declared exactly where the service enforces a key at that moment."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.api import create_app as alerts_app
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from services.ingest.api import create_app as ingest_app
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import Publisher
from shared import apikeys
from shared.apikeys import AuthPolicy, KeyStore
from shared.settings import KafkaSettings
from tests.alerts_cases import sqlite_sessions
from tests.unit.test_ingest_api import MemoryPublisher

METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with sqlite_sessions(tmp_path) as sessions:
        yield sessions


def apps(policy: AuthPolicy | None, sessions: async_sessionmaker[AsyncSession]) -> list[FastAPI]:
    ingest = ingest_app(
        cast(Publisher, MemoryPublisher()), 1 << 20, policy,
        metrics=IngestMetrics.create(CollectorRegistry()),
    )  # fmt: skip
    alerts = alerts_app(
        AlertsSettings(kafka=KafkaSettings()), sessions, Metrics.create(CollectorRegistry()), policy
    )
    return [ingest, alerts]


async def document(app: FastAPI) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://s") as c:
        r = await c.get("/openapi.json")
        assert r.status_code == 200
        doc: dict[str, Any] = r.json()
        return doc


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): op
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method in METHODS
    }


async def test_every_operation_has_a_stable_id_of_its_own(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    for app in apps(None, sessions):
        ops = operations(await document(app))
        ids = [op["operationId"] for op in ops.values()]
        assert len(ids) == len(set(ids)), ids
        for (method, path), op in ops.items():
            oid = op["operationId"]
            # FastAPI's default is the function's name, the path and the method run together
            assert re.fullmatch(r"[a-z][a-z_]*", oid), (method, path, oid)
            assert not oid.endswith(f"_{method}"), (method, path, oid)
    ingest = operations(await document(apps(None, sessions)[0]))
    assert {op["operationId"] for op in ingest.values()} == {
        "post_decisions", "post_verdicts", "post_events", "list_admitted_queues",
        "get_queue_admission", "admit_queue", "remove_queue", "healthz", "metrics",
    }  # fmt: skip


async def test_metrics_is_documented_as_prometheus_text_in_both(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    for app in apps(None, sessions):
        doc = await document(app)
        op = doc["paths"]["/metrics"]["get"]
        assert op["operationId"] == "metrics"
        assert set(op["responses"]) == {"200"}
        assert op["responses"]["200"]["content"] == {"text/plain": {"schema": {"type": "string"}}}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as c:
            r = await c.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")


def secured(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {key for key, op in operations(doc).items() if "security" in op}


async def test_security_is_declared_where_a_key_is_enforced_and_follows_the_first_key(
    tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Development without a key file serves every call without a key: the documents say
    so (no ``security``), while 401/403 stay documented; once a key exists, writes declare
    it at once; reads only when protected; production always."""
    store = KeyStore(tmp_path / "keys.json")
    dev = apps(AuthPolicy(store, "development", protect_reads=False), sessions)
    for app in dev:
        doc = await document(app)
        assert secured(doc) == set(), secured(doc)
    ingest_doc, alerts_doc = [await document(app) for app in dev]
    assert "401" in ingest_doc["paths"]["/v1/events"]["post"]["responses"]
    assert "401" in alerts_doc["paths"]["/v1/alerts/{alert_id}/ack"]["post"]["responses"]
    store.create("first", ["admin"])  # the first key: writes need one from now on
    await asyncio.sleep(apikeys.RELOAD_CHECK_S + 0.05)  # as the services see a new key file
    ingest_doc, alerts_doc = [await document(app) for app in dev]
    assert secured(ingest_doc) == set(operations(ingest_doc)) - {
        ("get", "/healthz"), ("get", "/metrics")
    }  # fmt: skip
    assert ("post", "/v1/alerts/{alert_id}/ack") in secured(alerts_doc)
    assert ("get", "/v1/queues") not in secured(alerts_doc)  # reads stay open
    assert all(m == "post" for m, _ in secured(alerts_doc)), secured(alerts_doc)
    protected = apps(AuthPolicy(KeyStore(tmp_path / "none.json"), "production", True), sessions)
    alerts_doc = await document(protected[1])
    assert ("get", "/v1/queues") in secured(alerts_doc)
    assert ("get", "/wall/tiles") in secured(alerts_doc)
    assert ("get", "/metrics") not in secured(alerts_doc)


async def test_event_times_say_the_bounds_their_format_cannot(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A generated client's user reads in the ingest document which times are refused:
    15 minutes ahead, QW_INGEST_MAX_AGE_DAYS back, 2000-01-01 (bounds that move with the
    clock, which JSON Schema's date-time cannot express)."""
    doc = await document(apps(None, sessions)[0])
    schemas = doc["components"]["schemas"]
    for model, field in (("Decision", "decided_at"), ("Verdict", "reviewed_at")):
        prop = schemas[model]["properties"][field]
        assert prop["format"] == "date-time"
        for bound in ("15 minutes ahead", "QW_INGEST_MAX_AGE_DAYS", "400 days", "2000-01-01"):
            assert bound in prop["description"], (model, prop)


async def test_refusals_are_documented_as_the_json_they_are_when_reads_are_protected(
    tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """With QW_API_PROTECT_READS the wall's HTML page answers 401 as JSON: the document said
    text/html (FastAPI files a model under the route's own media type; schemathesis ST105).
    Every refusal of every operation of both documents is application/json, and is served so."""
    store = KeyStore(tmp_path / "keys.json")
    store.create("reader", ["read"])
    for app in apps(AuthPolicy(store, "production", protect_reads=True), sessions):
        doc = await document(app)
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                for status, r in op["responses"].items():
                    if status.startswith(("4", "5")):
                        assert list(r.get("content", {})) in (["application/json"], []), (
                            method, path, status, r.get("content"),
                        )  # fmt: skip
    alerts = apps(AuthPolicy(store, "production", protect_reads=True), sessions)[1]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=alerts), base_url="http://s"
    ) as c:
        for path in ("/wall", "/wall/wall.js", "/wall/tiles"):
            r = await c.get(path)
            assert (r.status_code, r.headers["content-type"]) == (401, "application/json"), path
            assert set(r.json()) == {"detail"}


async def test_a_trailing_slash_is_a_plain_404_in_both_not_a_redirect(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    paths = ["/v1/queues/hate-en/health/", "/v1/queues/", "/wall/", "/healthz/", "/metrics/"]
    for app, extra in zip(apps(None, sessions), (["/v1/events/"], paths), strict=True):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://s"
        ) as c:
            for path in (*extra, "/healthz/", "/docs/"):
                for call in (c.get(path), c.post(path, json={})):
                    r = await call
                    assert r.status_code == 404, (path, r.status_code)
                    assert "location" not in r.headers, path
            assert (await c.get("/healthz")).status_code == 200


def heads_beside_gets(doc: dict[str, Any]) -> None:
    """A head operation beside every get (none elsewhere): the get's parameters and
    statuses, no content, its own operationId."""
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), ids
    for path, ops in doc["paths"].items():
        assert ("get" in ops) == ("head" in ops), path
        if "get" in ops:
            head, get = ops["head"], ops["get"]
            assert head["operationId"] == f"{get['operationId']}_head"
            assert head.get("parameters") == get.get("parameters")
            assert set(head["responses"]) == set(get["responses"])
            assert all("content" not in r for r in head["responses"].values()), path


async def test_head_is_answered_and_documented_beside_every_get_of_ingest(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Ingest's GETs answer HEAD as the alerts service's do: the GET's status and headers,
    no body; its document lists a head operation beside every get (and none beside a
    post)."""
    app = apps(None, sessions)[0]
    doc = await document(app)
    heads_beside_gets(doc)
    assert {p for p, ops in doc["paths"].items() if "head" in ops} >= {
        "/v1/queues", "/v1/queues/{queue_id}", "/healthz", "/metrics",
    }  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        for path in ("/v1/queues", "/v1/queues/spam-en", "/v1/queues/a%20b", "/healthz",
                     "/metrics", "/openapi.json", "/docs"):  # fmt: skip
            got, head = await c.get(path), await c.head(path)
            assert (head.status_code, head.content) == (got.status_code, b""), path
            assert head.headers.get("content-type") == got.headers.get("content-type"), path
            if path != "/metrics":  # (its counters move between the two requests)
                assert int(head.headers["content-length"]) == len(got.content), path
        r = await c.head("/v1/events")
        assert (r.status_code, r.headers["allow"]) == (405, "POST")
        r = await c.put("/v1/queues")
        assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD")


async def test_head_is_answered_and_documented_beside_every_get_of_the_alerts_api(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """HEAD answers what GET answers (status, headers incl. ETag), without a body; the
    document lists a head operation beside every get, with the get's parameters and statuses
    and no content; the wall's endless stream ends after its headers and lets its slot go."""
    app = apps(None, sessions)[1]
    doc = await document(app)
    heads_beside_gets(doc)
    assert doc["paths"]["/v1/queues"]["head"]["responses"]["200"]["headers"]["ETag"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        for path in (
            "/v1/queues",
            "/v1/alerts",
            "/v1/incidents",
            "/wall",
            "/wall/tiles",
            "/healthz",
        ):
            got, head = await c.get(path), await c.head(path)
            assert (head.status_code, head.content) == (got.status_code, b""), path
            assert head.headers.get("etag") == got.headers.get("etag"), path
            assert int(head.headers["content-length"]) == len(got.content), path
        r = await c.head("/v1/queues/nobody/health")
        assert (r.status_code, r.content) == (404, b"")
        r = await c.head("/wall/events")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        await asyncio.sleep(0.05)
        assert app.state.wall.streams == 0
        r = await c.head("/v1/health:batch")
        assert (r.status_code, r.headers["allow"]) == (405, "POST")
        # a method a GET route does not take: its Allow lists the HEAD it answers too
        for path in ("/v1/queues", "/wall/tiles"):
            r = await c.delete(path)
            assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD"), path
