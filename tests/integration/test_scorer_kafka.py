"""The Faust scorer as a real worker process against a real broker."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest

from services.demo.orchestrator import Services
from services.ingest.validation import validate_items
from shared import batches
from shared.kafka import ensure_topics, make_producer
from shared.settings import KafkaSettings
from shared.topics import queue_key
from tests.factories import T0, decision, verdict
from tests.integration.kafka_helpers import read_topic

pytestmark = pytest.mark.kafka


def scorer_env(kafka: KafkaSettings, tmp: Path) -> dict[str, str]:
    return {
        **kafka.as_env(),
        "QW_SCORER_DATA_DIR": str(tmp / "scorer"),
        "QW_SCORER_BASELINE_P": '{"q": 0.05}',
        "QW_SCORER_GRACE_SECONDS": "0",
        "QW_SCORER_SNAPSHOT_INTERVAL_S": "0",
    }


async def test_scorer_consumes_batches_and_produces_breaches(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await ensure_topics(kafka_settings)
    topics = kafka_settings.topics
    rng = random.Random(1)
    items = []
    for hour, rate in ((0, 0.05), (1, 0.05), (2, 0.40), (3, 0.05)):
        for i in range(100):
            at = T0 + timedelta(hours=hour, seconds=i * 30)
            items.append(decision(f"{hour}-{i}", "q", at))
            items.append(
                verdict(f"{hour}-{i}", "q", at + timedelta(minutes=5), rng.random() >= rate)
            )
    items.append(decision("late", "q", T0 + timedelta(hours=6)))  # moves the watermark on
    events = validate_items(items, None).events
    assert len(events) == len(items)

    services = Services(scorer_env(kafka_settings, tmp_path), tmp_path / "logs")
    services.start("scorer")
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        await producer.send_and_wait(topics.events, b"not a batch", key=b"q")
        for b in batches.group_by_queue(events):
            await producer.send_and_wait(topics.events, batches.encode(b), key=queue_key("q"))
        found = await read_topic(kafka_settings.bootstrap, topics.breaches, expect=1, timeout=90)
        services.check()
        assert found, (
            "no breach within 90 s; scorer log:\n"
            + (tmp_path / "logs/scorer.log").read_text()[-3000:]
        )
        breach = found[0][1]
        assert breach["queue_id"] == "q"
        assert breach["rule"] in {"p_chart_ucl", "ewma_ucl"}
        assert breach["subgroup_start"].startswith("2026-11-02T02:00")

        snaps = await read_topic(kafka_settings.bootstrap, topics.snapshots, expect=1, timeout=30)
        last = snaps[-1][1]
        assert last["queue_id"] == "q"
        assert last["baseline_p"] == 0.05
        assert last["decisions_total"] >= 1

        dlq = await read_topic(kafka_settings.bootstrap, topics.deadletter, expect=1, timeout=30)
        assert dlq[0][1]["stage"] == "scorer"
        assert "EventBatch" in dlq[0][1]["reason"] or "JSON" in dlq[0][1]["reason"]
    finally:
        await producer.stop()
        services.stop()
