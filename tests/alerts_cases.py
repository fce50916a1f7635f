"""Behavioural cases for the alerts repository, run against every database backend."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.api import create_app
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from shared import codec
from shared.events import (
    BaselineEvent,
    Breach,
    BreachKind,
    ChartPoint,
    QualitySnapshot,
    SubgroupPoint,
    SubgroupStatus,
)
from shared.settings import KafkaSettings
from tests.factories import iso

NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)
URLS = ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"]


def make_breach(queue: str, hour: int, rule: str = "p_chart_ucl") -> Breach:
    start = NOW + timedelta(hours=hour)
    return Breach(
        breach_id=f"{queue}:{rule}:{hour}:x", dedup_key=f"{queue}:{rule}:{hour}", queue_id=queue,
        kind=BreachKind.SPC, rule=rule, severity="warning", subgroup_start=start,
        observed_p=0.2, expected_p=0.05, ucl=0.12, n=100, message="m", detected_at=start,
        emitted_at=NOW,
    )  # fmt: skip


def make_snapshot(queue: str, hour: int, signals: list[str], streak: int = 0) -> QualitySnapshot:
    start = NOW + timedelta(hours=hour)
    return QualitySnapshot(
        queue_id=queue, as_of=start, emitted_at=NOW, decisions_total=1, verdicts_total=1,
        pending_verdicts=0, accuracy_1h=0.9, accuracy_24h=0.9, accuracy_7d=0.9, n_1h=1,
        n_24h=100, n_7d=1, baseline_p=0.05, baseline_state="frozen", in_control_streak=streak,
        last_point=ChartPoint(start=start, n=100, errors=5, p=0.05, center=0.05, lcl=0.0,
                              ucl=0.12, signals=signals),
    )  # fmt: skip


def at(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


def make_point(queue: str, hour: int, revision: int = 0, **kw: Any) -> SubgroupPoint:
    """A charted subgroup starting ``hour`` hours after NOW; each revision adds a late error."""
    start = at(hour)
    fields: dict[str, Any] = dict(
        queue_id=queue, start=start, end=start + timedelta(hours=1), revision=revision,
        status=SubgroupStatus.CHARTED, n=100 + revision, errors=5 + revision,
        p=(5 + revision) / (100 + revision), decisions=400, other_verdicts=3, late=revision,
        errors_by_type={"wrong_policy": 5 + revision}, center=0.05, lcl=0.0, ucl=0.12,
        ewma=0.05, ewma_ucl=0.08, signals=[], baseline_p=0.05, baseline_n=2400,
        original_n=100, original_errors=5, as_of=start + timedelta(hours=7 + revision),
        emitted_at=NOW,
    )  # fmt: skip
    fields.update(kw)
    return SubgroupPoint(**fields)


@contextlib.asynccontextmanager
async def sqlite_sessions(folder: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a fresh SQLite database in ``folder``, with the schema created."""
    engine = db.make_engine(f"sqlite+aiosqlite:///{folder / 'alerts.db'}")
    await db.create_schema(engine)
    try:
        yield db.make_sessionmaker(engine)
    finally:
        await engine.dispose()


def _hours(points: list[SubgroupPoint]) -> list[int]:
    return [int((p.start - NOW).total_seconds()) // 3600 for p in points]


Sessions = async_sessionmaker[AsyncSession]


async def _seed_subgroups(sessions: Sessions) -> None:
    """Queue q: hours 0-4, hour 1 at revision 2 (revision 1 came after it), hour 2 at 3, hour
    3 at 4; queue r: hour 0."""
    async with sessions() as s, s.begin():
        points = [make_point("q", h) for h in range(5)] + [make_point("r", 0)]
        assert await db.upsert_subgroups(s, points, NOW) == 6
        assert await db.upsert_subgroups(s, [], NOW) == 0
    # revision 2, then revision 1 in a later poll (a redelivery): 2 stays
    async with sessions() as s, s.begin():
        await db.upsert_subgroups(s, [make_point("q", 1, 2)], NOW)
    async with sessions() as s, s.begin():
        await db.upsert_subgroups(s, [make_point("q", 1, 1)], NOW)
    # within one poll the highest revision wins, whatever the order
    async with sessions() as s, s.begin():
        batch = [make_point("q", 2, 3), make_point("q", 2, 1), make_point("q", 3, 1)]
        assert await db.upsert_subgroups(s, [*batch, make_point("q", 3, 4)], NOW) == 2
    # the same revision again (a replay): the same point
    async with sessions() as s, s.begin():
        await db.upsert_subgroups(s, [make_point("q", 1, 2)], NOW + timedelta(hours=1))


async def case_an_older_revision_never_overwrites_a_newer(sessions: Sessions) -> None:
    await _seed_subgroups(sessions)
    async with sessions() as s:
        got = await db.subgroups(s, "q")
        assert _hours(got) == [0, 1, 2, 3, 4]
        assert [p.revision for p in got] == [0, 2, 3, 4, 0]
        assert got[1] == make_point("q", 1, 2)  # the whole point comes back
        assert (got[1].n, got[1].errors, got[1].late) == (102, 7, 2)
        assert (got[1].original_n, got[1].original_errors) == (100, 5)
        assert _hours(await db.subgroups(s, "r")) == [0]
        assert await db.subgroups(s, "nope") == []


async def case_time_range_cursor_and_limit(sessions: Sessions) -> None:
    await _seed_subgroups(sessions)
    cet = timezone(timedelta(hours=1))
    async with sessions() as s:
        assert _hours(await db.subgroups(s, "q", since=at(1))) == [1, 2, 3, 4]
        assert _hours(await db.subgroups(s, "q", until=at(3))) == [0, 1, 2]
        in_cet = await db.subgroups(s, "q", since=at(1).astimezone(cet), until=at(3))
        assert _hours(in_cet) == [1, 2]
        assert _hours(await db.subgroups(s, "q", since=at(0.5))) == [1, 2, 3, 4]
        assert _hours(await db.subgroups(s, "q", after=at(2))) == [3, 4]
        assert _hours(await db.subgroups(s, "q", after=at(2), limit=1)) == [3]
        assert _hours(await db.subgroups(s, "q", since=at(1), after=at(0), limit=2)) == [1, 2]
        assert await db.subgroups(s, "q", since=at(9)) == []


async def case_a_queue_is_known_by_a_snapshot_or_a_subgroup(sessions: Sessions) -> None:
    await _seed_subgroups(sessions)
    async with sessions() as s, s.begin():
        await db.upsert_snapshot(s, make_snapshot("only-snapshot", 0, []), NOW)
    async with sessions() as s:
        assert await db.queue_known(s, "q")
        assert await db.queue_known(s, "only-snapshot")
        assert not await db.queue_known(s, "nope")


async def case_more_points_than_one_statement_carries(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        many = [make_point("big", h) for h in range(1200)]
        assert await db.upsert_subgroups(s, many, NOW) == 1200
    async with sessions() as s, s.begin():  # and again, one revision on: all replaced
        again = [make_point("big", h, 1) for h in range(1200)]
        assert await db.upsert_subgroups(s, again, NOW) == 1200
    async with sessions() as s:
        got = await db.subgroups(s, "big", limit=2000)
        assert len(got) == 1200
        assert {p.revision for p in got} == {1}


def api_client(sessions: Sessions) -> httpx.AsyncClient:
    """The alerts service's HTTP API on ``sessions``, in process."""
    app = create_app(
        AlertsSettings(kafka=KafkaSettings()), sessions, Metrics.create(CollectorRegistry())
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://alerts")


async def chart_pages(
    client: httpx.AsyncClient, queue: str, **params: str | int
) -> list[list[dict[str, Any]]]:
    """Every page of a queue's chart, following ``next`` from the first page to the last."""
    pages: list[list[dict[str, Any]]] = []
    while True:
        r = await client.get(f"/v1/queues/{queue}/chart", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["queue_id"] == queue
        pages.append(body["points"])
        if body["next"] is None:
            return pages
        assert body["next"] == body["points"][-1]["start"]
        params["after"] = body["next"]


async def case_chart_pages_follow_next_to_the_end(sessions: Sessions) -> None:
    await _seed_subgroups(sessions)
    async with api_client(sessions) as client:
        pages = await chart_pages(client, "q", limit=2)
    assert [len(page) for page in pages] == [2, 2, 1]
    points = [p for page in pages for p in page]
    assert [p["start"] for p in points] == [iso(at(h)) for h in range(5)]
    assert [p["revision"] for p in points] == [0, 2, 3, 4, 0]
    assert SubgroupPoint.model_validate(points[1]) == make_point("q", 1, 2)


async def case_chart_time_range(sessions: Sessions) -> None:
    await _seed_subgroups(sessions)
    async with api_client(sessions) as client:
        r = await client.get(
            "/v1/queues/q/chart",
            params={"from": at(1).astimezone(timezone(timedelta(hours=-5))).isoformat(),
                    "to": iso(at(4)), "limit": 2},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        assert [p["start"] for p in r.json()["points"]] == [iso(at(1)), iso(at(2))]
        assert r.json()["next"] == iso(at(2))
        r = await client.get(
            "/v1/queues/q/chart", params={"from": iso(at(1)), "to": iso(at(4)), "after": iso(at(2))}
        )
        assert [p["start"] for p in r.json()["points"]] == [iso(at(3))]
        assert r.json()["next"] is None
        # a known queue with nothing in the range: an empty page, not a 404
        r = await client.get("/v1/queues/r/chart", params={"from": iso(at(1))})
        assert r.status_code == 200
        assert r.json() == {"queue_id": "r", "points": [], "next": None, "baseline_changes": []}


async def case_baseline_requests_and_changes(sessions: Sessions) -> None:
    """The baselines' audit trail: a second request under an idempotency key finds the first
    (the unique constraint decides a race), a change stored once however often it comes,
    the last reset's time (aware UTC), and a reset resolving the chart alerts."""

    def request(request_id: str, key: str | None) -> db.BaselineRequest:
        return db.BaselineRequest(
            request_id=request_id, queue_id="b", idempotency_key=key, actor="key 1 (lead)",
            reason="policy v4", requested_at=NOW, status="pending",
        )  # fmt: skip

    async with sessions() as s, s.begin():
        first = await db.add_baseline_request(s, request("r1", "k"))
        await db.add_baseline_request(s, request("r0", None))
        await db.add_baseline_request(s, request("r00", None))  # no key: each one is new
    async with sessions() as s, s.begin():
        again = await db.add_baseline_request(s, request("r2", "k"))  # the race's loser
        assert again.request_id == first.request_id == "r1"
        await db.mark_baseline_request_sent(s, "r1", NOW)
    async with sessions() as s:
        rows = await db.baseline_requests(s, "b")
        assert [(r.request_id, r.status) for r in rows] == [
            ("r1", "sent"), ("r0", "pending"), ("r00", "pending"),
        ]  # fmt: skip
        assert await db.last_reset_at(s, "b") is None
    async with sessions() as s, s.begin():
        await db.record_breach(s, make_breach("b", 0), receivers=URLS, now=NOW)
    reset = BaselineEvent(
        queue_id="b", epoch=1, event="reset", at=at(3), emitted_at=NOW, request_id="r1",
        reason="policy v4", actor="key 1 (lead)", phase1_from=at(4),
    )  # fmt: skip
    frozen = BaselineEvent(
        queue_id="b", epoch=0, event="frozen", at=at(1), emitted_at=NOW, baseline_p=0.05,
        baseline_n=100, baseline_errors=5, subgroups=3, last_subgroup=at(0),
    )  # fmt: skip
    async with sessions() as s, s.begin():
        fresh = await db.record_baseline_changes(s, [reset, frozen, reset], NOW)
        assert fresh == [reset, frozen]
        assert await db.record_baseline_changes(s, [reset], NOW) == []
        ended = await db.resolve_for_reset(s, reset, receivers=URLS, now=NOW)
        assert [a.rule for a in ended] == ["p_chart_ucl"]
    async with sessions() as s:
        assert [(c.epoch, c.event) for c in await db.baseline_changes(s, "b")] == [
            (0, "frozen"), (1, "reset"),
        ]  # fmt: skip
        assert await db.last_reset_at(s, "b") == at(3)
        assert (await db.last_reset_at(s, "b")).tzinfo is not None  # type: ignore[union-attr]
        assert await db.firing_alerts(s, "b") == []
        (incident,) = await db.incidents(s, queue_id="b")
        assert (incident.status, incident.resolved_by) == ("resolved", "key 1 (lead)")


async def case_incident_history(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A queue's incidents for the wall, newest first: signals by rule, the top cause (the
    first signal with one), people's notes counted (the service's own entries not)."""
    cause = "site dublin stands out"
    async with sessions() as s, s.begin():
        await db.record_breach(s, make_breach("h", 1), receivers=[], now=at(1))
        (first,) = await db.incidents(s, queue_id="h")
        await db.annotate_incident(s, first.id, actor="key 1 (lead)", note="looking", now=at(1))
        await db.resolve_incident(s, first.id, actor="key 1 (lead)", note="fixed", receivers=[],
                                  now=at(2))  # fmt: skip
        for hour, rule in ((3, "cusum_upper"), (4, "cusum_upper"), (5, "p_chart_ucl")):
            b = make_breach("h", hour, rule)
            if hour > 3:
                b = b.model_copy(update={"cause_summary": cause})
            await db.record_breach(s, b, receivers=[], now=at(hour))
    async with sessions() as s:
        newest, old = await db.incident_history(s, "h", 20)
        assert newest.incident.id > old.incident.id
        assert newest.rule_signals == {"cusum_upper": 2, "p_chart_ucl": 1}
        assert (newest.top_cause, newest.notes, newest.last_note) == (cause, 0, None)
        assert (old.rule_signals, old.top_cause, old.notes) == ({"p_chart_ucl": 1}, None, 2)
        assert old.last_note is not None
        assert (old.last_note.note, old.last_note.actor) == ("fixed", "key 1 (lead)")
        assert [h.incident.id for h in await db.incident_history(s, "h", 1)] == [newest.incident.id]
        assert await db.incident_history(s, "nobody", 20) == []


SUBGROUP_CASES = [
    case_incident_history,
    case_baseline_requests_and_changes,
    case_an_older_revision_never_overwrites_a_newer,
    case_time_range_cursor_and_limit,
    case_a_queue_is_known_by_a_snapshot_or_a_subgroup,
    case_more_points_than_one_statement_carries,
    case_chart_pages_follow_next_to_the_end,
    case_chart_time_range,
]


async def run_repository_cases(sessions: async_sessionmaker[AsyncSession]) -> None:
    # a breach becomes an alert with one outbox row per receiver
    async with sessions() as s, s.begin():
        alert = await db.record_breach(s, make_breach("q", 0), receivers=URLS, now=NOW)
        assert alert is not None
        assert alert.status == "firing"
        assert not alert.suppressed
    async with sessions() as s, s.begin():
        due = await db.due_deliveries(s, NOW)
        assert sorted(d.receiver for d in due) == URLS
        assert all(d.event == "firing" for d in due)

    # the same dedup key again: no new alert, no new delivery. A copy of the breach (the
    # same breach id: the scorer re-sent it after a restart) is not even an occurrence; a
    # re-evaluation (a new breach id) is
    async with sessions() as s, s.begin():
        assert await db.record_breach(s, make_breach("q", 0), receivers=URLS, now=NOW) is None
    async with sessions() as s, s.begin():
        assert (await db.firing_alerts(s, "q"))[0].occurrences == 1
        reevaluated = make_breach("q", 0).model_copy(update={"breach_id": "q:p_chart_ucl:0:y"})
        for _ in range(2):
            assert await db.record_breach(s, reevaluated, receivers=URLS, now=NOW) is None
    async with sessions() as s, s.begin():
        assert len(await db.due_deliveries(s, NOW)) == 2
        assert (await db.firing_alerts(s, "q"))[0].occurrences == 2

    # another subgroup while q's alert is open: recorded, suppressed, no webhook
    async with sessions() as s, s.begin():
        later = await db.record_breach(
            s, make_breach("q", 1), receivers=URLS, now=NOW + timedelta(minutes=5)
        )
        assert later is not None
        assert later.suppressed
    async with sessions() as s, s.begin():
        assert len(await db.due_deliveries(s, NOW + timedelta(minutes=5))) == 2

    # another queue is independent of q's open alert
    async with sessions() as s, s.begin():
        other = await db.record_breach(s, make_breach("r", 0), receivers=URLS[:1], now=NOW)
        assert other is not None
        assert not other.suppressed

    # snapshots upsert; an in-control later point resolves q's SPC alerts and queues "resolved"
    async with sessions() as s, s.begin():
        await db.upsert_snapshot(s, make_snapshot("q", 1, ["p_chart_ucl"]), NOW)
        assert (
            await db.resolve_recovered(
                s, make_snapshot("q", 1, ["p_chart_ucl"]), receivers=URLS, now=NOW
            )
            == []
        )
    async with sessions() as s, s.begin():  # one quiet subgroup is not recovery
        snap = make_snapshot("q", 2, [], streak=1)
        assert await db.resolve_recovered(s, snap, receivers=URLS, now=NOW) == []
    async with sessions() as s, s.begin():
        snap = make_snapshot("q", 3, [], streak=3)
        await db.upsert_snapshot(s, snap, NOW)
        resolved = await db.resolve_recovered(s, snap, receivers=URLS, now=NOW)
        assert sorted(a.dedup_key for a in resolved) == ["q:p_chart_ucl:0", "q:p_chart_ucl:1"]
    async with sessions() as s, s.begin():
        assert [a.queue_id for a in await db.firing_alerts(s)] == ["r"]
        due = await db.due_deliveries(s, NOW)
        assert sorted(d.event for d in due if d.alert_id == alert.id) == [
            "firing",
            "firing",
            "resolved",
            "resolved",
        ]
        rows = await db.snapshots(s)
        assert [r[0].queue_id for r in rows] == ["q"]
        assert rows[0][0].last_point is not None
        assert rows[0][0].last_point.signals == []
        assert rows[0][1] == NOW
        assert await db.snapshot(s, "nope") is None

    # receivers hear "resolved" only after "firing": the resolved rows wait for them
    async with sessions() as s, s.begin():
        claimed = await db.claim_due(s, NOW, lease_s=60)
        assert {(d.alert_id, d.event) for d, _ in claimed} >= {(alert.id, "firing")}
        assert (alert.id, "resolved") not in {(d.alert_id, d.event) for d, _ in claimed}
        assert await db.claim_due(s, NOW, lease_s=60) == []  # leased
        for d, _ in claimed:
            await db.record_attempt(s, d.id, now=NOW, error=None, retry_at=None)
    async with sessions() as s, s.begin():
        after = NOW + timedelta(minutes=2)
        events = {(d.alert_id, d.event) for d, _ in await db.claim_due(s, after, lease_s=60)}
        assert (alert.id, "resolved") in events

    # after the resolution, the drift coming back is a new, delivered alert
    async with sessions() as s, s.begin():
        again = await db.record_breach(s, make_breach("q", 9), receivers=URLS, now=NOW)
        assert again is not None
        assert not again.suppressed

    # a below-target alert resolves once the 24 h accuracy is back at the target
    async with sessions() as s, s.begin():
        target = make_breach("t", 0, rule="accuracy_24h_below_target")
        target = target.model_copy(update={"kind": BreachKind.BELOW_TARGET})
        assert await db.record_breach(s, target, receivers=[], now=NOW) is not None
    async with sessions() as s, s.begin():
        low = make_snapshot("t", 1, []).model_copy(update={"accuracy_24h": 0.85})
        assert await db.resolve_recovered(s, low, receivers=[], now=NOW, target=0.9) == []
    # ... and the next day's breach (the scorer's rule, once a UTC day: a new dedup key)
    # while it is open is the same alert, not a second one: it keeps its first breach (its
    # labels: what Alertmanager knows it by) and counts the next
    next_day = make_breach("t", 24, rule="accuracy_24h_below_target").model_copy(
        update={"kind": BreachKind.BELOW_TARGET, "message": "day two", "site": "manila"}
    )
    async with sessions() as s, s.begin():
        assert await db.record_breach(s, next_day, receivers=URLS, now=NOW) is None
        assert await db.record_breach(s, next_day, receivers=URLS, now=NOW) is None  # a copy
        open_ = await db.firing_alerts(s, "t")
        assert [(a.rule, a.occurrences, a.message, db.site_of(a)) for a in open_] == [
            ("accuracy_24h_below_target", 2, "m", None)
        ]
        # ... and the incident's trail has the day's figures, once (not the copy's)
        assert open_[0].incident_id is not None
        detail = await db.incident_detail(s, open_[0].incident_id)
        assert detail is not None
        noted = [e.note for e in detail[2] if e.note and "again: day two" in e.note]
        assert noted == ["accuracy_24h_below_target (warning) again: day two"]
    async with sessions() as s, s.begin():
        back = make_snapshot("t", 1, []).model_copy(update={"accuracy_24h": 0.93})
        done = await db.resolve_recovered(s, back, receivers=[], now=NOW, target=0.9)
        assert [a.rule for a in done] == ["accuracy_24h_below_target"]
    async with sessions() as s, s.begin():
        # the second day's breach re-sent after the alert resolved (a consumer re-reading
        # its topic after a crash) is still known: no new alert
        assert await db.record_breach(s, next_day, receivers=URLS, now=NOW) is None
        assert await db.firing_alerts(s, "t") == []
    # once resolved, the queue falling under its target again is a new alert
    async with sessions() as s, s.begin():
        day_three = make_breach("t", 48, rule="accuracy_24h_below_target").model_copy(
            update={"kind": BreachKind.BELOW_TARGET}
        )
        assert await db.record_breach(s, day_three, receivers=[], now=NOW) is not None

    # acknowledge
    async with sessions() as s, s.begin():
        acked = await db.acknowledge(s, other.id)
        assert acked is not None
        assert acked.status == "acknowledged"
        assert await db.acknowledge(s, 10_000) is None


def _critical(queue: str, hour: int) -> Breach:
    b = make_breach(queue, hour, rule="accuracy_24h_below_target")
    return b.model_copy(update={"kind": BreachKind.BELOW_TARGET, "severity": "critical"})


async def run_incident_cases(sessions: async_sessionmaker[AsyncSession]) -> None:
    """One incident per queue holds every signal; only an escalation notifies again; the
    incident resolves with its last signal, or by hand, and the trail says who did what."""
    # the first signal opens an incident and notifies
    async with sessions() as s, s.begin():
        first = await db.record_breach(s, make_breach("i", 0), receivers=URLS, now=NOW)
        assert first is not None
        assert first.incident_id is not None
        assert not first.suppressed
        incident_id = first.incident_id
    # other detectors on the same queue join it without a page: one incident, not a storm
    async with sessions() as s, s.begin():
        ewma = await db.record_breach(s, make_breach("i", 0, rule="ewma_ucl"), receivers=URLS,
                                      now=NOW + timedelta(minutes=1))  # fmt: skip
        cusum = await db.record_breach(s, make_breach("i", 1, rule="cusum_upper"),
                                       receivers=URLS, now=NOW + timedelta(minutes=2))  # fmt: skip
        assert ewma is not None
        assert cusum is not None
        assert ewma.incident_id == cusum.incident_id == incident_id
        assert ewma.suppressed
        assert cusum.suppressed
    # a critical signal escalates it: that one pages
    async with sessions() as s, s.begin():
        crit = await db.record_breach(s, _critical("i", 1), receivers=URLS,
                                      now=NOW + timedelta(minutes=3))  # fmt: skip
        assert crit is not None
        assert crit.incident_id == incident_id
        assert not crit.suppressed
    async with sessions() as s, s.begin():
        incident, alerts, trail = await _detail(s, incident_id)
        assert incident.severity == "critical"
        assert incident.rules == ["p_chart_ucl", "ewma_ucl", "cusum_upper",
                                  "accuracy_24h_below_target"]  # fmt: skip
        assert incident.signals == 4 == len(alerts)
        assert [e.action for e in trail] == ["opened", "signal", "signal", "escalated"]
        firing = [d for d in await db.due_deliveries(s, NOW + timedelta(hours=1), limit=500)
                  if d.event == "firing" and d.alert_id in {a.id for a in alerts}]  # fmt: skip
        assert sorted((d.alert_id, d.receiver) for d in firing) == sorted(
            (a, u) for a in (first.id, crit.id) for u in URLS
        )
        body = codec.loads(next(d.body for d in firing if d.alert_id == crit.id) or b"")
        assert body["incident"]["id"] == incident_id
        assert body["incident"]["severity"] == "critical"
        # another queue has its own incident
        other = await db.record_breach(s, make_breach("j", 0), receivers=[], now=NOW)
        assert other is not None
        assert other.incident_id not in (None, incident_id)

    # the SPC signals recover; the below-target one still holds the incident open
    spc_back = make_snapshot("i", 5, [], streak=3).model_copy(update={"accuracy_24h": 0.85})
    async with sessions() as s, s.begin():
        done = await db.resolve_recovered(s, spc_back, receivers=URLS, now=NOW + timedelta(hours=5))
        assert sorted(a.rule for a in done) == ["cusum_upper", "ewma_ucl", "p_chart_ucl"]
        incident, _, _ = await _detail(s, incident_id)
        assert incident.status == "firing"
        mine = {a.id for a in (await _detail(s, incident_id))[1]}
        assert not [d for d in await db.due_deliveries(s, NOW + timedelta(hours=6), limit=500)
                    if d.event == "resolved" and d.alert_id in mine]  # fmt: skip
    # an acknowledgement names who; a second one keeps the note only
    async with sessions() as s, s.begin():
        acked = await db.acknowledge_incident(s, incident_id, actor="key 0000abcd (oncall)",
                                              note="looking", now=NOW + timedelta(hours=5))  # fmt: skip
        assert acked is not None
        assert acked.status == "acknowledged"
        again = await db.acknowledge_incident(s, incident_id, actor="anonymous", note=None,
                                              now=NOW + timedelta(hours=6))  # fmt: skip
        assert again is not None
        assert again.acknowledged_by == "key 0000abcd (oncall)"
        assert await db.acknowledge_incident(s, 10**12, actor="x", note=None, now=NOW) is None
    # accuracy back at the target: the last signal recovers, the incident resolves by itself
    back = make_snapshot("i", 6, [], streak=4).model_copy(update={"accuracy_24h": 0.95})
    async with sessions() as s, s.begin():
        done = await db.resolve_recovered(s, back, receivers=URLS, now=NOW + timedelta(hours=7))
        assert [a.rule for a in done] == ["accuracy_24h_below_target"]
    async with sessions() as s, s.begin():
        incident, _, trail = await _detail(s, incident_id)
        assert (incident.status, incident.resolved_by) == ("resolved", "system")
        assert [e.action for e in trail][-2:] == ["acknowledged", "resolved"]
        resolved = [d for d in await db.due_deliveries(s, NOW + timedelta(hours=8), limit=500)
                    if d.event == "resolved" and d.alert_id in mine]  # fmt: skip
        # "resolved" once per receiver for each alert that paged, none for the others
        assert sorted((d.alert_id, d.receiver) for d in resolved) == sorted(
            (a, u) for a in (first.id, crit.id) for u in URLS
        )
        with contextlib.suppress(db.IncidentClosedError):
            await db.acknowledge_incident(s, incident_id, actor="x", note=None, now=NOW)
            raise AssertionError("acknowledging a resolved incident must refuse")
        # a note after the fact is welcome (a post-mortem line)
        note = await db.annotate_incident(s, incident_id, actor="anonymous", note="root cause: "
                                          "policy hate.v3 rollout", now=NOW + timedelta(hours=9))  # fmt: skip
        assert note is not None
        assert note.action == "note"
    # the drift coming back later opens a new incident, which pages
    async with sessions() as s, s.begin():
        later = await db.record_breach(s, make_breach("i", 20), receivers=URLS,
                                       now=NOW + timedelta(hours=20))  # fmt: skip
        assert later is not None
        assert later.incident_id not in (None, incident_id)
        assert not later.suppressed
        assert later.incident_id is not None
        # resolved by hand: its open signals too, with the "resolved" webhooks, once
        closed = await db.resolve_incident(s, later.incident_id, actor="anonymous",
                                           note="migration done", receivers=URLS,
                                           now=NOW + timedelta(hours=21))  # fmt: skip
        assert closed is not None
        assert closed.resolved_by == "anonymous"
    async with sessions() as s, s.begin():
        assert later.incident_id is not None
        incident, alerts, trail = await _detail(s, later.incident_id)
        assert [a.status for a in alerts] == ["resolved"]
        assert (trail[-1].action, trail[-1].note) == ("resolved", "migration done")
        with contextlib.suppress(db.IncidentClosedError):
            await db.resolve_incident(s, later.incident_id, actor="x", note=None, receivers=URLS,
                                      now=NOW)  # fmt: skip
            raise AssertionError("resolving twice must refuse")
        assert await db.resolve_incident(s, 10**12, actor="x", note=None, receivers=[],
                                         now=NOW) is None  # fmt: skip
        listed = await db.incidents(s, status="open")
        assert "j" in {i.queue_id for i in listed}
        assert "i" not in {i.queue_id for i in listed}
        assert [i.id for i in await db.incidents(s, queue_id="i")] == sorted(
            (incident_id, later.incident_id), reverse=True
        )
        assert [i.id for i in await db.incidents(s, queue_id="i", before=later.incident_id)] == [
            incident_id
        ]


async def _detail(
    s: AsyncSession, incident_id: int
) -> tuple[db.Incident, list[db.Alert], list[db.IncidentEvent]]:
    found = await db.incident_detail(s, incident_id)
    assert found is not None
    return found
