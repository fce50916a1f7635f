"""Fault injection: the broker refuses one of the scorer's sends for real, and nothing is
acknowledged past the batch whose effect it refused.

The scorer acknowledges an input message only once its changelog records and dead letters
are durable (``services/scorer/app.py``); a refused one stops the worker, so that a restart
replays from the committed offset. Here the broker itself refuses: the topic's
``max.message.bytes`` is cut to a few bytes (AlterConfigs) while the worker runs, so every
record batch sent to it fails with MESSAGE_TOO_LARGE.

- ``deadletter``: a malformed message arrives among valid batches; its dead letter is
  refused. The committed offset of its partition must not pass it, the dead-letter topic
  holds nothing, and after the config is restored a new worker dead-letters it exactly once.
- ``changelog``: the table's changelog refuses every write after the first half of the
  backlog was drained. The committed offsets must stop exactly at the first batch of the
  second half, and every offset before them has its queue record in the changelog.

Either way the restarted worker's output is compared exactly with the truth and the pure
scorer (``tests/e2e/chaos.py``).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from services.demo.orchestrator import Services
from services.scorer.settings import ScorerSettings
from shared import codec
from shared.kafka import make_producer
from shared.settings import KafkaSettings
from shared.topics import queue_key
from tests.e2e.chaos import (
    chaos_settings,
    collect,
    compare,
    expected,
    generate,
    produce,
    progress,
    scorer_env,
)
from tests.integration.kafka_helpers import (
    committed_offsets,
    read_all,
    set_topic_config,
    topic_config,
    wait_for_progress,
)

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

QUEUES = [f"refused-{i}" for i in range(4)]
TINY = "64"  # bytes: less than any record batch
STOPPING = "a changelog or dead-letter send failed; stopping"
MALFORMED = b"not an EventBatch"


async def _drained(kafka: KafkaSettings, services: Services) -> None:
    await wait_for_progress(lambda: progress(kafka), services.check)


async def _exit_code(services: Services, kafka: KafkaSettings, timeout: float = 180) -> int:
    """Wait for the scorer worker to exit by itself; its exit status."""
    proc = services.procs["scorer"]
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            log = services.log_dir / "scorer.log"
            letters = await read_all(kafka.bootstrap, kafka.topics.deadletter)
            raise AssertionError(
                f"the worker did not stop within {timeout}s; {len(letters)} dead letters; "
                f"its log ends:\n{log.read_text(errors='replace')[-4000:]}"
            )
        await asyncio.sleep(0.2)
    del services.procs["scorer"]
    return proc.returncode


def _durable_positions(records: list[Any]) -> dict[int, set[int]]:
    """Per events partition, the input offsets whose queue record reached the changelog
    (key ``q|<queue>``, value with ``applied`` = [partition, offset])."""
    out: dict[int, set[int]] = {}
    for r in records:
        if r.value is None or not codec.loads(r.key).startswith("q|"):
            continue
        partition, offset = codec.loads(r.value)["applied"]
        out.setdefault(partition, set()).add(offset)
    return out


@pytest.mark.parametrize("refused", ["deadletter", "changelog"])
async def test_refused_send_stops_the_worker_before_the_refused_batch(
    kafka_settings: KafkaSettings, tmp_path: Path, refused: str
) -> None:
    kafka = kafka_settings
    seed = int(os.environ.get("QW_CHAOS_SEED", time.time_ns() % 10_000))
    msgs, truth, n_events = generate(QUEUES, seed, hours=36, per_hour=200)
    exp = expected(chaos_settings(kafka), msgs)
    half = len(msgs) // 2
    group = kafka.topic_prefix + ScorerSettings(kafka=kafka).app_id
    changelog = f"{group}-state-changelog"
    target = kafka.topics.deadletter if refused == "deadletter" else changelog
    log = tmp_path / "logs" / "scorer.log"
    services = Services(scorer_env(kafka, tmp_path / "scorer"), tmp_path / "logs")
    try:
        await produce(kafka, msgs[:half])
        services.start("scorer")
        await _drained(kafka, services)
        # the worker is idle, everything so far acknowledged: now the broker refuses
        original = await topic_config(kafka.bootstrap, target)
        await set_topic_config(kafka.bootstrap, target, {**original, "max.message.bytes": TINY})
        first = await committed_offsets(kafka.bootstrap, group, kafka.topics.events)
        if refused == "deadletter":
            await produce(kafka, msgs[half : half + 40])
            producer = make_producer(kafka)
            await producer.start()
            try:
                meta = await producer.send_and_wait(
                    kafka.topics.events, MALFORMED, key=queue_key(QUEUES[1])
                )
            finally:
                await producer.stop()
            refused_at = {meta.partition: meta.offset}
            await produce(kafka, msgs[half + 40 :])
        else:
            refused_at = dict(first)
            await produce(kafka, msgs[half:])

        code = await _exit_code(services, kafka)
        text = log.read_text(errors="replace")
        lines = [ln for ln in text.splitlines() if STOPPING in ln]
        assert code != 0, f"the worker exited 0:\n{text[-3000:]}"
        assert lines, f"no line '{STOPPING}' in the log:\n{text[-3000:]}"
        assert "MessageSizeTooLarge" in lines[0], lines[0]
        committed = await committed_offsets(kafka.bootstrap, group, kafka.topics.events)
        for partition, offset in refused_at.items():
            assert first[partition] <= committed[partition] <= offset, (
                f"partition {partition}: committed {committed[partition]}, refused at {offset}"
            )
        if refused == "changelog":
            assert committed == first, "nothing after the refusal may be committed"
            durable = _durable_positions(await read_all(kafka.bootstrap, changelog))
            for partition, offset in committed.items():
                assert set(range(offset)) <= durable[partition], f"partition {partition}"
                assert max(durable[partition]) < refused_at[partition]
        else:
            assert await read_all(kafka.bootstrap, kafka.topics.deadletter) == []

        # the broker accepts again: a new worker replays from the committed offsets
        await set_topic_config(kafka.bootstrap, target, original)
        services.start("scorer")
        await _drained(kafka, services)
        got = await collect(kafka, truth, QUEUES)
        letters = await read_all(kafka.bootstrap, kafka.topics.deadletter)
    finally:
        services.stop()

    context = f"seed {seed}, {refused} refused at {refused_at}, committed {committed}"
    lost, doubled = compare(got, truth, exp, QUEUES, context)
    if refused == "deadletter":
        (letter,) = [codec.loads(r.value) for r in letters]
        assert (letter["partition"], letter["offset"]) == (meta.partition, meta.offset), letter
    else:
        assert letters == []
    print(
        f"\nrefused {refused} send: worker exited {code} with '{lines[0][-200:]}'; committed "
        f"{committed} (refused batch at {refused_at}); after restart {n_events:,} events in "
        f"{len(msgs):,} batches, {len(got.points)} subgroups and {len(exp.breaches)} breaches "
        f"compared: lost {lost}, doubled {doubled} (seed {seed})"
    )
