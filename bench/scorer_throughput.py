"""End-to-end scorer throughput: a real Faust worker draining a backlog on a real broker.

    .venv/bin/python bench/scorer_throughput.py [--hours 12] [--queues 20]

Fills the events topic with simulated traffic in the batches ingest would produce
(validated, grouped per queue), starts `qwatch scorer` as a process, and times how fast its
consumer group's committed offsets reach the end of the topic. Also times the pure Scorer
on the same batches in this process, so the Faust/Kafka overhead shows as a ratio measured
in one run (the machine is shared and noisy: compare ratios, not absolute figures).
Starts deploy/local/kafka.sh when no broker answers, and stops it again; its topics have one
replica, as on that single-node broker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from services.demo.orchestrator import (
    Services,
    ensure_local_broker,
    local_kafka,
    release_local_broker,
)
from services.ingest.validation import validate_items
from services.scorer.core import Scorer
from services.scorer.settings import ScorerSettings
from services.simulator.model import SimConfig, Simulation
from shared import batches
from shared.batches import EventBatch
from shared.kafka import ensure_topics, group_progress, make_producer
from shared.topics import queue_key


def make_batches(hours: float, queues: int, poll: int) -> tuple[list[EventBatch], int]:
    sim = Simulation(SimConfig(queues=queues, decisions_per_hour=2000, random_qa_rate=0.05))
    out: list[EventBatch] = []
    buf: list[dict[str, object]] = []
    n = 0
    for _, ev in sim.events(hours * 3600):
        buf.append(ev)
        n += 1
        if len(buf) >= poll:
            out += batches.group_by_queue(validate_items(buf, None).events)
            buf = []
    out += batches.group_by_queue(validate_items(buf, None).events)
    return out, n


async def main(args: argparse.Namespace) -> None:
    started = await ensure_local_broker()
    prefix = f"bench{int(time.time())}-"
    kafka = local_kafka(topic_prefix=prefix, partitions=args.partitions)
    try:
        t = time.perf_counter()
        msgs, n_events = make_batches(args.hours, args.queues, args.poll)
        gen_s = time.perf_counter() - t
        print(
            f"simulated and validated {n_events:,} events into {len(msgs):,} batches in {gen_s:.1f}s"
        )

        # the pure core on the same batches, for the ratio
        scorer = Scorer(ScorerSettings(), {})
        t = time.perf_counter()
        wall = time.time()
        for i, b in enumerate(msgs):
            scorer.process(b, wall, (0, i))
            scorer.commit(b["queue_id"])
        pure_s = time.perf_counter() - t

        await ensure_topics(kafka)
        producer = make_producer(kafka, linger_ms=50)
        await producer.start()
        t = time.perf_counter()
        futures = [
            await producer.send(
                kafka.topics.events, batches.encode(b), key=queue_key(b["queue_id"])
            )
            for b in msgs
        ]
        await asyncio.gather(*futures)
        await producer.stop()
        produce_s = time.perf_counter() - t

        with tempfile.TemporaryDirectory() as tmp:
            env = {**kafka.as_env(), "QW_SCORER_DATA_DIR": str(Path(tmp) / "scorer")}
            services = Services(env, Path(tmp) / "logs")
            t0 = time.perf_counter()
            services.start("scorer")
            group = prefix + ScorerSettings().app_id
            t_first: float | None = None
            first_done = 0
            try:
                while True:
                    services.check()
                    done, end = await group_progress(kafka, group, kafka.topics.events)
                    now = time.perf_counter()
                    if done > 0 and t_first is None:
                        t_first, first_done = now, done
                    if done >= end:
                        break
                    if now - t0 > args.timeout:
                        raise TimeoutError(
                            f"scorer did not catch up in {args.timeout}s ({done}/{end})"
                        )
                    await asyncio.sleep(0.25)
            finally:
                services.stop()
        t_end = time.perf_counter()
        assert t_first is not None
        drained = len(msgs) - first_done
        drain_s = t_end - t_first
        rate_events = n_events * drained / len(msgs) / drain_s
        print()
        print(
            f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"
        )
        print(f"command: {' '.join(sys.argv)}")
        print("| measure | value |\n|---|---|")
        print(f"| events (decisions + verdicts) | {n_events:,} |")
        print(
            f"| batches on {kafka.topics.events} ({args.partitions} partitions) | {len(msgs):,} |"
        )
        print(f"| pure Scorer, in process | {n_events / pure_s:,.0f} events/s |")
        print(f"| produce backlog | {n_events / produce_s:,.0f} events/s |")
        print(f"| scorer worker start to first commit | {t_first - t0:.1f} s |")
        print(
            f"| Faust scorer end to end (consume, state, changelog, produce, commit) | {rate_events:,.0f} events/s |"
        )
        print(f"| ratio end-to-end / pure | {rate_events / (n_events / pure_s):.2f} |")
    finally:
        await release_local_broker(started)


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--hours", type=float, default=12.0, help="simulated hours of traffic")
    p.add_argument("--queues", type=int, default=20)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--poll", type=int, default=5000, help="raw events per ingest poll")
    p.add_argument("--timeout", type=float, default=600.0)
    asyncio.run(main(p.parse_args()))
