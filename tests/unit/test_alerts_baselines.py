"""Baseline resets in the alerts service, in process on SQLite: the reset endpoint (who may
ask, what it refuses, the audit row, the control record it hands to the broker, a retry with
the same Idempotency-Key), the consumer's handling of the scorer's baseline changes (stored,
chart alerts of the old baseline resolved, an old breach opening nothing), the audit trail,
the chart's marks, the health's words and the metrics. Through the real broker and scorer:
tests/integration/test_baseline_reset.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.api import create_app
from services.alerts.baselines import ControlSender
from services.alerts.consumer import AlertsConsumer
from services.alerts.health import health
from services.alerts.metrics import Metrics
from shared import codec, control
from shared.apikeys import AuthPolicy, KeyStore
from shared.events import BaselineEvent, BreachKind, QualitySnapshot
from shared.topics import queue_key
from tests.alerts_cases import NOW, at, make_breach, make_snapshot, sqlite_sessions
from tests.unit.test_alerts_consumer import BREACH, SETTINGS, SNAP, rec

Sessions = async_sessionmaker[AsyncSession]
BASELINES = SETTINGS.kafka.topics.baselines
RESET = "/v1/queues/spam-en/baseline:reset"


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Sessions]:
    async with sqlite_sessions(tmp_path) as sessions:
        yield sessions


class Broker:
    """What the service hands to the scorer's input topic (the real producer's seam): each
    control record as (queue, decoded record); ``down`` refuses like an unreachable broker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.down = False

    async def __call__(self, queue_id: str, value: bytes) -> None:
        if self.down:
            raise TimeoutError("no broker")
        self.sent.append((queue_id, control.decode_input(value, queue_key(queue_id))))


def _client(
    sessions: Sessions, policy: AuthPolicy | None = None, send: ControlSender | None = None
) -> httpx.AsyncClient:
    app = create_app(SETTINGS, sessions, Metrics.create(CollectorRegistry()), policy, control=send)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a")


def snapshot(queue: str = "spam-en", **kw: Any) -> QualitySnapshot:
    return make_snapshot(queue, 0, []).model_copy(update={"baseline_source": "estimated", **kw})


async def store(sessions: Sessions, *snaps: QualitySnapshot) -> None:
    async with sessions() as s, s.begin():
        for snap in snaps:
            await db.upsert_snapshot(s, snap, NOW)


def reset_event(
    queue: str = "spam-en", epoch: int = 1, hours: float = 5, **kw: Any
) -> BaselineEvent:
    fields: dict[str, Any] = dict(
        queue_id=queue, epoch=epoch, event="reset", at=at(hours), emitted_at=NOW,
        request_id=f"req{epoch}", reason="policy spam.v4", actor="key 0000abcd (lead)",
        requested_at=NOW, phase1_from=at(hours + 1), previous_p=0.05,
    )  # fmt: skip
    fields.update(kw)
    return BaselineEvent(**fields)


def frozen_event(queue: str = "spam-en", epoch: int = 1, hours: float = 40) -> BaselineEvent:
    return BaselineEvent(
        queue_id=queue, epoch=epoch, event="frozen", at=at(hours), emitted_at=NOW,
        baseline_p=0.08, baseline_n=2400, baseline_errors=192, subgroups=24,
        last_subgroup=at(hours - 8),
    )  # fmt: skip


async def test_a_reset_is_recorded_sent_and_answered(sessions: Sessions) -> None:
    await store(sessions, snapshot())
    broker = Broker()
    async with _client(sessions, send=broker) as c:
        r = await c.post(RESET, json={"reason": "  policy spam.v4 in force  "})
        assert r.status_code == 202, r.text
        body = r.json()
        assert (body["queue_id"], body["actor"], body["reason"]) == (
            "spam-en", "anonymous", "policy spam.v4 in force",
        )  # fmt: skip
        assert (body["status"], body["replayed"], body["effective_at"]) == ("sent", False, None)
        ((queue, record),) = broker.sent
        assert queue == "spam-en"
        assert record["kind"] == "baseline_reset"
        assert (record["request_id"], record["reason"]) == (body["request_id"], body["reason"])
        # the audit trail lists it, not applied yet
        trail = (await c.get("/v1/queues/spam-en/baselines")).json()["baselines"]
        assert [(b["status"], b["epoch"], b["request_status"]) for b in trail] == [
            ("requested", None, "sent")
        ]
        # an effective time in the past is carried as epoch seconds
        past = (NOW - timedelta(hours=3)).isoformat()
        r = await c.post(RESET, json={"reason": "x", "effective_at": past})
        assert r.status_code == 202, r.text
        assert broker.sent[-1][1]["effective_at"] == (NOW - timedelta(hours=3)).timestamp()


async def test_a_retry_with_the_same_idempotency_key_resets_once(sessions: Sessions) -> None:
    await store(sessions, snapshot())
    broker = Broker()
    key = {"Idempotency-Key": "change-1234"}
    async with _client(sessions, send=broker) as c:
        broker.down = True
        r = await c.post(RESET, json={"reason": "migration"}, headers=key)
        assert r.status_code == 503, r.text
        assert "retry with the same Idempotency-Key" in r.json()["detail"]
        trail = (await c.get("/v1/queues/spam-en/baselines")).json()["baselines"]
        assert [b["request_status"] for b in trail] == ["pending"]
        broker.down = False
        first = await c.post(RESET, json={"reason": "migration"}, headers=key)
        assert first.status_code == 202, first.text
        again = await c.post(RESET, json={"reason": "migration"}, headers=key)
        assert again.status_code == 202
        assert again.json()["replayed"] is True
        assert again.json()["request_id"] == first.json()["request_id"]
        assert len(broker.sent) == 1  # the pending one, produced once it could be
        other = await c.post(RESET, json={"reason": "another reason"}, headers=key)
        assert other.status_code == 409
        assert "Idempotency-Key" in other.json()["detail"]
        trail = (await c.get("/v1/queues/spam-en/baselines")).json()["baselines"]
        assert len(trail) == 1


async def test_refusals_say_what_is_wrong(sessions: Sessions) -> None:
    await store(sessions, snapshot(), snapshot("std", baseline_source="configured"))
    broker = Broker()
    async with _client(sessions, send=broker) as c:
        r = await c.post("/v1/queues/nobody/baseline:reset", json={"reason": "x"})
        assert r.status_code == 404
        assert (await c.get("/v1/queues/nobody/baselines")).status_code == 404
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        for body, loc in (
            ({}, ["body", "reason"]),
            ({"reason": "   "}, ["body", "reason"]),
            ({"reason": "x" * 2001}, ["body", "reason"]),
            ({"reason": "a\x00b"}, ["body", "reason"]),
            ({"reason": "x", "extra": 1}, ["body", "extra"]),
            ({"reason": "x", "effective_at": future}, ["body", "effective_at"]),
            ({"reason": "x", "effective_at": "2026-11-02T10:00:00"}, ["body", "effective_at"]),
            ({"reason": "x", "effective_at": 1793613600}, ["body", "effective_at"]),
            ({"reason": "x", "replace_configured": 0}, ["body", "replace_configured"]),
            ({"reason": 7}, ["body", "reason"]),
        ):
            r = await c.post(RESET, json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["detail"][0]["loc"] == loc, (body, r.text)
        r = await c.post("/v1/queues/a%7Cb/baseline:reset", json={"reason": "x"})
        assert r.status_code == 422
        r = await c.post(RESET, json={"reason": "x"}, headers={"Idempotency-Key": "a b"})
        assert r.status_code == 422
        # a configured baseline (a standard) is not dropped by accident
        r = await c.post("/v1/queues/std/baseline:reset", json={"reason": "x"})
        assert r.status_code == 409
        assert "replace_configured" in r.json()["detail"]
        r = await c.post(
            "/v1/queues/std/baseline:reset", json={"reason": "x", "replace_configured": True}
        )
        assert r.status_code == 202
        assert [q for q, _ in broker.sent] == ["std"]
    async with _client(sessions) as c:  # no producer
        assert (await c.post(RESET, json={"reason": "x"})).status_code == 503


async def test_a_reset_needs_the_admin_scope_and_names_the_key(
    tmp_path: Path, sessions: Sessions
) -> None:
    await store(sessions, snapshot())
    keys = KeyStore(tmp_path / "k.json")
    _, reader = keys.create("wall", ["read"])
    _, acker = keys.create("oncall", ["ack"])
    admin_key, admin = keys.create("ops lead", ["admin"])
    broker = Broker()
    policy = AuthPolicy(keys, "production", protect_reads=True)
    async with _client(sessions, policy, broker) as c:
        assert (await c.post(RESET, json={"reason": "x"})).status_code == 401
        for token in (reader, acker):
            r = await c.post(RESET, json={"reason": "x"}, headers={"X-API-Key": token})
            assert r.status_code == 403, r.text
        assert (await c.get("/v1/queues/spam-en/baselines")).status_code == 401
        r = await c.get("/v1/queues/spam-en/baselines", headers={"X-API-Key": reader})
        assert r.status_code == 200
        r = await c.post(RESET, json={"reason": "x"}, headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 202, r.text
        assert r.json()["actor"] == f"key {admin_key.id} (ops lead)"
        assert admin not in r.text
        assert broker.sent[0][1]["actor"] == f"key {admin_key.id} (ops lead)"
        doc = (await c.get("/openapi.json")).json()
        answers = doc["paths"]["/v1/queues/{queue_id}/baseline:reset"]["post"]["responses"]
        assert {"202", "401", "403", "404", "409", "422", "503"} <= set(answers)


async def test_the_consumer_stores_changes_and_a_reset_resolves_the_chart_alerts(
    sessions: Sessions,
) -> None:
    m = Metrics.create(CollectorRegistry())
    consumer = AlertsConsumer(SETTINGS, sessions, m)
    below = make_breach("spam-en", 1, rule="accuracy_24h_below_target").model_copy(
        update={"kind": BreachKind.BELOW_TARGET, "severity": "critical"}
    )
    await consumer.handle([
        rec(SNAP, codec.dumps(make_snapshot("spam-en", 0, ["p_chart_ucl"]))),
        rec(BREACH, codec.dumps(make_breach("spam-en", 0)), 1),
        rec(BREACH, codec.dumps(make_breach("spam-en", 1, rule="cusum_upper")), 2),
        rec(BREACH, codec.dumps(below), 3),
    ])  # fmt: skip

    def gauge(name: str, **labels: str) -> float | None:
        return m.registry.get_sample_value(name, labels)

    assert gauge("qw_alerts_firing", queue="spam-en", rule="p_chart_ucl") == 1
    assert gauge("qw_queue_baseline_error_rate", queue="spam-en") == 0.05
    reset = reset_event(hours=5)
    learning = make_snapshot("spam-en", 5, []).model_copy(update={
        "baseline_p": None, "baseline_state": "phase1", "last_point": None, "baseline_epoch": 1,
        "phase1_subgroups": 0, "phase1_length": 24, "last_reset": reset, "accuracy_24h": 0.7,
    })  # fmt: skip
    await consumer.handle([
        rec(BASELINES, codec.dumps(reset), 4),
        rec(BASELINES, codec.dumps(reset), 5),  # a copy (the scorer re-sent it)
        # a chart breach raised before the reset, read after it: its baseline is gone
        rec(BREACH, codec.dumps(make_breach("spam-en", 4, rule="cusum_upper")), 6),
        rec(SNAP, codec.dumps(learning), 7),
    ])  # fmt: skip
    assert gauge("qw_alerts_firing", queue="spam-en", rule="p_chart_ucl") == 0
    assert gauge("qw_alerts_firing", queue="spam-en", rule="cusum_upper") == 0
    # the target rule goes on: its alert stays
    assert gauge("qw_alerts_firing", queue="spam-en", rule="accuracy_24h_below_target") == 1
    assert gauge("qw_queue_baseline_learning", queue="spam-en") == 1
    assert gauge("qw_queue_baseline_resets", queue="spam-en") == 1
    assert gauge("qw_queue_baseline_error_rate", queue="spam-en") is None  # gone while learning
    assert gauge("qw_queue_pchart_ucl", queue="spam-en") is None
    async with sessions() as s:
        assert [c.event for c in await db.baseline_changes(s, "spam-en")] == ["reset"]
        firing = await db.firing_alerts(s, "spam-en")
        assert [a.rule for a in firing] == ["accuracy_24h_below_target"]
        (incident,) = await db.incidents(s, queue_id="spam-en")
        assert incident.status == "firing"  # the below-target signal keeps it open
        _, _, trail = await db.incident_detail(s, incident.id) or (None, None, [])
        assert (trail[-1].action, trail[-1].actor) == ("note", "key 0000abcd (lead)")
        assert "policy spam.v4" in (trail[-1].note or "")
    # the scorer froze the new baseline: the trail joins it with the request
    async with sessions() as s, s.begin():
        s.add(db.BaselineRequest(
            request_id="req1", queue_id="spam-en", actor="key 0000abcd (lead)",
            reason="policy spam.v4", requested_at=NOW, status="sent",
        ))  # fmt: skip
    await consumer.handle([rec(BASELINES, codec.dumps(frozen_event()), 8)])
    async with _client(sessions) as c:
        trail = (await c.get("/v1/queues/spam-en/baselines")).json()["baselines"]
        assert [(b["epoch"], b["status"], b["current"]) for b in trail] == [(1, "frozen", True)]
        (b,) = trail
        assert (b["actor"], b["reason"], b["request_status"]) == (
            "key 0000abcd (lead)", "policy spam.v4", "sent",
        )  # fmt: skip
        assert (b["baseline_p"], b["subgroups"], b["previous_p"]) == (0.08, 24, 0.05)
        chart = (await c.get("/v1/queues/spam-en/chart")).json()
        assert [(x["epoch"], x["event"]) for x in chart["baseline_changes"]] == [
            (1, "reset"), (1, "frozen"),
        ]  # fmt: skip


async def test_a_reset_with_only_chart_alerts_resolves_the_incident(sessions: Sessions) -> None:
    consumer = AlertsConsumer(SETTINGS, sessions, Metrics.create(CollectorRegistry()))
    await consumer.handle([rec(BREACH, codec.dumps(make_breach("spam-en", 0)))])
    await consumer.handle([rec(BASELINES, codec.dumps(reset_event()), 1)])
    async with sessions() as s:
        (incident,) = await db.incidents(s, queue_id="spam-en")
        assert (incident.status, incident.resolved_by) == ("resolved", "key 0000abcd (lead)")
        assert len(await db.due_deliveries(s, datetime.now(UTC))) == 2  # firing, resolved


def test_the_health_says_learning_and_who_reset_it_why() -> None:
    reset = reset_event()
    snap = make_snapshot("spam-en", 5, []).model_copy(update={
        "baseline_p": None, "baseline_state": "phase1", "last_point": None, "baseline_epoch": 1,
        "phase1_subgroups": 5, "phase1_length": 24, "last_reset": reset, "accuracy_24h": 0.8,
        "n_24h": 400,
    })  # fmt: skip
    h = health(snap, target=0.9, min_sample=30, age_s=0, stale_after_s=900, firing=[])
    assert h.baseline == "learning (5/24)"
    assert h.last_baseline_reset == (
        f"{NOW:%Y-%m-%d %H:%M} UTC by key 0000abcd (lead): policy spam.v4"
    )
    assert "baseline learning (5/24): Phase I since the reset of" in h.explanation
    # the target rule applies while learning: 80% of 400 is under 90% with confidence
    assert h.below_target_with_confidence
    assert h.band == "red"
    few = health(snap.model_copy(update={"n_24h": 3}), target=0.9, min_sample=30, age_s=0,
                 stale_after_s=900, firing=[])  # fmt: skip
    assert (few.band, few.baseline) == ("insufficient_data", "learning (5/24)")
    frozen = health(snapshot(), target=0.9, min_sample=30, age_s=0, stale_after_s=900, firing=[])
    assert (frozen.baseline, frozen.last_baseline_reset) == ("estimated", None)
