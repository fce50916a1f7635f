"""Behavioural cases for the alerts repository, run against every database backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from shared.events import Breach, BreachKind, ChartPoint, QualitySnapshot

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

    # the same dedup key again: no new alert, no new delivery
    async with sessions() as s, s.begin():
        assert await db.record_breach(s, make_breach("q", 0), receivers=URLS, now=NOW) is None
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
        back = make_snapshot("t", 1, []).model_copy(update={"accuracy_24h": 0.93})
        done = await db.resolve_recovered(s, back, receivers=[], now=NOW, target=0.9)
        assert [a.rule for a in done] == ["accuracy_24h_below_target"]

    # acknowledge
    async with sessions() as s, s.begin():
        acked = await db.acknowledge(s, other.id)
        assert acked is not None
        assert acked.status == "acknowledged"
        assert await db.acknowledge(s, 10_000) is None
