"""Scale-out: scorer workers join and leave a consumer group mid-stream, and every count
stays exact.

A generator with known truth (``tests/e2e/chaos.py``) makes the input: twelve queues, two on
each of the events topic's six partitions. Half of it is a backlog written before the
workers start; the rest follows as a live stream, except a last part held back until the
final rebalance has settled, so that every step below happens while input is still
arriving (a backlog alone drains in about 30 s, less than the steps take: a new worker needs
seconds to start, each rebalance seconds to recover, and a killed one is noticed after the
10 s session timeout).

Two scorer worker processes (one consumer group, each with its own data directory; the
worker runs no web server, so they share no port) share the partitions. A third joins; one
of the first two leaves cleanly (SIGTERM); a fourth joins and the other original is
SIGKILLed while that rebalance is under way (given its partitions, its table not recovered
yet). The last two finish. After each rebalance every partition must belong to exactly one
live worker. Then what they published together is compared exactly with the truth and with
the pure ``Scorer`` run on the same batches, as in ``test_scorer_chaos.py``.

The workers log at INFO: a log shows every group generation its worker took part in, the
partitions it was given (the recovery's "Highwater for active changelog partitions" table)
and when it was ready again ("Worker ready").
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from services.demo.orchestrator import Services, local_kafka
from shared.settings import KafkaSettings
from tests.e2e.chaos import (
    Expected,
    chaos_settings,
    collect,
    compare,
    expected,
    generate,
    partition_of,
    partition_progress,
    produce,
    produce_paced,
    progress,
    scorer_env,
    spread_queues,
    unapplied,
)

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

PARTITIONS = 6
QUEUES = spread_queues("scale", PARTITIONS, 2)
SIZE = {"hours": 48, "per_hour": 250}  # ~234,000 events in ~2,030 batches
BACKLOG, RESERVE = 0.50, 0.15  # of the batches: written first, held back to the end
STREAM_PER_S = 10.0  # batches a second in between (two workers drain ~70 a second)
# generous: the CPU is shared (two cores, a broker and up to four workers)
DEADLINE_S = 420.0

_GENERATION = re.compile(r"generation id (\d+) app consumers id (\d+)")
_ROW = re.compile(r"^\|\s*\S+\s*\|\s*(\d+)\s*\|\s*-?\d+\s*\|")


@dataclass
class Generation:
    """One group generation as a worker's log tells it."""

    id: int
    partitions: set[int] = field(default_factory=set)
    listed: bool = False  # the partitions above are complete (the log went past them)
    ready: bool = False


def generations(log: Path) -> dict[int, Generation]:
    """Every generation a worker was assigned in, its active partitions, and whether it
    recovered its table for them."""
    out: dict[int, Generation] = {}
    current: Generation | None = None
    in_table = False
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in text.splitlines():
        m = _GENERATION.search(line)
        if m:
            # a generation id other than the consumer's is superseded: faust skips it
            current = Generation(int(m[1])) if m[1] == m[2] else None
            if current is not None:
                out[current.id] = current
            in_table = False
            continue
        if current is None:
            continue
        if "Highwater for active changelog partitions" in line:
            in_table = True
            continue
        if in_table:
            row = _ROW.match(line)
            if row:
                current.partitions.add(int(row[1]))
                continue
            if line.startswith(("+", "| topic")):
                continue
            in_table = False
        if "Restoring state" in line or "Resuming flow" in line:
            current.listed = True
        if "Worker ready" in line:
            current.listed = current.ready = True
    return out


def reference(seed: int, kafka: KafkaSettings) -> Expected:
    """What the pure Scorer publishes for the test's input; it takes a core for about
    25 s, so it runs in a process of its own while the workers drain (a thread would starve
    the test's event loop, which must see each rebalance as it happens)."""
    msgs, _, _ = generate(QUEUES, seed, **SIZE)
    return expected(chaos_settings(kafka), msgs)


class Group:
    """The scorer workers of the test, their logs and what the test did to them."""

    def __init__(self, kafka: KafkaSettings, tmp: Path, feeder: asyncio.Task[Any]) -> None:
        self.kafka = kafka
        self.tmp = tmp
        self.feeder = feeder
        # the log must say at least INFO (the generations); QW_LOG_LEVEL=debug says more
        level = "debug" if os.environ.get("QW_LOG_LEVEL", "").lower() == "debug" else "info"
        self.services = Services(
            {**scorer_env(kafka, tmp / "unused"), "QW_LOG_LEVEL": level}, tmp / "logs"
        )
        self.live: list[str] = []
        self.everyone: list[str] = []
        self.steps: list[str] = []
        self.began = time.monotonic()
        self.deadline = self.began + DEADLINE_S

    def log(self, label: str) -> Path:
        return self.tmp / "logs" / f"{label}.log"

    def check(self, what: str) -> None:
        """Every worker alive, the stream being written, the deadline not passed."""
        self.services.check()
        if self.feeder.done():
            self.feeder.result()  # raises what stopped it
        assert time.monotonic() < self.deadline, f"{what}: {self.steps}"

    def step(self, text: str) -> None:
        self.steps.append(f"+{time.monotonic() - self.began:.0f}s {text}")

    def start(self, label: str) -> None:
        self.services.start("scorer", as_=label, env={"QW_SCORER_DATA_DIR": str(self.tmp / label)})
        self.live.append(label)
        self.everyone.append(label)

    def end(self, label: str, sig: int) -> int:
        self.live.remove(label)
        return self.services.end(label, sig)

    async def advanced(self, fraction: float) -> tuple[int, int]:
        """Wait until the group committed another ``fraction`` of the input (at least one
        more message) from now."""
        start, _ = await progress(self.kafka)
        while True:
            done, end = await progress(self.kafka)
            if done >= start + max(1.0, fraction * end):
                return done, end
            self.check(f"stuck at {done}/{end}")
            await asyncio.sleep(0.2)

    async def settled(self, after: int) -> int:
        """Wait for a generation later than ``after`` in which the live workers hold every
        partition, each exactly once, and have all recovered; return its id."""
        while True:
            latest = {w: generations(self.log(w)) for w in self.live}
            ids = {max(g, default=0) for g in latest.values()}
            if len(ids) == 1 and (gen := ids.pop()) > after:
                held = [latest[w][gen] for w in self.live]
                owned = sorted(p for g in held for p in g.partitions)
                if all(g.ready for g in held) and owned == list(range(PARTITIONS)):
                    self.step(f"gen {gen}: {self.assignment(gen)}")
                    return gen
            seen = {w: {i: sorted(g.partitions) for i, g in gs.items()} for w, gs in latest.items()}
            self.check(f"no settled generation after {after}: {seen}")
            await asyncio.sleep(0.1)

    def assignment(self, gen: int) -> str:
        return ", ".join(
            f"{w} {sorted(generations(self.log(w))[gen].partitions)}" for w in self.live
        )

    async def drained(self) -> tuple[int, int]:
        while True:
            done, end = await progress(self.kafka)
            if done >= end:
                return done, end
            self.services.check()
            assert time.monotonic() < self.deadline, f"not drained: {done}/{end}: {self.steps}"
            await asyncio.sleep(0.5)


async def test_scorer_workers_join_and_leave_counts_exactly(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    seed = int(os.environ.get("QW_CHAOS_SEED", time.time_ns() % 10_000))
    kafka = local_kafka(
        bootstrap=kafka_settings.bootstrap,
        topic_prefix=kafka_settings.topic_prefix,
        partitions=PARTITIONS,
    )
    began = time.monotonic()
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    exp_future = asyncio.get_running_loop().run_in_executor(pool, reference, seed, kafka)
    msgs, truth, n_events = generate(QUEUES, seed, **SIZE)
    first, last = int(len(msgs) * BACKLOG), int(len(msgs) * (1 - RESERVE))
    await produce(kafka, msgs[:first])
    backlog = await partition_progress(kafka)
    assert all(end > 0 for _, end in backlog.values()), f"a partition without data: {backlog}"
    release = asyncio.Event()
    feeder = asyncio.create_task(produce_paced(kafka, msgs[first:last], STREAM_PER_S, release))

    group = Group(kafka, tmp_path, feeder)
    step = group.step
    feeder.add_done_callback(lambda _: step("stream written"))
    try:
        # two workers share the partitions
        group.start("scorer-1")
        group.start("scorer-2")
        gen = await group.settled(after=0)
        assert all(generations(group.log(w))[gen].partitions for w in group.live), group.steps

        # a third joins
        done, end = await group.advanced(0.05)
        group.start("scorer-3")
        step(f"scorer-3 joins at {done}/{end}")
        gen = await group.settled(after=gen)
        assert all(generations(group.log(w))[gen].partitions for w in group.live), group.steps

        # one of the first two leaves cleanly
        done, end = await group.advanced(0.03)
        status = group.end("scorer-1", signal.SIGTERM)
        step(f"scorer-1 leaves (SIGTERM, exit {status}) at {done}/{end}")
        assert status == 0, group.steps
        gen = await group.settled(after=gen)

        # a fourth joins, and the other original dies while that rebalance is under way:
        # given its partitions in the new generation, its table not recovered yet
        done, end = await group.advanced(0.03)
        group.start("scorer-4")
        step(f"scorer-4 joins at {done}/{end}")
        while True:
            mine = generations(group.log("scorer-2"))
            if max(mine) > gen and mine[max(mine)].listed:
                break
            group.check("no rebalance for scorer-4")
            await asyncio.sleep(0.02)
        group.end("scorer-2", signal.SIGKILL)
        dying = mine[max(mine)]
        at_kill = await partition_progress(kafka)
        done, end = (sum(x) for x in zip(*at_kill.values(), strict=True))
        left = sum(at_kill[p][1] - at_kill[p][0] for p in dying.partitions)
        step(
            f"scorer-2 SIGKILLed in gen {dying.id} holding {sorted(dying.partitions)} "
            f"({'recovered' if dying.ready else 'recovering'}; {left} of their messages "
            f"not committed) at {done}/{end}"
        )
        assert dying.partitions, f"scorer-2 was given nothing: {group.steps}"
        gen = await group.settled(after=dying.id)

        # the end of the stream: what is left of it at once, then what was held back
        release.set()
        await feeder
        await produce(kafka, msgs[last:])
        step(f"the last {len(msgs) - last} batches written")
        done, end = await group.drained()
        step(f"drained {done}/{end}")
        # which input messages no worker applied: a lost message shows here by its offset
        missing = await unapplied(kafka)
        if not missing:
            got = await collect(kafka, truth, QUEUES)
        exp = await exp_future
    finally:
        group.services.stop()
        release.set()
        await asyncio.gather(feeder, return_exceptions=True)
        pool.shutdown(wait=False, cancel_futures=True)

    context = f"seed {seed}: {'; '.join(group.steps)}"
    on_partition: dict[int, list[str]] = {}
    for b in msgs:
        on_partition.setdefault(partition_of(b["queue_id"], PARTITIONS), []).append(b["queue_id"])
    named = {p: [(o, on_partition[p][o]) for o in offsets] for p, offsets in missing.items()}
    assert not missing, f"never applied (partition: [(offset, queue)]): {named}; {context}"
    lost, doubled = compare(got, truth, exp, QUEUES, context)
    logs = {w: group.log(w).read_text(errors="replace") for w in group.everyone}
    rebalances = len({g for w in group.everyone for g in generations(group.log(w))})
    gaps = sum(text.count("were not delivered") for text in logs.values())
    print(
        f"\nscale-out: {n_events:,} events in {len(msgs):,} batches on {PARTITIONS} partitions "
        f"({first} as a backlog, then {STREAM_PER_S:.0f}/s), {len(group.everyone)} workers, "
        f"{rebalances} generations in the logs, {gaps} undelivered ranges read directly, "
        f"{len(got.points)} subgroups and {len(exp.breaches)} breaches compared: lost {lost}, "
        f"doubled {doubled}, in {time.monotonic() - began:.0f} s ({context})"
    )
