"""The alerts consumer's poll handling: SQL, metrics and alert lifecycle (SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.consumer import AlertsConsumer
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from shared import codec
from shared.settings import KafkaSettings
from tests.alerts_cases import make_breach, make_snapshot

SETTINGS = AlertsSettings(kafka=KafkaSettings(), webhook_urls=["http://127.0.0.1:1/hook"])
SNAP, BREACH = SETTINGS.kafka.topics.snapshots, SETTINGS.kafka.topics.breaches


def rec(topic: str, value: bytes, offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, offset, 0, 0, b"q", value, None, 1, len(value), [])


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    await db.create_schema(engine)
    yield db.make_sessionmaker(engine)
    await engine.dispose()


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
