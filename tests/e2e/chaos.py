"""Shared by the scorer's fault tests: a generator of per-queue batches with known truth,
the expected output of the pure ``Scorer`` on them, and an exact comparison with what a
real worker published on the broker.

The generator makes what upsets a stream processor: duplicates, verdicts before their
decisions, decisions hours late, verdicts long after their subgroup closed (revisions),
and a baseline reset (a control record) of a stable queue in the middle of its input.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2

from services.scorer.core import Scorer
from services.scorer.settings import ScorerSettings
from shared import batches, control
from shared.batches import EventBatch
from shared.kafka import ensure_topics, group_progress, make_producer
from shared.settings import KafkaSettings
from shared.topics import queue_key
from tests.integration.kafka_helpers import read_topic

T0 = datetime(2026, 10, 1, tzinfo=UTC)
HOUR = 3600
GRACE = 2 * HOUR


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@dataclass
class Truth:
    decisions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    verdicts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # (queue, subgroup start) -> [random verdicts, errors, decisions]
    subgroups: dict[tuple[str, int], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0])
    )


Msg = EventBatch | control.BaselineReset  # a message of the events topic


def encode(msg: Msg) -> bytes:
    return control.encode(msg) if control.is_control(msg) else batches.encode(msg)  # type: ignore[arg-type]


def generate(
    queues: list[str], seed: int, hours: int, per_hour: int
) -> tuple[list[Msg], Truth, int]:
    """Batches in arrival order, the truth, and the number of events (with duplicates).
    The first queue drifts (error rate x3) half-way through; the last one (when there are
    several) has its baseline reset two fifths of the way."""
    rng = random.Random(seed)
    truth = Truth()
    arrivals: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
    for q in queues:
        base_error = rng.uniform(0.03, 0.08)
        for h in range(hours):
            error = base_error * (3 if q == queues[0] and h >= hours // 2 else 1)
            for i in range(per_hour):
                did = f"{q}-d{h}-{i}"
                at = T0 + timedelta(hours=h, seconds=rng.uniform(0, 3599))
                d = {
                    "kind": "decision", "decision_id": did, "content_id": f"c{h}-{i}",
                    "queue_id": q, "moderator_id": f"m{i % 40}", "site_id": f"s{i % 3}",
                    "policy_id": "p.v1", "action": "remove", "decided_at": _iso(at),
                    "severity": 2,
                }  # fmt: skip
                start = int(at.timestamp()) // HOUR * HOUR
                truth.decisions[q] += 1
                truth.subgroups[(q, start)][2] += 1
                # most decisions arrive at once; some late, after their verdict
                d_arrival = at.timestamp() + (
                    rng.uniform(2, 5) * HOUR if rng.random() < 0.03 else 0
                )
                arrivals[q].append((d_arrival, d))
                if rng.random() < 0.01:
                    arrivals[q].append((d_arrival + rng.uniform(0, HOUR), d))  # duplicate
                if rng.random() >= 0.6:
                    continue
                wrong = rng.random() < error
                sample = "random" if rng.random() < 0.9 else "targeted"
                lag = (
                    rng.uniform(0.2, 2.5) * HOUR
                    if rng.random() < 0.85
                    else rng.uniform(4, 9) * HOUR
                )
                v = {
                    "kind": "verdict", "verdict_id": f"{q}-v{h}-{i}", "decision_id": did,
                    "queue_id": q, "auditor_id": "a1", "reviewed_at": _iso(at + timedelta(seconds=lag)),
                    "outcome": "incorrect" if wrong else "correct",
                    "error_type": "under_enforcement" if wrong else None, "sample_type": sample,
                }  # fmt: skip
                truth.verdicts[q] += 1
                if sample == "random":
                    truth.subgroups[(q, start)][0] += 1
                    truth.subgroups[(q, start)][1] += wrong
                arrivals[q].append((at.timestamp() + lag, v))
                if rng.random() < 0.03:
                    arrivals[q].append((at.timestamp() + lag + rng.uniform(0, 2 * HOUR), v))
    # ingest's shape: one batch per queue per poll window of 20 simulated minutes
    out: list[Msg] = []
    n_events = 0
    windows: dict[int, list[EventBatch]] = defaultdict(list)
    for q, items in arrivals.items():
        items.sort(key=lambda x: x[0])
        by_window: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for t, item in items:
            by_window[int(t // 1200)].append(item)
        for w, events in by_window.items():
            n_events += len(events)
            for i in range(0, len(events), batches.MAX_EVENTS_PER_MESSAGE):
                part = events[i : i + batches.MAX_EVENTS_PER_MESSAGE]
                windows[w].append(
                    EventBatch(
                        v=1,
                        queue_id=q,
                        decisions=[e for e in part if e["kind"] == "decision"],
                        verdicts=[e for e in part if e["kind"] == "verdict"],
                    )
                )
    for w in sorted(windows):
        out.extend(windows[w])
    if len(queues) > 1:
        reset = control.baseline_reset(
            queues[-1], request_id=f"chaos-{seed}", reason="a policy change",
            actor="key 0000abcd (chaos)", requested_at=T0.timestamp(),
        )  # fmt: skip
        out.insert(len(out) * 2 // 5, reset)
    return out, truth, n_events


@dataclass
class Expected:
    """What the pure Scorer publishes for the batches in this order."""

    points: dict[tuple[str, str], dict[str, Any]]
    breaches: set[str]
    reference: Scorer
    baselines: set[tuple[str, int, str]] = field(default_factory=set)  # queue, epoch, event


def expected(settings: ScorerSettings, msgs: list[Msg]) -> Expected:
    reference = Scorer(settings, {})
    points: dict[tuple[str, str], dict[str, Any]] = {}
    breaches: set[str] = set()
    changes: set[tuple[str, int, str]] = set()
    for offset, b in enumerate(msgs):
        out = reference.process(b, time.time(), (0, offset))
        reference.commit(b["queue_id"])
        for p in out.points:
            points[(p.queue_id, p.start.isoformat().replace("+00:00", "Z"))] = p.model_dump(
                mode="json"
            )
        breaches |= {br.dedup_key for br in out.breaches}
        changes |= {(c.queue_id, c.epoch, c.event) for c in out.baselines}
    assert breaches, "the drifted queue must signal"
    if any(control.is_control(m) for m in msgs):
        assert any(event == "reset" for _, _, event in changes), "the reset must apply"
    assert any(":cusum_" in k for k in breaches), "the live CUSUMs must signal"
    assert any(p["revision"] > 0 for p in points.values()), "late verdicts must revise"
    return Expected(points, breaches, reference, changes)


async def produce(kafka: KafkaSettings, msgs: list[Msg]) -> None:
    """The backlog, on the events topic, keyed by queue as ingest (and, for a control
    record, the alerts service) keys it."""
    await ensure_topics(kafka)
    producer = make_producer(kafka, linger_ms=20)
    await producer.start()
    try:
        sent = [
            await producer.send(kafka.topics.events, encode(b), key=queue_key(b["queue_id"]))
            for b in msgs
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


BUDGET = 50.0  # false alarms a day for the one queue assumed: the live CUSUMs signal often


def scorer_env(kafka: KafkaSettings, data_dir: Path) -> dict[str, str]:
    return {
        **kafka.as_env(),
        "QW_SCORER_DATA_DIR": str(data_dir),
        "QW_SCORER_GRACE_SECONDS": str(GRACE),
        "QW_SCORER_PHASE1_SUBGROUPS": "12",
        "QW_SCORER_SNAPSHOT_INTERVAL_S": "0.5",
        # progress is seen, and a kill or an outage can come, every half second of work:
        # with Faust's 2.8 s a fast worker drains most of the backlog before its first commit
        "QW_SCORER_COMMIT_INTERVAL_S": "0.5",
        # a budget generous enough for the live CUSUMs to signal in this short backlog, so
        # their per-verdict state is killed and replayed too
        "QW_SCORER_FALSE_ALARMS_PER_DAY": str(BUDGET),
        "QW_SCORER_EXPECTED_QUEUES": "1",
    }


def chaos_settings(kafka: KafkaSettings) -> ScorerSettings:
    """The pure Scorer's settings matching ``scorer_env``."""
    return ScorerSettings(
        kafka=kafka, grace_seconds=GRACE, phase1_subgroups=12, snapshot_interval_s=0.5,
        false_alarms_per_day=BUDGET, expected_queues=1,
    )  # fmt: skip


async def progress(kafka: KafkaSettings) -> tuple[int, int]:
    """(committed, end) of the scorer's group on the events topic."""
    group = kafka.topic_prefix + ScorerSettings(kafka=kafka).app_id
    return await group_progress(kafka, group, kafka.topics.events)


async def written(kafka: KafkaSettings) -> int:
    """Records in the scorer's changelog (end offsets summed; 0 before it exists): the
    worker writes some for every batch it applies, so this grows with its work, where its
    committed offset moves once a commit interval."""
    changelog = f"{kafka.topic_prefix}{ScorerSettings(kafka=kafka).app_id}-state-changelog"
    probe = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap)
    await probe.start()
    try:
        if changelog not in await probe.topics():
            return 0
        tps = [TopicPartition(changelog, p) for p in range(kafka.partitions)]
        return sum((await probe.end_offsets(tps)).values())
    finally:
        await probe.stop()


def latest(records: list[tuple[bytes | None, Any]], key: str) -> dict[Any, dict[str, Any]]:
    out: dict[Any, dict[str, Any]] = {}
    for _, value in records:
        k = (value["queue_id"], value["start"]) if key == "subgroup" else value["queue_id"]
        if key != "subgroup" or k not in out or value["revision"] >= out[k]["revision"]:
            out[k] = value
    return out


@dataclass
class Published:
    snapshots: dict[Any, dict[str, Any]]
    points: dict[Any, dict[str, Any]]
    breaches: set[str]
    baselines: set[tuple[str, int, str]] = field(default_factory=set)


async def collect(kafka: KafkaSettings, truth: Truth, queues: list[str]) -> Published:
    """Once the worker drained the backlog: what it published. The deferred flush publishes
    each queue's final state within about a second; wait up to a minute for it."""
    topics = kafka.topics
    want = {q: truth.decisions[q] for q in queues}
    snaps: dict[Any, dict[str, Any]] = {}
    settle = time.monotonic() + 60
    while time.monotonic() < settle:
        snaps = latest(
            await read_topic(kafka.bootstrap, topics.snapshots, expect=10**9, timeout=3),
            "snapshot",
        )
        if {q: snaps.get(q, {}).get("decisions_total") for q in queues} == want:
            break
    points = latest(
        await read_topic(kafka.bootstrap, topics.subgroups, expect=10**9, timeout=5), "subgroup"
    )
    breaches = await read_topic(kafka.bootstrap, topics.breaches, expect=10**9, timeout=3)
    changes = await read_topic(kafka.bootstrap, topics.baselines, expect=10**9, timeout=3)
    return Published(
        snaps, points, {b["dedup_key"] for _, b in breaches},
        {(c["queue_id"], c["epoch"], c["event"]) for _, c in changes},
    )  # fmt: skip


def compare(
    got: Published, truth: Truth, exp: Expected, queues: list[str], context: str
) -> tuple[int, int]:
    """Assert exact equality with the truth and the reference; returns (lost, doubled)
    verdicts summed over subgroups (both 0 when the assertions hold)."""
    for q in queues:
        s = got.snapshots[q]
        assert (s["decisions_total"], s["verdicts_total"]) == (
            truth.decisions[q],
            truth.verdicts[q],
        ), f"{q}: {context}"
        assert s["late_verdicts_total"] == exp.reference.state(q).late_total, context
        assert s["subgroups_closed"] == exp.reference.state(q).closed_count, context
    assert set(got.points) == set(exp.points), context
    lost = doubled = 0
    for key, point in got.points.items():
        q, start = key
        t = truth.subgroups[(q, int(datetime.fromisoformat(start).timestamp()))]
        want = exp.points[key]
        assert (point["n"], point["errors"], point["decisions"]) == tuple(t), f"{key}: {context}"
        for f in ("late", "revision", "status", "original_n", "original_errors", "ucl"):
            assert point[f] == want[f], f"{key} {f}: {context}"
        lost += max(0, t[0] - point["n"])
        doubled += max(0, point["n"] - t[0])
    assert got.breaches == exp.breaches, context
    assert got.baselines == exp.baselines, context
    return lost, doubled


# -- several workers (tests/e2e/test_scorer_scaleout.py) ----------------------------------


def partition_of(queue_id: str, partitions: int) -> int:
    """The events topic's partition of a queue, as the producer's default partitioner
    (murmur2 of the key, like Kafka's Java client) places it."""
    return int(murmur2(queue_key(queue_id)) & 0x7FFFFFFF) % partitions


def spread_queues(stem: str, partitions: int, per_partition: int) -> list[str]:
    """Queue ids ``stem-<i>`` that put exactly ``per_partition`` queues on every partition,
    so that every worker of a group has work whatever partitions it is given."""
    out: list[str] = []
    counts = [0] * partitions
    i = 0
    while len(out) < partitions * per_partition:
        q = f"{stem}-{i}"
        p = partition_of(q, partitions)
        if counts[p] < per_partition:
            counts[p] += 1
            out.append(q)
        i += 1
    return out


async def partition_progress(kafka: KafkaSettings) -> dict[int, tuple[int, int]]:
    """Per partition of the events topic: (offset the scorer's group committed, end)."""
    group = kafka.topic_prefix + ScorerSettings(kafka=kafka).app_id
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    probe = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    await probe.start()
    try:
        tps = [TopicPartition(kafka.topics.events, p) for p in range(kafka.partitions)]
        ends = await probe.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group)
        return {
            tp.partition: (max(0, committed[tp].offset) if tp in committed else 0, ends[tp])
            for tp in tps
        }
    finally:
        await probe.stop()
        await admin.close()


async def produce_paced(
    kafka: KafkaSettings, msgs: list[Msg], per_second: float, release: asyncio.Event
) -> None:
    """The batches on the events topic in order, as a live stream of ``per_second`` a
    second; once ``release`` is set, the rest at once. The topics must exist (``produce``)."""
    producer = make_producer(kafka, linger_ms=20)
    await producer.start()
    try:
        began = time.monotonic()
        sent = []
        for i, b in enumerate(msgs):
            wait = began + i / per_second - time.monotonic()
            if wait > 0 and not release.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(release.wait(), wait)
            sent.append(
                await producer.send(kafka.topics.events, encode(b), key=queue_key(b["queue_id"]))
            )
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def unapplied(kafka: KafkaSettings) -> dict[int, list[int]]:
    """Offsets of the events topic, per partition, that no worker applied: every message a
    worker scores ends in a queue record naming its position (``applied``) on the state
    table's changelog (not compacted yet within a test); an offset no such record names
    was lost. Empty when every message was applied."""
    changelog = f"{kafka.topic_prefix}{ScorerSettings(kafka=kafka).app_id}-state-changelog"
    seen: dict[int, set[int]] = defaultdict(set)
    reader = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        # (asking for a topic that does not exist would have the broker create it)
        if changelog not in await reader.topics():
            raise RuntimeError(f"no changelog {changelog}: no scorer worker ever ran")
        tps = [TopicPartition(changelog, p) for p in range(kafka.partitions)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        left = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 120
        while left:
            if time.monotonic() > deadline:
                raise TimeoutError(f"cannot read {changelog} to its end: {left}")
            for tp, records in (await reader.getmany(*left, timeout_ms=1000)).items():
                for r in records:
                    if r.value is not None and r.key is not None and r.key.startswith(b'"q|'):
                        partition, offset = json.loads(r.value)["applied"]
                        seen[partition].add(offset)
                if await reader.position(tp) >= ends[tp]:
                    left.discard(tp)
        events = [TopicPartition(kafka.topics.events, p) for p in range(kafka.partitions)]
        event_ends = await reader.end_offsets(events)
    finally:
        await reader.stop()
    out = {}
    for tp in events:
        missing = sorted(set(range(event_ends[tp])) - seen[tp.partition])
        if missing:
            out[tp.partition] = missing
    return out
