"""API keys on both HTTP services: every mutating endpoint needs its scope outside
development (and once a key exists), reads only when protected; 401 and 403 say why and are
in the OpenAPI documents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.api import create_app as alerts_app
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from services.ingest.api import create_app as ingest_app
from services.ingest.publisher import Publisher
from shared import apikeys
from shared.apikeys import AuthPolicy, KeyStore
from shared.settings import KafkaSettings
from tests.factories import decision
from tests.unit.test_ingest_api import MemoryPublisher


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    await db.create_schema(engine)
    yield db.make_sessionmaker(engine)
    await engine.dispose()


def _ingest(policy: AuthPolicy) -> httpx.AsyncClient:
    app = ingest_app(cast(Publisher, MemoryPublisher()), 1 << 20, policy)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i")


def _alerts(policy: AuthPolicy, sessions: async_sessionmaker[AsyncSession]) -> httpx.AsyncClient:
    app = alerts_app(
        AlertsSettings(kafka=KafkaSettings()), sessions, Metrics.create(CollectorRegistry()), policy
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a")


async def test_ingest_needs_an_ingest_key_in_production(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "k.json")
    _, ingest_key = store.create("producer", ["ingest"])
    _, read_key = store.create("dashboard", ["read"])
    async with _ingest(AuthPolicy(store, "production", protect_reads=False)) as c:
        r = await c.post("/v1/events", json=[decision(1)])
        assert r.status_code == 401, r.text
        assert "scope 'ingest' is required" in r.json()["detail"]
        assert r.headers["www-authenticate"] == "Bearer"
        r = await c.post("/v1/events", json=[decision(1)], headers={"X-API-Key": read_key})
        assert r.status_code == 403
        assert "lacks the scope 'ingest'" in r.json()["detail"]
        auth = {"Authorization": f"Bearer {ingest_key}"}
        assert (await c.post("/v1/events", json=[decision(1)], headers=auth)).status_code == 202
        store.revoke(ingest_key.split("_")[1])
        await asyncio.sleep(apikeys.RELOAD_CHECK_S + 0.05)
        assert (await c.post("/v1/events", json=[decision(1)], headers=auth)).status_code == 401
        doc = (await c.get("/openapi.json")).json()
        responses = doc["paths"]["/v1/events"]["post"]["responses"]
        assert {"401", "403"} <= set(responses)
        assert doc["components"]["securitySchemes"]


async def test_development_without_keys_is_open_and_says_so(tmp_path: Path) -> None:
    policy = AuthPolicy(KeyStore(tmp_path / "k.json"), "development", protect_reads=False)
    assert "OFF" in policy.describe()
    async with _ingest(policy) as c:
        assert (await c.post("/v1/events", json=[decision(1)])).status_code == 202


async def test_alerts_ack_needs_ack_and_reads_only_when_protected(
    tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    store = KeyStore(tmp_path / "k.json")
    _, reader = store.create("wall", ["read"])
    _, acker = store.create("oncall", ["ack"])
    open_reads = AuthPolicy(store, "production", protect_reads=False)
    async with _alerts(open_reads, sessions) as c:
        assert (await c.get("/v1/queues")).status_code == 200
        assert (await c.post("/v1/alerts/1/ack")).status_code == 401
        r = await c.post("/v1/alerts/1/ack", headers={"X-API-Key": reader})
        assert r.status_code == 403
        r = await c.post("/v1/alerts/1/ack", headers={"X-API-Key": acker})
        assert r.status_code == 404  # authorised; there is no alert 1
    protected = AuthPolicy(store, "production", protect_reads=True)
    async with _alerts(protected, sessions) as c:
        assert (await c.get("/v1/queues")).status_code == 401
        assert (await c.get("/v1/queues", headers={"X-API-Key": reader})).status_code == 200
        assert (await c.get("/v1/queues", headers={"X-API-Key": acker})).status_code == 200
        doc = (await c.get("/openapi.json")).json()
        assert {"401", "403"} <= set(doc["paths"]["/v1/alerts/{alert_id}/ack"]["post"]["responses"])
