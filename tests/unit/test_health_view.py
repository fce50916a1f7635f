"""The health view (services/alerts/view.py): what it serves equals what the health API
computed per request before it, it follows the consumer and the database, it recomputes a
health only when its age changes it, and a page's ETag changes exactly when its bytes do."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Request
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.api import HealthFastPath, create_app, get_view
from services.alerts.health import health
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from services.alerts.view import OVERLAP_S, HealthView, QueueHealth
from shared.apikeys import AuthPolicy, KeyStore
from shared.events import QualitySnapshot
from shared.settings import KafkaSettings
from tests.alerts_cases import NOW, make_breach, make_snapshot, sqlite_sessions

Sessions = async_sessionmaker[AsyncSession]
T0 = NOW.timestamp()


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def settings(**kw: Any) -> AlertsSettings:
    return AlertsSettings(kafka=KafkaSettings(), **kw)


def per_request(s: AlertsSettings, snap: QualitySnapshot, age_s: float, firing: list[str]) -> Any:
    """What ``GET /v1/queues/{id}/health`` answered when it computed health per request."""
    h = health(
        snap, target=s.quality.accuracy_target, confidence=s.quality.target_confidence,
        min_sample=s.min_sample, age_s=age_s, stale_after_s=s.stale_after_s, firing=firing,
    )  # fmt: skip
    team = s.alertmanager_default_team
    return QueueHealth(queue_id=snap.queue_id, team=team, health=h, snapshot=snap).model_dump(
        mode="json"
    )


def served(view: HealthView, queue: str) -> Any:
    entry = view.get(queue)
    assert entry is not None
    return json.loads(entry.body)


def snap(queue: str, accuracy: float = 0.97, n: int = 500) -> QualitySnapshot:
    return make_snapshot(queue, 3, []).model_copy(update={"accuracy_24h": accuracy, "n_24h": n})


def test_the_consumers_snapshots_and_firing_rules_are_served_as_computed_per_request() -> None:
    s, clock = settings(), Clock()
    view = HealthView(s, clock=clock)
    a, b = snap("a"), snap("b", accuracy=0.85)
    view.apply([(a, NOW), (b, NOW)], {"b": ["p_chart_ucl"]})
    assert served(view, "a") == per_request(s, a, 0.0, [])
    assert served(view, "b") == per_request(s, b, 0.0, ["p_chart_ucl"])
    assert view.get("nobody") is None
    # a newer snapshot replaces the entry; an alert firing turns green to amber at once
    a2 = snap("a", accuracy=0.99)
    view.apply([(a2, NOW + timedelta(seconds=5))], {"a": ["ewma_ucl"]})
    clock.t = T0 + 6
    assert served(view, "a") == per_request(s, a2, 1.0, ["ewma_ucl"])
    assert served(view, "a")["health"]["band"] == "amber"
    assert served(view, "b")["health"]["firing_alerts"] == []  # resolved: not in the map
    # snapshots alone (a poll without breaches still passes the firing map; None keeps it)
    view.apply([(snap("c"), NOW)])
    assert served(view, "a")["health"]["firing_alerts"] == ["ewma_ucl"]


def test_health_is_recomputed_only_once_the_age_changes_it() -> None:
    """Staleness counts in steps (300 s fresh, then a step each 225 s): a health, and so
    its bytes, changes when its step does, not with every second."""
    s, clock = settings(stale_after_s=300), Clock()
    view = HealthView(s, clock=clock)
    a = snap("a")
    view.apply([(a, NOW)])
    computed = view.recomputed
    clock.t = T0 + 299  # still fresh: the cached bytes are exact, nothing recomputed
    assert served(view, "a") == per_request(s, a, 299, [])
    assert view.recomputed == computed
    clock.t = T0 + 420  # stale: recomputed on this read, freshness falling
    body = served(view, "a")
    assert view.recomputed == computed + 1
    assert body == per_request(s, a, 420, [])
    assert body["health"]["components"]["freshness"] == 75
    assert "no new data for over 5 min" in body["health"]["explanation"]
    for t in (421, 480, 525):  # the same step: the cached answer, nothing recomputed
        clock.t = T0 + t
        assert served(view, "a") == body == per_request(s, a, t, [])
    assert view.recomputed == computed + 1
    clock.t = T0 + 600  # the next step: recomputed, lower
    later = served(view, "a")
    assert view.recomputed == computed + 2
    assert later == per_request(s, a, 600, [])
    assert later["health"]["components"]["freshness"] == 50
    clock.t = T0 + 10**6  # the last step: no further change, ever
    last = served(view, "a")
    assert last["health"]["components"]["freshness"] == 0
    clock.t = T0 + 10**9
    assert served(view, "a") == last
    assert view.recomputed == computed + 3


def test_a_stale_page_keeps_its_etag_until_a_staleness_step_changes() -> None:
    """A client polling with If-None-Match gets the same tag while nothing changes, stale
    or not; a new step or new data changes it."""
    s, clock = settings(stale_after_s=300), Clock()
    view = HealthView(s, clock=clock)
    view.apply([(snap(q), NOW) for q in ("a", "b")])
    clock.t = T0 + 301
    tag = view.page(limit=10).etag
    for t in range(302, 526, 7):
        clock.t = T0 + t
        assert view.page(limit=10).etag == tag, t
    clock.t = T0 + 526
    assert view.page(limit=10).etag != tag
    clock.t = T0 + 530
    tag = view.page(limit=10).etag
    view.apply([(snap("b", accuracy=0.96), NOW)])
    assert view.page(limit=10).etag != tag


def test_pages_by_id_with_filters_and_an_etag_that_follows_the_bytes() -> None:
    s = settings(alertmanager_teams="spam-*=trust-spam,cse-*=child-safety")
    view = HealthView(s, clock=Clock())
    queues = [f"spam-{i:02d}" for i in range(5)] + [f"cse-{i:02d}" for i in range(3)] + ["x"]
    view.apply([(snap(q, accuracy=0.8 if q.endswith("1") else 0.97), NOW) for q in queues])
    first = view.page(limit=4)
    assert [json.loads(b)["queue_id"] for b in first.bodies] == sorted(queues)[:4]
    assert first.next_after == sorted(queues)[3]
    rest = view.page(limit=10, after=first.next_after)
    assert [json.loads(b)["queue_id"] for b in rest.bodies] == sorted(queues)[4:]
    assert rest.next_after is None
    assert json.loads(first.json()) == [json.loads(b) for b in first.bodies]
    # filters: band (the current one) and team (the Alertmanager team map, default "quality")
    red = view.page(limit=100, bands=["red"])
    assert [json.loads(b)["queue_id"] for b in red.bodies] == ["cse-01", "spam-01"]
    teams = {t: view.page(limit=100, team=t) for t in ("child-safety", "quality", "nobody")}
    assert [len(p.bodies) for p in teams.values()] == [3, 1, 0]
    # each item says its team: what the filter matched
    assert {json.loads(b)["team"] for b in teams["child-safety"].bodies} == {"child-safety"}
    assert json.loads(teams["quality"].bodies[0])["team"] == "quality"
    both = view.page(limit=100, bands=["green", "amber"], team="trust-spam")
    assert len(both.bodies) == 4
    # the ETag: the same bytes, the same tag; a change in a listed queue, another tag; a
    # change outside the page, the same; another page following, another tag
    assert view.page(limit=4).etag == first.etag
    view.apply([(snap("x", accuracy=0.5), NOW)])
    assert view.page(limit=4).etag == first.etag
    view.apply([(snap("cse-00", accuracy=0.91), NOW)])
    changed = view.page(limit=4)
    assert changed.etag != first.etag
    view.apply([], {"cse-02": ["p_chart_ucl"]})  # an alert fires: the band in the bytes moves
    assert view.page(limit=4).etag != changed.etag
    whole = view.page(limit=len(queues))  # the last page: nothing follows
    view.apply([(snap("zz"), NOW)])  # sorts last: the same bytes, but now a page follows
    grown = view.page(limit=len(queues))
    assert (grown.bodies, grown.next_after) == (whole.bodies, sorted(queues)[-1])
    assert grown.etag != whole.etag


def test_a_batch_answers_each_id_in_order_or_unknown() -> None:
    view = HealthView(settings(), clock=Clock())
    view.apply([(snap("a"), NOW)])
    body = json.loads(view.batch(["a", "nobody", "a"]))
    assert [(r["queue_id"], r["status"]) for r in body["results"]] == [
        ("a", "ok"), ("nobody", "unknown"), ("a", "ok"),
    ]  # fmt: skip
    assert body["results"][0]["result"] == served(view, "a")
    assert body["results"][1]["result"] is None


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Sessions]:
    async with sqlite_sessions(tmp_path) as sessions:
        yield sessions


async def _write(sessions: Sessions, s: QualitySnapshot, at_s: float) -> None:
    """A snapshot as another replica's consumer writes it."""
    async with sessions() as session, session.begin():
        await db.upsert_snapshot(session, s, NOW + timedelta(seconds=at_s))


async def test_it_loads_and_follows_what_other_replicas_write(sessions: Sessions) -> None:
    s, clock = settings(), Clock(T0 + 1)
    await _write(sessions, snap("a"), 0)
    async with sessions() as session, session.begin():
        await db.record_breach(session, make_breach("a", 0), receivers=[], now=NOW)
    view = HealthView(s, sessions, clock=clock)
    await view.load()
    assert served(view, "a") == per_request(s, snap("a"), 1.0, ["p_chart_ucl"])
    # a new queue and a newer snapshot, written after the watermark: the next sync has them
    await _write(sessions, snap("b"), 2)
    await _write(sessions, snap("a", accuracy=0.99), 3)
    await view.sync()
    clock.t = T0 + 3
    assert served(view, "a") == per_request(s, snap("a", accuracy=0.99), 0.0, ["p_chart_ucl"])
    assert served(view, "b")["snapshot"] == snap("b").model_dump(mode="json")
    # an alert resolved by another replica: gone from the health at the next sync
    async with sessions() as session, session.begin():
        for alert in await db.firing_alerts(session, "a"):
            alert.status = "resolved"
    await view.sync()
    assert served(view, "a")["health"]["firing_alerts"] == []
    # a transaction that committed late: its row is older than the watermark. The plain
    # read misses it, the overlapping one has it; one older than the overlap waits for the
    # full comparison
    await _write(sessions, snap("late", accuracy=0.9), 3 - OVERLAP_S / 2)
    await _write(sessions, snap("later", accuracy=0.9), 3 - OVERLAP_S * 3)
    await view.sync()
    assert view.get("late") is None
    await view.sync(overlap=True)
    assert view.get("late") is not None
    assert view.get("later") is None
    await view.sync(full=True)
    assert view.get("later") is not None


async def test_a_sync_never_undoes_what_the_consumer_applied_meanwhile(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer commits and applies while a sync's read is in flight: the sync's older
    rows must not overwrite it (the next sync compares again)."""
    view = HealthView(settings(), sessions, clock=Clock())
    await _write(sessions, snap("a", accuracy=0.95), 0)
    await view.load()
    await _write(sessions, snap("a", accuracy=0.96), 1)  # what the sync will read
    newer = snap("a", accuracy=0.99)
    read_rules = db.firing_rules

    async def meanwhile(session: AsyncSession) -> dict[str, list[str]]:
        await _write(sessions, newer, 2)  # the consumer's transaction, then its apply
        view.apply([(newer, NOW + timedelta(seconds=2))], {"a": ["ewma_ucl"]})
        return await read_rules(session)

    monkeypatch.setattr(db, "firing_rules", meanwhile)
    await view.sync()
    assert served(view, "a")["snapshot"]["accuracy_24h"] == 0.99
    assert served(view, "a")["health"]["firing_alerts"] == ["ewma_ucl"]  # not the sync's []
    monkeypatch.setattr(db, "firing_rules", read_rules)
    await view.sync()  # the next one agrees with the database
    assert served(view, "a")["snapshot"]["accuracy_24h"] == 0.99


async def test_the_fast_path_answers_what_the_route_answers(
    sessions: Sessions, tmp_path: Path
) -> None:
    """``HealthFastPath`` serves a known queue before FastAPI's routing; the same bytes as
    the route, and every refusal left to the route (404, 422, 401 when reads need a key)."""
    await _write(sessions, snap("a"), 0)
    store = KeyStore(tmp_path / "keys.json")
    _, reader = store.create("reader", ["read"])
    _, ingester = store.create("ingester", ["ingest"])  # no read (ack and admin imply it)
    for auth in (None, AuthPolicy(store, "production", protect_reads=True)):
        app = create_app(settings(), sessions, Metrics.create(CollectorRegistry()), auth)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            headers = {"X-API-Key": reader}
            cold = await client.get("/v1/queues/a/health", headers=headers)  # loads the view
            assert cold.status_code == 200
            calls = 0

            def counting(request: Request) -> HealthView:  # the route's view, counted
                nonlocal calls
                calls += 1
                view: HealthView = request.app.state.view
                return view

            app.dependency_overrides[get_view] = counting
            fast = await client.get("/v1/queues/a/health", headers=headers)
            assert (fast.status_code, calls) == (200, 0)  # answered before the route
            assert fast.content == cold.content
            assert fast.headers["content-type"] == cold.headers["content-type"]
            assert fast.json() == cold.json()
            for path, status in (
                ("/v1/queues/nobody/health", 404),
                ("/v1/queues/a%C2%85/health", 422),
            ):
                assert (await client.get(path, headers=headers)).status_code == status
            if auth is not None:
                for bad in ({}, {"X-API-Key": ingester}, {"Authorization": "Bearer qw_nope"}):
                    r = await client.get("/v1/queues/a/health", headers=bad)
                    assert r.status_code in (401, 403), (bad, r.text[:100])
                    assert r.json()["detail"]
                both = {"X-API-Key": "qw_bad", "Authorization": f"Bearer {reader}"}
                r = await client.get("/v1/queues/a/health", headers=both)
                assert r.status_code == 401  # X-API-Key is read first, as by the route
            assert calls > 0
    assert HealthFastPath.PREFIX == "/v1/queues/"
