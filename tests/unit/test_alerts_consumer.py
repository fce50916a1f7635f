"""The alerts consumer's poll handling: SQL, metrics and alert lifecycle (SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.consumer import AlertsConsumer
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from shared import codec, deadletter
from shared.settings import KafkaSettings
from tests.alerts_cases import make_breach, make_point, make_snapshot, sqlite_sessions

SETTINGS = AlertsSettings(
    kafka=KafkaSettings(),
    webhook_urls=["http://127.0.0.1:1/hook"],
    webhook_allow_private_networks=True,
)
TOPICS = SETTINGS.kafka.topics
SNAP, BREACH, SUBGROUPS = TOPICS.snapshots, TOPICS.breaches, TOPICS.subgroups


def rec(
    topic: str, value: bytes | None, offset: int = 0, partition: int = 0
) -> ConsumerRecord[bytes, bytes]:
    size = -1 if value is None else len(value)
    return ConsumerRecord(topic, partition, offset, 0, 0, b"q", value, None, 1, size, [])


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with sqlite_sessions(tmp_path) as sessions:
        yield sessions


async def test_breach_fires_then_resolves_after_quiet_subgroups(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    m = Metrics.create(CollectorRegistry())
    consumer = AlertsConsumer(SETTINGS, sessions, m)

    def gauge(name: str, **labels: str) -> float | None:
        return m.registry.get_sample_value(name, labels)

    await consumer.handle(
        [
            rec(SNAP, codec.dumps(make_snapshot("q", 0, ["p_chart_ucl"]))),
            rec(BREACH, codec.dumps(make_breach("q", 0))),
            rec(BREACH, codec.dumps(make_breach("q", 0)), 1),  # a replay: same dedup key
            rec(BREACH, b"{not json", 2),  # logged, never fatal
        ]
    )
    assert gauge("qw_alerts_firing", queue="q", rule="p_chart_ucl") == 1
    assert gauge("qw_breaches_total", queue="q", rule="p_chart_ucl", severity="warning") == 2
    assert gauge("qw_queue_accuracy", queue="q", window="24h") == pytest.approx(0.9)
    assert gauge("qw_queue_pchart_ucl", queue="q") == pytest.approx(0.12)
    async with sessions() as s:
        assert len(await db.firing_alerts(s, "q")) == 1
        assert len(await db.due_deliveries(s, datetime.now(UTC))) == 1

    # one quiet subgroup is not recovery; three are
    await consumer.handle([rec(SNAP, codec.dumps(make_snapshot("q", 1, [], streak=1)))])
    assert gauge("qw_alerts_firing", queue="q", rule="p_chart_ucl") == 1
    await consumer.handle([rec(SNAP, codec.dumps(make_snapshot("q", 3, [], streak=3)))])
    assert gauge("qw_alerts_firing", queue="q", rule="p_chart_ucl") == 0
    async with sessions() as s:
        assert await db.firing_alerts(s, "q") == []
    assert gauge("qw_events_consumed_total", topic=SNAP) == 3


def _point(queue: str, hour: int, revision: int = 0, **kw: Any) -> bytes:
    return codec.dumps(make_point(queue, hour, revision, **kw))


def _malformed(**kw: Any) -> bytes:
    data = make_point("q", 9).model_dump(mode="json")
    data.update(kw)
    return codec.dumps(data)


async def test_subgroups_are_stored_at_their_newest_revision_and_bad_ones_counted(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    m = Metrics.create(CollectorRegistry())
    consumer = AlertsConsumer(SETTINGS, sessions, m)
    assert m.registry.get_sample_value("qw_events_malformed_total", {"topic": SUBGROUPS}) == 0
    bad = [
        b"{not json",
        None,  # a tombstone on the compacted topic
        codec.dumps({"queue_id": "q"}),  # fields missing
        _malformed(queue_id="a|b"),  # outside the queue-id grammar: unreachable by the API
        _malformed(queue_id="q" * 300),
        _malformed(start="2026-11-02T09:00:00"),  # no time zone
        _malformed(revision=2**40),
        _malformed(revision=-1),
    ]
    await consumer.handle(
        [rec(SUBGROUPS, _point("q", 0)), rec(SUBGROUPS, _point("q", 1, 2), 1)]
        + [rec(SUBGROUPS, value, 2 + i) for i, value in enumerate(bad)]
        + [rec(SUBGROUPS, _point("q", 1, 1), 20)]  # older, after the newer: ignored
    )
    await consumer.handle([rec(SUBGROUPS, _point("q", 1, 1), 21)])  # and in a later poll
    async with sessions() as s:
        got = await db.subgroups(s, "q")
    assert [(p.start.hour, p.revision) for p in got] == [(12, 0), (13, 2)]
    assert m.registry.get_sample_value("qw_events_malformed_total", {"topic": SUBGROUPS}) == len(
        bad
    )
    assert m.registry.get_sample_value("qw_events_consumed_total", {"topic": SUBGROUPS}) == 12


async def test_a_revision_with_a_signal_never_fires_an_alert(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    m = Metrics.create(CollectorRegistry())
    consumer = AlertsConsumer(SETTINGS, sessions, m)
    await consumer.handle([rec(SUBGROUPS, _point("q", 0, 0))])
    await consumer.handle(
        [rec(SUBGROUPS, _point("q", 0, 1, errors=40, signals=["p_chart_ucl", "ewma_ucl"]), 1)]
    )
    async with sessions() as s:
        assert await db.firing_alerts(s) == []
        assert await db.recent_alerts(s) == []
        assert await db.due_deliveries(s, datetime.now(UTC)) == []
        (point,) = await db.subgroups(s, "q")
    assert (point.revision, point.signals) == (1, ["p_chart_ucl", "ewma_ucl"])
    assert (
        m.registry.get_sample_value("qw_alerts_firing", {"queue": "q", "rule": "p_chart_ucl"})
        is None
    )


async def test_late_verdicts_are_exported_per_queue(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    m = Metrics.create(CollectorRegistry())
    snap = make_snapshot("q", 0, []).model_copy(
        update={"late_verdicts_total": 7, "failed_batches": 2}
    )
    await AlertsConsumer(SETTINGS, sessions, m).handle([rec(SNAP, codec.dumps(snap))])
    assert m.registry.get_sample_value("qw_queue_late_verdicts", {"queue": "q"}) == 7
    assert m.registry.get_sample_value("qw_queue_failed_batches", {"queue": "q"}) == 2


async def test_a_replica_drops_the_gauges_of_queues_whose_snapshot_partition_it_lost(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    m = Metrics.create(CollectorRegistry())
    consumer = AlertsConsumer(SETTINGS, sessions, m)

    def exported(queue: str) -> bool:
        series = {s.labels.get("queue") for f in m.registry.collect() for s in f.samples}
        return queue in series

    consumer.partitions_assigned({TopicPartition(SNAP, 0), TopicPartition(SNAP, 1)})
    await consumer.handle(
        [rec(SNAP, codec.dumps(make_snapshot("q", 0, [])), 0, partition=0),
         rec(SNAP, codec.dumps(make_snapshot("r", 0, [])), 0, partition=1)]
    )  # fmt: skip
    assert exported("q")
    assert exported("r")
    # a rebalance leaves this replica partition 1 of the snapshots (and a breaches partition)
    consumer.partitions_assigned({TopicPartition(SNAP, 1), TopicPartition(BREACH, 0)})
    assert not exported("q")  # the new owner exports it; a stale copy here would page
    assert m.registry.get_sample_value("qw_queue_last_snapshot_timestamp_seconds", {"queue": "r"})
    # a poll read before the rebalance and finishing after it exports nothing of q
    await consumer.handle([rec(SNAP, codec.dumps(make_snapshot("q", 1, [])), 1, partition=0)])
    assert not exported("q")
    async with sessions() as s:  # but it is stored: the health API still answers for q
        assert await db.snapshot(s, "q") is not None


async def test_firing_gauges_follow_alerts_another_replica_raised_and_resolved(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    idle = AlertsConsumer(SETTINGS, sessions, m := Metrics.create(CollectorRegistry()))
    busy = AlertsConsumer(SETTINGS, sessions, Metrics.create(CollectorRegistry()))

    def firing() -> float | None:
        return m.registry.get_sample_value(
            "qw_alerts_firing", {"queue": "q", "rule": "p_chart_ucl"}
        )

    await busy.handle([rec(BREACH, codec.dumps(make_breach("q", 0)))])
    assert firing() is None  # the idle replica polled nothing
    await idle.refresh_firing()
    assert firing() == 1
    await busy.handle([rec(SNAP, codec.dumps(make_snapshot("q", 3, [], streak=3)), 1)])
    await idle.refresh_firing()
    assert firing() == 0


async def test_every_dead_letter_is_counted_by_stage_and_kind(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Refusals no queue can be named for (the scorer's undecodable batch) are counted too."""
    m = Metrics.create(CollectorRegistry())
    consumer = AlertsConsumer(SETTINGS, sessions, m)

    def count(stage: str, kind: str) -> float | None:
        return m.registry.get_sample_value("qw_deadletters_total", {"stage": stage, "kind": kind})

    assert count("ingest", "queue_not_admitted") == 0
    assert count("scorer", "refused") == 0
    letters = [
        deadletter.record(stage="scorer", reason="EventBatch: not JSON", value=b"{",
                          source_topic=TOPICS.events),
        deadletter.record(stage="ingest", reason="queue 'x' is not admitted", value=b"{}",
                          source_topic=None, errors=[{"type": "queue_not_admitted"}]),
        deadletter.record(stage="ingest", reason="decided_at ... before 2000", value=b"{}",
                          source_topic=TOPICS.decisions_raw, errors=[{"type": "past_timestamp"}]),
        deadletter.record(stage="ingest", reason="outcome: ...", value=b"{}",
                          source_topic=TOPICS.verdicts_raw, errors=[{"type": "enum"}]),
        b"not a dead letter at all",
    ]  # fmt: skip
    await consumer.handle([rec(TOPICS.deadletter, v, i) for i, v in enumerate(letters)])
    assert count("scorer", "refused") == 1
    assert count("ingest", "queue_not_admitted") == 1
    assert count("ingest", "past_timestamp") == 1
    assert count("ingest", "invalid") == 1
    assert count("other", "invalid") == 1
    assert deadletter.classify(None) == ("other", "invalid")
