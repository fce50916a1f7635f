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
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.demo.orchestrator import Services, local_kafka
from services.ingest.validation import validate_items
from services.scorer.app import SEND_MAX_BYTES
from shared import batches, codec
from shared.kafka import ensure_topics, group_progress, make_producer
from shared.settings import KafkaSettings
from shared.topics import partition_of, queue_key
from tests.factories import T0, decision, longest_decisions, verdict
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
        # "q" and "p" are on different partitions (asserted below)
        poisoned = await send(ev, batch("q", ["a1", FAULT_ID.removeprefix("d")]), key=b"q")
        await send(ev, batch("q", ["a2", "a3"]), key=b"q")
        other = await send(ev, batch("p", ["b1"]), key=b"p")
        assert other.partition != poisoned.partition
        last: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            last.get("q", {}).get("decisions_total") == 2 and "p" in last
        ):
            for _, snap in await read_topic(
                kafka_settings.bootstrap, topics.snapshots, expect=10**6, timeout=2
            ):
                last[snap["queue_id"]] = snap
            assert proc.poll() is None, log_path.read_text()[-3000:]
        assert last.get("q", {}).get("decisions_total") == 2, log_path.read_text()[-3000:]
        assert last["q"]["failed_batches"] == 1
        assert last["p"]["decisions_total"] == 1
        await asyncio.sleep(3)  # a loop would have dead-lettered it hundreds of times by now
        dead = [
            v
            for _, v in await read_topic(
                kafka_settings.bootstrap, topics.deadletter, expect=10**6, timeout=3
            )
        ]
        assert [(d["partition"], d["offset"]) for d in dead] == [
            (poisoned.partition, poisoned.offset)
        ], dead
        assert "injected fault" in dead[0]["reason"]
    finally:
        await producer.stop()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _latest_snapshots(
    kafka: KafkaSettings, services: Services, until: Any, timeout: float = 120
) -> dict[str, dict[str, Any]]:
    """Each queue's latest snapshot, read until ``until(latest)`` holds (or the timeout)."""
    last: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(last):
        for _, snap in await read_topic(
            kafka.bootstrap, kafka.topics.snapshots, expect=10**6, timeout=2
        ):
            last[snap["queue_id"]] = snap
        services.check()
    return last


async def _changelog_config(kafka: KafkaSettings, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        names = {"min.insync.replicas": None, "max.message.bytes": None}
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=names)]
        )
    finally:
        await admin.close()
    (resource,) = response.to_object()["resources"]
    return {e["config_names"]: e["config_value"] for e in resource["config_entries"]}


async def test_poison_input_stops_no_queue_and_state_records_stay_small(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """A new user's trial, through the real worker: 2,000 decisions with every id at its
    longest in one batch made a 1.39 MB changelog record; the worker died on
    MessageSizeTooLargeError and again after every restart. Now the batch is counted, in
    records of at most 256 KiB, and the worker lives on through a restart. With it, what a
    producer writing to the events topic directly could send: more than 2,000 decisions in
    a batch (dead-lettered whole), a batch under another queue's key (it would be scored
    into a second state of its queue on another partition, lost after a restart: now
    dead-lettered whole, counted nowhere) and an event dated 1969 (refused alone)."""
    await ensure_topics(kafka_settings)
    topics = kafka_settings.topics

    def batch_of(items: list[dict[str, Any]]) -> batches.EventBatch:
        (b,) = batches.group_by_queue(validate_items(items, None).events)
        return b

    trial = batch_of(longest_decisions("bigq"))
    assert len(batches.encode(trial)) > 1_000_000
    over = batch_of([decision(f"o{i}", "bigq") for i in range(2000)])
    over["decisions"].append({**over["decisions"][0], "decision_id": "o2000"})
    misrouted = batch_of([decision(f"m{i}", "lostq") for i in range(30)])
    # right key, but a partition the producer chose itself: not the one its key goes to
    astray = batch_of([decision(f"a{i}", "strayq") for i in range(30)])
    astray_to = (partition_of(b"strayq", kafka_settings.partitions) + 1) % kafka_settings.partitions
    old = batch_of([decision("new", "bigq", T0 + timedelta(hours=1))])
    old["decisions"].append({**old["decisions"][0], "decision_id": "old", "decided_at": -3600})

    services = Services(scorer_env(kafka_settings, tmp_path), tmp_path / "logs")
    services.start("scorer")
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        send = producer.send_and_wait
        await send(topics.events, batches.encode(trial), key=queue_key("bigq"))
        await send(topics.events, codec.dumps(over), key=queue_key("bigq"))
        await send(topics.events, batches.encode(misrouted), key=b"elsewhere")
        await send(
            topics.events, batches.encode(astray), key=queue_key("strayq"), partition=astray_to
        )
        await send(topics.events, codec.dumps(old), key=queue_key("bigq"))

        def counted(n: int) -> Any:
            return lambda last: last.get("bigq", {}).get("decisions_total") == n

        last = await _latest_snapshots(kafka_settings, services, counted(2001))
        assert last.get("bigq", {}).get("decisions_total") == 2001, (
            last.get("bigq"),
            (tmp_path / "logs/scorer.log").read_text()[-3000:],
        )
        assert last["bigq"]["rejected_items"] == 1
        assert "lostq" not in last
        assert "strayq" not in last
        dead = {
            v["offset"]: v["reason"]
            for _, v in await read_topic(
                kafka_settings.bootstrap, topics.deadletter, expect=4, timeout=30
            )
        }
        reasons = sorted(dead.values())
        assert len(reasons) == 4, reasons
        assert any("EventBatch with 2001 decisions, more than 2000" in r for r in reasons)
        assert any("queue 'lostq' under key b'elsewhere', not b'lostq'" in r for r in reasons), (
            reasons
        )
        assert any("decided_at -3600 is before 2000-01-01T00:00:00Z" in r for r in reasons)
        assert any(
            f"queue 'strayq' on partition {astray_to}, but its key goes to partition" in r
            for r in reasons
        ), reasons

        # the changelog takes the durability settings and a record as large as any send
        changelog = f"{kafka_settings.topic_prefix}qw-scorer-state-changelog"
        config = await _changelog_config(kafka_settings, changelog)
        assert config["min.insync.replicas"] == str(kafka_settings.min_insync_replicas)
        assert config["max.message.bytes"] == str(SEND_MAX_BYTES)

        # a restart replays from the committed offset and the worker carries on
        assert services.end("scorer") == 0
        services.start("scorer")
        more = batch_of([decision("after", "bigq", T0 + timedelta(hours=2))])
        await send(topics.events, batches.encode(more), key=queue_key("bigq"))
        last = await _latest_snapshots(kafka_settings, services, counted(2002))
        assert last["bigq"]["decisions_total"] == 2002, last.get("bigq")
    finally:
        await producer.stop()
        services.stop()


def log_lines(tmp_path: Path, n: int) -> list[str]:
    text = (tmp_path / f"logs-{n}" / "scorer.log").read_text()
    return [ln for ln in text.splitlines() if " INFO services.scorer.app: " in ln]


async def test_state_is_kept_per_cluster_and_consumer_group(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """A worker pointed at another topic prefix with the same QW_SCORER_DATA_DIR starts from
    that prefix's changelog, not from the tables the first one left there. (They were one
    folder: the second worker crashed in recovery, its changelog's end below the offset the
    first had persisted; a changelog long enough would have been replayed onto the first's
    state instead.)"""
    second = local_kafka(
        bootstrap=kafka_settings.bootstrap,
        topic_prefix=kafka_settings.topic_prefix + "again-",
        partitions=kafka_settings.partitions,
    )
    for kafka, n in ((kafka_settings, 30), (second, 10)):
        await ensure_topics(kafka)
        items = [decision(f"{n}-{i}", "q", T0 + timedelta(minutes=i)) for i in range(n)]
        (batch,) = batches.group_by_queue(validate_items(items, None).events)
        services = Services(scorer_env(kafka, tmp_path), tmp_path / f"logs-{n}")
        services.start("scorer")
        producer = make_producer(kafka)
        await producer.start()
        try:
            await producer.send_and_wait(
                kafka.topics.events, batches.encode(batch), key=queue_key("q")
            )
            snaps = await read_topic(kafka.bootstrap, kafka.topics.snapshots, expect=1, timeout=60)
            services.check()
            log = (tmp_path / f"logs-{n}" / "scorer.log").read_text()
            assert snaps, f"no snapshot within 60 s; scorer log:\n{log[-3000:]}"
            assert snaps[-1][1]["decisions_total"] == n
        finally:
            await producer.stop()
            services.stop()
        # (and it says when SIGTERM stops it, and once it has: as ingest and alerts do)
        said = [ln.split(" INFO services.scorer.app: ", 1)[-1] for ln in log_lines(tmp_path, n)]
        assert said[-2:] == [
            "SIGTERM received: stopping (what is in hand is finished first)",
            "stopped",
        ], said[-6:]
    groups = sorted(p.name for p in (tmp_path / "scorer").glob("cluster-*/*"))
    assert groups == sorted(k.topic_prefix + "qw-scorer" for k in (kafka_settings, second))


async def test_a_quiet_worker_commits_its_offsets_without_waiting_for_the_interval(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """The commit interval (QW_SCORER_COMMIT_INTERVAL_S) paces commits while messages flow;
    a burst's last offsets waited for it with nothing left to do (up to 2.8 s by default,
    what a crash then reads again). A worker quiet for QUIET_COMMIT_S commits at once: here
    with an interval of 60 s, the offsets of a burst are committed within seconds."""
    await ensure_topics(kafka_settings)
    topics = kafka_settings.topics
    env = {**scorer_env(kafka_settings, tmp_path), "QW_SCORER_COMMIT_INTERVAL_S": "60"}
    services = Services(env, tmp_path / "logs")
    services.start("scorer")
    producer = make_producer(kafka_settings)
    await producer.start()
    group = kafka_settings.topic_prefix + "qw-scorer"
    try:
        # the worker ready (its first snapshot), then a burst
        items = [decision(f"w{i}", "q", T0 + timedelta(seconds=i)) for i in range(5)]
        for b in batches.group_by_queue(validate_items(items, None).events):
            await producer.send_and_wait(topics.events, batches.encode(b), key=queue_key("q"))
        await read_topic(kafka_settings.bootstrap, topics.snapshots, expect=1, timeout=90)
        items = [decision(f"b{i}", "q", T0 + timedelta(minutes=i)) for i in range(300)]
        for i in range(0, len(items), 30):
            events = validate_items(items[i : i + 30], None).events
            for b in batches.group_by_queue(events):
                await producer.send_and_wait(topics.events, batches.encode(b), key=queue_key("q"))
        sent = time.monotonic()
        while True:
            done, end = await group_progress(kafka_settings, group, topics.events)
            if done == end:
                break
            services.check()
            assert time.monotonic() - sent < 20, f"committed {done} of {end} after 20 s"
            await asyncio.sleep(0.2)
    finally:
        await producer.stop()
        services.stop()
