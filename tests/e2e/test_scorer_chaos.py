"""Chaos: the scorer killed with SIGKILL while it drains a backlog, and every count exact.

A generator with known truth writes a backlog of per-queue batches (duplicates, verdicts
before their decisions, verdicts long after their subgroup closed) to the events topic of a
real broker. A scorer worker process drains it and is killed (SIGKILL, no clean-up) at
random moments of the catch-up, several times, and restarted. Then what it published is
compared, exactly, with the truth:

- every closed subgroup's n, errors and decisions with the generator's own tally;
- its late count and revision, and every breach, with the same batches run through the pure
  ``Scorer`` in this process (those depend on arrival order, which the generator fixes);
- each queue's decisions, verdicts and late totals in its last snapshot.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.demo.orchestrator import Services
from services.scorer.core import Scorer
from services.scorer.settings import ScorerSettings
from shared import batches
from shared.batches import EventBatch
from shared.kafka import ensure_topics, group_progress, make_producer
from shared.settings import KafkaSettings
from shared.topics import queue_key
from tests.integration.kafka_helpers import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

T0 = datetime(2026, 10, 1, tzinfo=UTC)
HOUR = 3600
GRACE = 2 * HOUR
QUEUES = [f"chaos-{i}" for i in range(8)]
KILLS = 3


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


def generate(seed: int, hours: int, per_hour: int) -> tuple[list[EventBatch], Truth, int]:
    """Batches in arrival order, the truth, and the number of events (with duplicates)."""
    rng = random.Random(seed)
    truth = Truth()
    arrivals: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
    for q in QUEUES:
        base_error = rng.uniform(0.03, 0.08)
        for h in range(hours):
            error = base_error * (3 if q == QUEUES[0] and h >= hours // 2 else 1)
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
    out: list[EventBatch] = []
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
    return out, truth, n_events


def latest(records: list[tuple[bytes | None, Any]], key: str) -> dict[Any, dict[str, Any]]:
    out: dict[Any, dict[str, Any]] = {}
    for _, value in records:
        k = (value["queue_id"], value["start"]) if key == "subgroup" else value["queue_id"]
        if key != "subgroup" or k not in out or value["revision"] >= out[k]["revision"]:
            out[k] = value
    return out


async def test_scorer_killed_during_catch_up_counts_exactly(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    seed = int(os.environ.get("QW_CHAOS_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    msgs, truth, n_events = generate(seed, hours=60, per_hour=250)
    assert n_events > 100_000

    settings = ScorerSettings(
        kafka=kafka_settings, grace_seconds=GRACE, phase1_subgroups=12, snapshot_interval_s=0.5
    )
    reference = Scorer(settings, {})
    expected_points: dict[tuple[str, str], dict[str, Any]] = {}
    expected_breaches: set[str] = set()
    for offset, b in enumerate(msgs):
        out = reference.process(b, time.time(), (0, offset))
        reference.commit(b["queue_id"])
        for p in out.points:
            expected_points[(p.queue_id, p.start.isoformat().replace("+00:00", "Z"))] = (
                p.model_dump(mode="json")
            )
        expected_breaches |= {br.dedup_key for br in out.breaches}
    assert expected_breaches, "the drifted queue must signal"
    assert any(p["revision"] > 0 for p in expected_points.values()), "late verdicts must revise"

    await ensure_topics(kafka_settings)
    producer = make_producer(kafka_settings, linger_ms=20)
    await producer.start()
    try:
        sent = [
            await producer.send(
                kafka_settings.topics.events, batches.encode(b), key=queue_key(b["queue_id"])
            )
            for b in msgs
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()

    env = {
        **kafka_settings.as_env(),
        "QW_SCORER_DATA_DIR": str(tmp_path / "scorer"),
        "QW_SCORER_GRACE_SECONDS": str(GRACE),
        "QW_SCORER_PHASE1_SUBGROUPS": "12",
        "QW_SCORER_SNAPSHOT_INTERVAL_S": "0.5",
    }
    group = kafka_settings.topic_prefix + settings.app_id
    kills: list[str] = []
    services = Services(env, tmp_path / "logs")
    deadline = time.monotonic() + 600
    try:
        services.start("scorer")
        before = 0
        for _ in range(KILLS):
            # once the worker (re)started and committed progress, at a random moment after
            while True:
                services.check()
                done, end = await group_progress(
                    kafka_settings, group, kafka_settings.topics.events
                )
                if done > before:
                    break
                assert time.monotonic() < deadline, f"no progress past {done}/{end}"
                await asyncio.sleep(0.1)
            await asyncio.sleep(rng.uniform(0, 1.0))
            done, end = await group_progress(kafka_settings, group, kafka_settings.topics.events)
            assert done < end, f"the backlog was drained before kill {len(kills) + 1}"
            before = done
            os.kill(services.procs["scorer"].pid, signal.SIGKILL)
            services.procs["scorer"].wait()
            kills.append(f"{done}/{end}")
            services.start("scorer")
        while True:
            services.check()
            done, end = await group_progress(kafka_settings, group, kafka_settings.topics.events)
            if done >= end:
                break
            assert time.monotonic() < deadline, f"scorer did not catch up: {done}/{end}"
            await asyncio.sleep(0.5)

        topics = kafka_settings.topics
        # the deferred flush publishes each queue's final state within about a second
        want = {q: truth.decisions[q] for q in QUEUES}
        snaps: dict[Any, dict[str, Any]] = {}
        settle = time.monotonic() + 60
        while time.monotonic() < settle:
            snaps = latest(
                await read_topic(
                    kafka_settings.bootstrap, topics.snapshots, expect=10**9, timeout=3
                ),
                "snapshot",
            )
            if {q: snaps.get(q, {}).get("decisions_total") for q in QUEUES} == want:
                break
        points = latest(
            await read_topic(kafka_settings.bootstrap, topics.subgroups, expect=10**9, timeout=5),
            "subgroup",
        )
        breaches = await read_topic(
            kafka_settings.bootstrap, topics.breaches, expect=10**9, timeout=3
        )
    finally:
        services.stop()

    context = f"seed {seed}, killed at committed/end {kills}"
    assert len(kills) == KILLS
    for q in QUEUES:
        s = snaps[q]
        assert (s["decisions_total"], s["verdicts_total"]) == (
            truth.decisions[q],
            truth.verdicts[q],
        ), context
        assert s["late_verdicts_total"] == reference.state(q).late_total, context
        assert s["subgroups_closed"] == reference.state(q).closed_count, context
    assert set(points) == set(expected_points), context
    lost = doubled = 0
    for key, got in points.items():
        q, start = key
        t = truth.subgroups[(q, int(datetime.fromisoformat(start).timestamp()))]
        exp = expected_points[key]
        assert (got["n"], got["errors"], got["decisions"]) == tuple(t), f"{key}: {context}"
        for f in ("late", "revision", "status", "original_n", "original_errors", "ucl"):
            assert got[f] == exp[f], f"{key} {f}: {context}"
        lost += max(0, t[0] - got["n"])
        doubled += max(0, got["n"] - t[0])
    assert {b["dedup_key"] for _, b in breaches} == expected_breaches, context
    log = (tmp_path / "logs" / "scorer.log").read_text(errors="replace")
    gaps = log.count("were not delivered")
    print(
        f"\nchaos ({gaps} undelivered ranges read directly): {n_events:,} events in {len(msgs):,} batches, {KILLS} SIGKILLs at {kills}, "
        f"{len(points)} subgroups and {len(expected_breaches)} breaches compared: "
        f"lost {lost}, doubled {doubled} ({context})"
    )
