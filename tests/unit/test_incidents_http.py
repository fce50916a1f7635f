"""Incidents over HTTP (services/alerts/incidents.py), in process on SQLite: who may change
them, what the trail keeps, and the refusals. The repository's behaviour itself is in
tests/alerts_cases.py (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.api import create_app
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from shared import codec
from shared.apikeys import AuthPolicy, KeyStore
from shared.settings import KafkaSettings
from tests.alerts_cases import NOW, make_breach, sqlite_sessions

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Sessions]:
    async with sqlite_sessions(tmp_path) as sessions:
        yield sessions


def _client(sessions: Sessions, policy: AuthPolicy | None = None) -> httpx.AsyncClient:
    app = create_app(
        AlertsSettings(kafka=KafkaSettings()), sessions, Metrics.create(CollectorRegistry()), policy
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a")


async def _open(sessions: Sessions, queue: str = "spam-en") -> int:
    async with sessions() as s, s.begin():
        first = await db.record_breach(s, make_breach(queue, 0), receivers=[], now=NOW)
        await db.record_breach(s, make_breach(queue, 0, rule="ewma_ucl"), receivers=[], now=NOW)
    assert first is not None
    assert first.incident_id is not None
    return first.incident_id


async def test_an_incident_is_listed_read_acknowledged_annotated_and_resolved(
    sessions: Sessions,
) -> None:
    incident = await _open(sessions)
    await _open(sessions, "hate-de")
    async with _client(sessions) as c:
        listed = (await c.get("/v1/incidents", params={"status": "open"})).json()
        assert [i["queue_id"] for i in listed] == ["hate-de", "spam-en"]  # newest first
        page = (await c.get("/v1/incidents", params={"limit": 1})).json()
        assert [i["queue_id"] for i in page] == ["hate-de"]
        rest = (await c.get("/v1/incidents", params={"before": page[-1]["id"]})).json()
        assert [i["queue_id"] for i in rest] == ["spam-en"]
        one = (await c.get(f"/v1/incidents/{incident}")).json()
        assert one["rules"] == ["p_chart_ucl", "ewma_ucl"]
        assert [(s["rule"], s["notified"]) for s in one["signal_list"]] == [
            ("p_chart_ucl", True),
            ("ewma_ucl", False),
        ]
        r = await c.post(f"/v1/incidents/{incident}/ack", json={"note": "on it"})
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["acknowledged_by"]) == ("acknowledged", "anonymous")
        r = await c.post(f"/v1/incidents/{incident}/notes", json={"note": " policy v3 rollout "})
        assert r.status_code == 201, r.text
        assert r.json()["note"] == "policy v3 rollout"
        r = await c.post(f"/v1/incidents/{incident}/resolve")  # no body: no note
        assert r.status_code == 200, r.text
        assert r.json()["resolved_by"] == "anonymous"
        again = await c.post(f"/v1/incidents/{incident}/resolve", json={"note": "twice"})
        assert again.status_code == 409
        assert "already resolved" in again.json()["detail"]
        assert (await c.post(f"/v1/incidents/{incident}/ack")).status_code == 409
        trail = (await c.get(f"/v1/incidents/{incident}")).json()["trail"]
        assert [(e["action"], e["note"]) for e in trail][2:] == [
            ("acknowledged", "on it"),
            ("note", "policy v3 rollout"),
            ("resolved", None),
        ]
        assert [i["queue_id"] for i in (await c.get("/v1/incidents?status=resolved")).json()] == [
            "spam-en"
        ]


async def test_refusals_say_what_is_wrong(sessions: Sessions) -> None:
    incident = await _open(sessions)
    async with _client(sessions) as c:
        for path in ("/v1/incidents/99", f"/v1/incidents/{2**62}"):  # past the column: 404
            r = await c.get(path)
            assert r.status_code == 404
            assert "no incident" in r.json()["detail"]
        assert (await c.post(f"/v1/incidents/{2**62}/ack")).status_code == 404
        assert (await c.get(f"/v1/incidents/{2**63}")).status_code == 422
        assert (await c.get("/v1/incidents/0")).status_code == 422
        assert (await c.get("/v1/incidents?status=burning")).status_code == 422
        assert (await c.get("/v1/incidents?queue_id=a%7Cb")).status_code == 422
        for body in ({}, {"note": "   "}, {"note": "x" * 2001}, {"note": "a\x00b"},
                     {"note": "ok", "extra": 1}, {"note": "paid \u202eevil"}):  # fmt: skip
            r = await c.post(f"/v1/incidents/{incident}/notes", json=body)
            assert r.status_code == 422, (body, r.text)
        # a lone surrogate (valid JSON escape, not text): a 422 naming it, never a 500
        r = await c.post(f"/v1/incidents/{incident}/notes", content=b'{"note": "a\\ud800b"}',
                         headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "note"]
        r = await c.post(f"/v1/incidents/{incident}/notes", content=b"{", headers={
            "content-type": "application/json"})  # fmt: skip
        assert r.status_code == 422


async def test_changes_need_the_ack_scope_and_name_the_key(
    tmp_path: Path, sessions: Sessions
) -> None:
    store = KeyStore(tmp_path / "k.json")
    _, reader = store.create("wall", ["read"])
    acker_key, acker = store.create("oncall-ana", ["ack"])
    incident = await _open(sessions)
    async with _client(sessions, AuthPolicy(store, "production", protect_reads=True)) as c:
        assert (await c.get("/v1/incidents")).status_code == 401
        assert (await c.get("/v1/incidents", headers={"X-API-Key": reader})).status_code == 200
        for action in ("ack", "resolve"):
            r = await c.post(f"/v1/incidents/{incident}/{action}")
            assert r.status_code == 401
            r = await c.post(f"/v1/incidents/{incident}/{action}", headers={"X-API-Key": reader})
            assert r.status_code == 403
        r = await c.post(f"/v1/incidents/{incident}/notes", json={"note": "x"},
                         headers={"X-API-Key": reader})  # fmt: skip
        assert r.status_code == 403
        r = await c.post(f"/v1/incidents/{incident}/ack", headers={"X-API-Key": acker})
        assert r.status_code == 200
        assert r.json()["acknowledged_by"] == f"key {acker_key.id} (oncall-ana)"
        assert acker not in r.text  # never the secret
        doc = (await c.get("/openapi.json")).json()
        for path in ("/v1/incidents/{incident_id}/ack", "/v1/incidents/{incident_id}/resolve",
                     "/v1/incidents/{incident_id}/notes"):  # fmt: skip
            assert {"401", "403", "404", "422"} <= set(doc["paths"][path]["post"]["responses"])


async def test_acknowledging_an_alert_acknowledges_its_incident(sessions: Sessions) -> None:
    incident = await _open(sessions)
    async with _client(sessions) as c:
        alert = (await c.get(f"/v1/incidents/{incident}")).json()["signal_list"][0]["id"]
        r = await c.post(f"/v1/alerts/{alert}/ack")
        assert r.status_code == 200
        assert r.json()["incident_id"] == incident
        got = (await c.get(f"/v1/incidents/{incident}")).json()
        assert got["status"] == "acknowledged"
        assert got["trail"][-1]["note"] == f"via alert {alert}"


async def test_an_alert_names_the_site_behind_it_in_the_api_and_its_webhook(
    sessions: Sessions,
) -> None:
    """A site's CUSUM breach carries its site (when the site stands out): ``GET /v1/alerts``
    and the webhook say it as ``site``; a queue-wide alert has ``site`` null."""
    site_breach = make_breach("hate-en", 0, rule="cusum_site_upper").model_copy(
        update={"site": "dublin", "dedup_key": "hate-en:cusum_site_upper:0:dublin"}
    )
    async with sessions() as s, s.begin():
        await db.record_breach(s, site_breach, receivers=["http://hook"], now=NOW)
        await db.record_breach(s, make_breach("spam-en", 0), receivers=["http://hook"], now=NOW)
    async with _client(sessions) as c:
        r = await c.get("/v1/alerts")
        # one queue's alerts, open or all; a queue id outside the grammar is refused
        for status in ("all", "firing"):
            one = await c.get("/v1/alerts", params={"queue_id": "hate-en", "status": status})
            assert [a["queue_id"] for a in one.json()] == ["hate-en"], (status, one.text)
        none = await c.get("/v1/alerts", params={"queue_id": "nobody"})
        assert none.json() == []
        bad = await c.get("/v1/alerts", params={"queue_id": "a b"})
        assert bad.status_code == 422, bad.text
    assert r.status_code == 200, r.text
    assert {a["queue_id"]: a["site"] for a in r.json()} == {"hate-en": "dublin", "spam-en": None}
    async with sessions() as s:
        bodies = [codec.loads(d.body or "") for d in (await s.scalars(select(db.Delivery))).all()]
    assert {b["alert"]["queue_id"]: b["alert"]["site"] for b in bodies} == {
        "hate-en": "dublin", "spam-en": None,
    }  # fmt: skip
