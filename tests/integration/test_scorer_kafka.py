"""The Faust scorer as a real worker process against a real broker."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
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
from tests.integration.faulty_scorer import FAULT_ID
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


def start_faulty_scorer(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """The real worker with an injected bug (``faulty_scorer.py``), logging to ``log_path``."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.faulty_scorer"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


async def test_a_batch_that_raises_is_dead_lettered_once_and_skipped(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Any exception while scoring one batch: the batch goes to the dead-letter topic once,
    counts in ``failed_batches``, and the batches after it (same partition, same queue;
    another partition) are scored. (It used to be retried and dead-lettered forever.)"""
    await ensure_topics(kafka_settings)
    topics = kafka_settings.topics
    env = {**os.environ, **scorer_env(kafka_settings, tmp_path)}
    log_path = tmp_path / "scorer.log"

    def batch(queue: str, ids: list[str]) -> bytes:
        items = [decision(i, queue, T0 + timedelta(minutes=k)) for k, i in enumerate(ids)]
        (b,) = batches.group_by_queue(validate_items(items, None).events)
        return batches.encode(b)

    producer = make_producer(kafka_settings)
    await producer.start()
    proc = start_faulty_scorer(env, log_path)
    try:
        send = producer.send_and_wait
        ev = topics.events
        poisoned = await send(
            ev, batch("q", ["a1", FAULT_ID.removeprefix("d")]), key=b"q", partition=0
        )
        await send(ev, batch("q", ["a2", "a3"]), key=b"q", partition=0)
        await send(ev, batch("r", ["b1"]), key=b"r", partition=1)
        last: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            last.get("q", {}).get("decisions_total") == 2 and "r" in last
        ):
            for _, snap in await read_topic(
                kafka_settings.bootstrap, topics.snapshots, expect=10**6, timeout=2
            ):
                last[snap["queue_id"]] = snap
            assert proc.poll() is None, log_path.read_text()[-3000:]
        assert last.get("q", {}).get("decisions_total") == 2, log_path.read_text()[-3000:]
        assert last["q"]["failed_batches"] == 1
        assert last["r"]["decisions_total"] == 1
        await asyncio.sleep(3)  # a loop would have dead-lettered it hundreds of times by now
        dead = [
            v
            for _, v in await read_topic(
                kafka_settings.bootstrap, topics.deadletter, expect=10**6, timeout=3
            )
        ]
        assert [(d["partition"], d["offset"]) for d in dead] == [(0, poisoned.offset)], dead
        assert "injected fault" in dead[0]["reason"]
    finally:
        await producer.stop()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
