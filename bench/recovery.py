"""Scorer recovery and memory: restart time against state size, and RSS against events.

    .venv/bin/python bench/recovery.py restart [--queues 1000 --days 7 --per-hour 6]
    .venv/bin/python bench/recovery.py rss [--events 1000000 10000000]

``restart``: fills the events topic with ``days`` of traffic for ``queues`` queues (one batch
per queue and hour, as a quiet queue's ingest produces), lets a real scorer worker build its
state from it, kills the worker with SIGKILL, starts it again and at once sends one new batch
to a few probe queues. It prints how long the worker took to serve again: from the restart to
the snapshot that carries each probe's new decisions (the table recovered from its
changelog, the batch scored, the snapshot produced). Also the size of the state (changelog
records and bytes).

``rss``: a real scorer worker (state in RocksDB) drains a steady stream whose event time
runs well past the retention horizon (``decision_ttl_seconds``, 7 days); prints the worker's
resident memory as it passes each checkpoint. Once event time passes the horizon, state
expires as fast as it grows and RSS must stay flat: the figure to watch is RSS at 10M events
against RSS at 1M. A single reading of a worker's RSS moves 30-60 MiB within seconds
(RocksDB's flushes and compactions, the allocator), so each checkpoint is the median of
readings every half second over ``--settle`` seconds once the worker has drained its input,
printed with their range and with the peak read while it was consuming (every half second).
The verdict compares the medians. ``--pure`` measures the pure ``Scorer`` on a dict instead, in a child
process per size (no broker; the state is then in memory).

Starts deploy/local/kafka.sh when no broker answers (``restart`` only), and stops it again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.demo.orchestrator import (
    Services,
    ensure_local_broker,
    local_kafka,
    release_local_broker,
)
from services.scorer.core import Scorer
from services.scorer.settings import ScorerSettings
from shared import batches, codec
from shared.batches import EventBatch
from shared.kafka import ensure_topics, group_progress, make_producer
from shared.settings import KafkaSettings
from shared.topics import queue_key

HOUR = 3600
RSS_EVERY_S = 0.5
DRAIN_EVENTS = 1_000_000


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def traffic(
    queues: int, hours: int, per_hour: int, start: float, seed: int = 1
) -> Iterator[EventBatch]:
    """Hour by hour, one batch per queue: ``per_hour`` decisions, 30% of them QA'd about an
    hour later (so a batch carries the verdicts of the previous hour's decisions)."""
    rng = random.Random(seed)
    waiting: dict[int, list[dict[str, Any]]] = {}
    for h in range(hours):
        t = start + h * HOUR
        for q in range(queues):
            qid = f"q{q:04d}"
            decisions = []
            for i in range(per_hour):
                did = f"{qid}-{h}-{i}"
                decisions.append(
                    {
                        "decision_id": did,
                        "content_id": did,
                        "queue_id": qid,
                        "moderator_id": f"m{i % 30}",
                        "site_id": f"s{q % 4}",
                        "policy_id": "p.v1",
                        "action": "remove",
                        "decided_at": _iso(t + rng.uniform(0, HOUR - 1)),
                    }
                )
            verdicts = waiting.pop(q, [])
            waiting[q] = [
                {
                    "verdict_id": f"v-{d['decision_id']}",
                    "decision_id": d["decision_id"],
                    "queue_id": qid,
                    "auditor_id": "a1",
                    "reviewed_at": _iso(t + HOUR + rng.uniform(0, HOUR - 1)),
                    "outcome": "incorrect" if rng.random() < 0.05 else "correct",
                    "sample_type": "random",
                }
                for d in decisions
                if rng.random() < 0.3
            ]
            yield EventBatch(v=1, queue_id=qid, decisions=decisions, verdicts=verdicts)


def _machine() -> str:
    return f"{platform.platform()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


# -- rss --------------------------------------------------------------------------------------
def _rss_mib(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def _hours_for(events: int, queues: int, per_hour: int) -> int:
    return int(events / (queues * per_hour * 1.3)) + 2


def rss_child(events: int, queues: int, per_hour: int) -> None:
    """``--pure``, in a fresh process: the pure Scorer on a dict, outputs acknowledged as the
    worker's producer would; prints JSON checkpoints of RSS."""
    scorer = Scorer(ScorerSettings(), {})
    hours = _hours_for(events, queues, per_hour)
    seen, next_mark = 0, max(events // 10, 1)
    t0 = time.perf_counter()
    for offset, b in enumerate(traffic(queues, hours, per_hour, time.time() - hours * HOUR)):
        q = b["queue_id"]
        scorer.process(b, time.time(), (0, offset))
        scorer.commit(q)
        for entry in scorer.unsent(q):
            scorer.acked(q, entry.seq)
        seen += len(b["decisions"]) + len(b["verdicts"])
        if seen >= next_mark:
            row = {"events": seen, "event_hours": offset // queues + 1, "rss_mib": _rss_mib()}
            print(json.dumps({**row, "s": time.perf_counter() - t0}), flush=True)
            next_mark += max(events // 10, 1)
            if seen >= events:
                return


def run_rss_pure(args: argparse.Namespace) -> dict[int, float]:
    finals: dict[int, float] = {}
    for n in args.events:
        proc = subprocess.run(
            [sys.executable, __file__, "_rss_child", str(n), str(args.queues), str(args.per_hour)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows = [json.loads(line) for line in proc.stdout.splitlines()]
        for row in rows if args.verbose else rows[-1:]:
            print(
                f"| {row['events']:,} | {row['event_hours']:,} | {row['rss_mib']:,.0f} "
                f"| {row['events'] / row['s']:,.0f} |"
            )
        finals[n] = rows[-1]["rss_mib"]
    return finals


async def run_rss_worker(args: argparse.Namespace) -> dict[int, float]:
    """A real worker consumes the stream in steps: the events up to each size (every tenth
    of the largest with ``--verbose``) are produced, drained and committed, then the
    worker's RSS is read."""
    started = await ensure_local_broker()
    prefix = f"rss{int(time.time())}-"
    kafka = local_kafka(topic_prefix=prefix, partitions=args.partitions)
    total = max(args.events)
    hours = _hours_for(total, args.queues, args.per_hour)
    group = prefix + ScorerSettings().app_id
    shown = {*args.events, *(range(total // 10, total + 1, total // 10) if args.verbose else ())}
    # drained at least every DRAIN_EVENTS: a backlog past the local broker's retention (256
    # MiB a partition) would be deleted before the worker read it (a run that produced 9M
    # events at once lost input that way, 2026-12-04)
    steps = sorted(shown | set(range(DRAIN_EVENTS, total, DRAIN_EVENTS)))
    finals: dict[int, float] = {}
    stream = traffic(args.queues, hours, args.per_hour, time.time() - hours * HOUR)
    peak = 0.0

    async def watch(pid: int) -> None:
        nonlocal peak
        while True:
            peak = max(peak, _rss_mib(pid))
            await asyncio.sleep(RSS_EVERY_S)

    try:
        await ensure_topics(kafka)
        producer = make_producer(kafka, linger_ms=50)
        await producer.start()
        with tempfile.TemporaryDirectory() as tmp:
            env = {**kafka.as_env(), "QW_SCORER_DATA_DIR": str(Path(tmp) / "scorer")}
            services = Services(env, Path(tmp) / "logs")
            try:
                services.start("scorer")
                pid = services.procs["scorer"].pid
                n = batches_sent = 0
                t0, settling = time.perf_counter(), 0.0
                for step in steps:
                    watcher = asyncio.create_task(watch(pid))
                    futures = []
                    while n < step:
                        b = next(stream)
                        futures.append(
                            await producer.send(
                                kafka.topics.events, batches.encode(b), key=queue_key(b["queue_id"])
                            )
                        )
                        n += len(b["decisions"]) + len(b["verdicts"])
                        batches_sent += 1
                    await asyncio.gather(*futures)
                    while True:
                        services.check()
                        done, end = await group_progress(kafka, group, kafka.topics.events)
                        if done >= end:
                            break
                        if time.perf_counter() - t0 > args.timeout:
                            raise TimeoutError(f"not drained in {args.timeout} s ({done}/{end})")
                        await asyncio.sleep(0.5)
                    watcher.cancel()
                    if step not in shown:
                        continue
                    rate = n / (time.perf_counter() - t0 - settling)
                    readings, t1 = [], time.perf_counter()
                    for _ in range(max(int(args.settle / RSS_EVERY_S), 1)):
                        readings.append(_rss_mib(pid))
                        await asyncio.sleep(RSS_EVERY_S)
                    settling += time.perf_counter() - t1
                    rss = statistics.median(readings)
                    if step in args.events:
                        finals[step] = rss
                    hour = batches_sent // args.queues
                    print(
                        f"| {n:,} | {hour:,} | {rss:,.0f} | {min(readings):,.0f}-"
                        f"{max(readings):,.0f} | {peak:,.0f} | {rate:,.0f} |",
                        flush=True,
                    )
                    peak = 0.0
            finally:
                services.stop()
                await producer.stop()
    finally:
        await release_local_broker(started)
    return finals


def run_rss(args: argparse.Namespace) -> None:
    horizon_h = ScorerSettings().decision_ttl_seconds // HOUR
    what = "the pure Scorer (dict state)" if args.pure else "a real scorer worker (RocksDB)"
    print(f"machine: {_machine()}")
    print(f"command: {' '.join(sys.argv)}")
    print(
        f"{what}; {args.queues} queues, {args.per_hour} decisions per queue-hour (+30% "
        f"verdicts); retention horizon {horizon_h} h of event time\n"
    )
    if args.pure:
        print("| events consumed | event time (h) | RSS (MiB) | events/s |")
        print("|---:|---:|---:|---:|")
        finals = run_rss_pure(args)
    else:
        print(
            f"| events consumed | event time (h) | RSS (MiB), median of {args.settle:g} s "
            "drained | its range | peak while consuming | events/s (produce + drain) |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        finals = asyncio.run(run_rss_worker(args))
    if len(finals) >= 2:
        sizes = sorted(finals)
        lo, hi = finals[sizes[0]], finals[sizes[-1]]
        verdict = "flat, within 10%" if hi / lo <= 1.10 else "NOT flat"
        print(f"\nRSS at {sizes[-1]:,} events / at {sizes[0]:,}: {hi / lo:.3f} ({verdict})")


# -- restart ----------------------------------------------------------------------------------
async def _changelog_size(kafka: KafkaSettings, topic: str) -> tuple[int, int]:
    """(records, bytes) in the changelog topic (partitioned as the events topic), read to
    its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(kafka.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records = size = 0
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for recs in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                records += len(recs)
                size += sum(len(r.value or b"") + len(r.key or b"") for r in recs)
        return records, size
    finally:
        await consumer.stop()


async def _probe_snapshots(
    kafka: KafkaSettings, want: dict[str, int], since: float, timeout: float
) -> dict[str, float]:
    """Wall time at which each probe queue's snapshot first showed its wanted total."""
    consumer = AIOKafkaConsumer(
        kafka.topics.snapshots, bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="latest", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    seen: dict[str, float] = {}
    try:
        deadline = time.monotonic() + timeout
        while len(seen) < len(want) and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                for r in recs:
                    snap = codec.loads(r.value)
                    q = snap["queue_id"]
                    if q in want and q not in seen and snap["decisions_total"] >= want[q]:
                        seen[q] = time.monotonic() - since
        return seen
    finally:
        await consumer.stop()


async def run_restart(args: argparse.Namespace) -> None:
    started = await ensure_local_broker()
    prefix = f"recovery{int(time.time())}-"
    kafka = local_kafka(topic_prefix=prefix, partitions=args.partitions)
    hours = args.days * 24
    start = time.time() - hours * HOUR - 2 * HOUR
    settings = ScorerSettings(kafka=kafka)
    group = prefix + settings.app_id
    changelog = f"{group}-state-changelog"
    try:
        await ensure_topics(kafka)
        producer = make_producer(kafka, linger_ms=50)
        await producer.start()
        t = time.perf_counter()
        n_batches = n_events = 0
        totals: dict[str, int] = {}
        futures = []
        for b in traffic(args.queues, hours, args.per_hour, start):
            futures.append(
                await producer.send(
                    kafka.topics.events, batches.encode(b), key=queue_key(b["queue_id"])
                )
            )
            n_batches += 1
            n_events += len(b["decisions"]) + len(b["verdicts"])
            totals[b["queue_id"]] = totals.get(b["queue_id"], 0) + len(b["decisions"])
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
        print(
            f"backlog: {n_events:,} events in {n_batches:,} batches "
            f"({args.queues} queues x {hours} h) produced in {time.perf_counter() - t:.1f} s"
        )

        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **kafka.as_env(),
                "QW_SCORER_DATA_DIR": str(Path(tmp) / "scorer"),
                "QW_SCORER_GRACE_SECONDS": str(2 * HOUR),
            }
            services = Services(env, Path(tmp) / "logs")
            try:
                t = time.perf_counter()
                services.start("scorer")
                while True:
                    services.check()
                    done, end = await group_progress(kafka, group, kafka.topics.events)
                    if done >= end:
                        break
                    if time.perf_counter() - t > args.timeout:
                        raise TimeoutError(f"state not built in {args.timeout} s ({done}/{end})")
                    await asyncio.sleep(0.5)
                build_s = time.perf_counter() - t
                await asyncio.sleep(3)  # the last changelog records and snapshots
                records, size = await _changelog_size(kafka, changelog)
                print(
                    f"state built in {build_s:.1f} s: {records:,} changelog records, "
                    f"{size / 2**20:,.1f} MiB"
                )
                for run in range(args.restarts):
                    services.end("scorer", signal.SIGKILL)
                    probes = [f"q{q:04d}" for q in range(0, args.queues, max(args.queues // 5, 1))]
                    want = {q: totals[q] + 1 for q in probes}
                    watcher = asyncio.create_task(
                        _probe_snapshots(kafka, want, time.monotonic(), args.timeout)
                    )
                    await asyncio.sleep(0.5)  # the watcher is at the end of the topic
                    services.start("scorer")
                    t_probe = time.time() - HOUR
                    for q in probes:
                        b = EventBatch(
                            v=1, queue_id=q, verdicts=[],
                            decisions=[{
                                "decision_id": f"probe-{run}-{q}", "content_id": "c",
                                "queue_id": q, "moderator_id": "m1", "site_id": "s0",
                                "policy_id": "p.v1", "action": "remove",
                                "decided_at": _iso(t_probe),
                            }],
                        )  # fmt: skip
                        totals[q] += 1
                        await producer.send_and_wait(
                            kafka.topics.events, batches.encode(b), key=queue_key(q)
                        )
                    seen = await watcher
                    if len(seen) < len(want):
                        missing = sorted(want.keys() - seen.keys())
                        raise TimeoutError(f"probe queues not served after restart: {missing}")
                    print(
                        f"restart {run + 1}: SIGKILL, start, serving again after "
                        f"{max(seen.values()) - 0.5:.1f} s (slowest of {len(probes)} probe queues; "
                        f"fastest {min(seen.values()) - 0.5:.1f} s)"
                    )
                    while True:  # let it settle before the next kill
                        services.check()
                        done, end = await group_progress(kafka, group, kafka.topics.events)
                        if done >= end:
                            break
                        await asyncio.sleep(0.5)
            finally:
                services.stop()
                await producer.stop()
        print(f"\nmachine: {_machine()}")
        print(f"command: {' '.join(sys.argv)}")
    finally:
        await release_local_broker(started)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_rss_child":
        rss_child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("restart", help="restart time after SIGKILL against state size")
    r.add_argument("--queues", type=int, default=1000)
    r.add_argument("--days", type=int, default=7)
    r.add_argument("--per-hour", type=int, default=6, help="decisions per queue and hour")
    r.add_argument("--partitions", type=int, default=4)
    r.add_argument("--restarts", type=int, default=2)
    r.add_argument("--timeout", type=float, default=1800.0)
    m = sub.add_parser("rss", help="scorer RSS against events, past the retention horizon")
    m.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    m.add_argument("--queues", type=int, default=20)
    m.add_argument("--per-hour", type=int, default=100, help="decisions per queue and hour")
    m.add_argument("--partitions", type=int, default=4)
    m.add_argument("--timeout", type=float, default=3600.0)
    m.add_argument("--pure", action="store_true", help="the pure Scorer in process, no Kafka")
    m.add_argument("--verbose", action="store_true", help="print every checkpoint")
    m.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="seconds of RSS readings (every 0.5 s) at each checkpoint, once drained",
    )
    args = p.parse_args()
    if args.cmd == "rss":
        run_rss(args)
    else:
        asyncio.run(run_restart(args))


if __name__ == "__main__":
    main()
