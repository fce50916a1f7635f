"""Input the broker deleted before the scorer read it: said exactly, and the rest counted
exactly.

A scorer worker that is down longer than the events topic keeps its data (or behind a
backlog larger than its retention) comes back to find the offsets after its committed one
gone. Faust's consumer then starts from the log's new start; the worker used to take the
deleted offsets for messages Faust had dropped, fail to read them, and crash once a minute
from then on with its committed offset held before them (2026-12-04, bench/README.md). Now
it writes one dead-letter record per partition naming the offsets lost, and goes on.

A generator with known truth (``tests/e2e/chaos.py``) writes a backlog; a real worker
drains the first third; the rest is written and the first half of what it put on each
partition deleted (``delete_records``, as the broker's retention would). Two ways:

- ``restarted``: the worker is stopped before, and started after; it finds its committed
  offsets gone when it is assigned its partitions;
- ``paused``: the worker is frozen (SIGSTOP) with no fetch in flight, and thawed after; it
  keeps its partitions, and Faust's consumer, asking for an offset the broker no longer
  holds, resets to the log's new start mid-stream. That is what the bench's lagging worker
  met (its input deleted while it read).

What it published must equal the pure ``Scorer`` run over exactly the batches that were
not deleted, in the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from services.demo.orchestrator import Services
from services.scorer.core import Scorer
from shared.settings import KafkaSettings
from tests.e2e.chaos import (
    Msg,
    Truth,
    chaos_settings,
    collect,
    generate,
    partition_of,
    produce,
    progress,
    scorer_env,
    spread_queues,
)
from tests.integration.kafka_helpers import read_topic, wait_for_progress

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


async def _drained(kafka: KafkaSettings, services: Services) -> None:
    await wait_for_progress(lambda: progress(kafka), services.check)


async def _ends(kafka: KafkaSettings) -> dict[int, int]:
    probe = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap)
    await probe.start()
    try:
        tps = [TopicPartition(kafka.topics.events, p) for p in range(kafka.partitions)]
        return {tp.partition: o for tp, o in (await probe.end_offsets(tps)).items()}
    finally:
        await probe.stop()


# faust-streaming 0.15 asks the broker to hold a fetch up to 1.5 s for data
FETCH_MAX_WAIT = 1.5


@contextlib.asynccontextmanager
async def _away(services: Services, worker: str) -> AsyncIterator[None]:
    """The worker is away for the block: stopped and started again (``restarted``), or
    frozen and thawed (``paused``), within its session timeout (10 s), so it keeps its
    partitions."""
    if worker == "restarted":
        assert services.end("scorer", signal.SIGTERM) == 0
        yield
        services.start("scorer")
        return
    p = services.procs["scorer"]
    os.killpg(p.pid, signal.SIGSTOP)
    try:
        # a fetch in flight when it froze ends empty; the thawed worker's next one asks for
        # the offset after its last, which the block deletes
        await asyncio.sleep(FETCH_MAX_WAIT + 1)
        frozen = time.monotonic()
        yield
        assert time.monotonic() - frozen < 6, "too slow to keep the worker's partitions"
    finally:
        os.killpg(p.pid, signal.SIGCONT)


@pytest.mark.parametrize("worker", ["restarted", "paused"])
async def test_input_deleted_before_it_was_read_is_reported_and_the_rest_counted_exactly(
    kafka_settings: KafkaSettings, tmp_path: Path, worker: str
) -> None:
    kafka = kafka_settings
    queues = spread_queues("retained", kafka.partitions, 3)  # every partition loses some
    seed = int(os.environ.get("QW_CHAOS_SEED", time.time_ns() % 10_000))
    msgs, _, _ = generate(queues, seed, hours=36, per_hour=120)
    first, rest = msgs[: len(msgs) // 3], msgs[len(msgs) // 3 :]
    await produce(kafka, first)

    services = Services(scorer_env(kafka, tmp_path / "scorer"), tmp_path / "logs")
    try:
        services.start("scorer")
        await _drained(kafka, services)
        before = await _ends(kafka)  # where each partition's share of `rest` begins
        on: dict[int, list[Msg]] = {p: [] for p in range(kafka.partitions)}
        for m in rest:
            on[partition_of(m["queue_id"], kafka.partitions)].append(m)
        cut = {p: before[p] + len(ms) // 2 for p, ms in on.items()}
        assert all(len(ms) >= 4 for ms in on.values()), {p: len(ms) for p, ms in on.items()}
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            async with _away(services, worker):
                await produce(kafka, rest)
                # the first half of what `rest` put on each partition goes, as retention would
                await admin.delete_records(
                    {
                        TopicPartition(kafka.topics.events, p): RecordsToDelete(c)
                        for p, c in cut.items()
                    }
                )
        finally:
            await admin.close()
        deleted = {id(m) for ms in on.values() for m in ms[: len(ms) // 2]}
        kept = first + [m for m in rest if id(m) not in deleted]

        await _drained(kafka, services)
        reference = Scorer(chaos_settings(kafka), {})
        points: dict[tuple[str, str], dict[str, Any]] = {}
        for offset, b in enumerate(kept):
            out = reference.process(b, time.time(), (0, offset))
            reference.commit(b["queue_id"])
            for pt in out.points:
                key = (pt.queue_id, pt.start.isoformat().replace("+00:00", "Z"))
                points[key] = pt.model_dump(mode="json")
        truth = SimpleNamespace(decisions={q: reference.state(q).decisions_total for q in queues})
        got = await collect(kafka, cast(Truth, truth), queues)
    finally:
        services.stop()

    context = f"{worker}, seed {seed}, cut at {cut} after {before}"
    # what was read is counted exactly: as the pure scorer over the batches not deleted
    for q in queues:
        s, st = got.snapshots[q], reference.state(q)
        assert (s["decisions_total"], s["verdicts_total"], s["late_verdicts_total"]) == (
            st.decisions_total,
            st.verdicts_total,
            st.late_total,
        ), f"{q}: {context}"
    assert set(got.points) == set(points), context
    for key, point in got.points.items():
        want = points[key]
        for f in ("n", "errors", "decisions", "late", "revision"):
            assert point[f] == want[f], f"{key} {f}: {context}"
    # what was lost is said, exactly: one dead letter a partition, with its offsets
    letters = [
        v
        for _, v in await read_topic(
            kafka.bootstrap, kafka.topics.deadletter, expect=10**9, timeout=5
        )
        if v.get("stage") == "scorer"
    ]
    said = {(v["partition"], v["offset"]): v["reason"] for v in letters}
    assert set(said) == {(p, before[p]) for p in cut}, f"{said}: {context}"
    for p, c in cut.items():
        reason = said[(p, before[p])]
        assert f"offsets {before[p]}-{c - 1} of {kafka.topics.events} partition {p}" in reason
        assert f"({c - before[p]} messages) were deleted by the broker" in reason
    log = (tmp_path / "logs" / "scorer.log").read_text(errors="replace")
    assert log.count("were deleted by the broker (its retention)") == len(cut), context
    assert "cannot read offsets" not in log, context
    # the deleted offsets are not also called undelivered messages it read directly
    assert not any(
        f"offsets {b}-" in ln
        for b in before.values()
        for ln in log.splitlines()
        if "were not delivered" in ln
    ), context
