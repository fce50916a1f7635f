"""Chaos: the scorer killed with SIGKILL while it drains a backlog, and every count exact.

A generator with known truth (``tests/e2e/chaos.py``) writes a backlog of per-queue batches
(duplicates, verdicts before their decisions, verdicts long after their subgroup closed) to
the events topic of a real broker. A scorer worker process drains it and is killed (SIGKILL,
no clean-up) at random moments of the catch-up, several times, and restarted. Then what it
published is compared, exactly, with the truth:

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
from pathlib import Path

import pytest

from services.demo.orchestrator import Services
from shared.settings import KafkaSettings
from tests.e2e.chaos import (
    chaos_settings,
    collect,
    compare,
    expected,
    generate,
    produce,
    progress,
    scorer_env,
    written,
)

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

QUEUES = [f"chaos-{i}" for i in range(8)]
KILLS = 3
RESUME_KILL = 1  # this kill waits for commits of the worker's current life first ...
RESUME_PAST = 20  # ... past this many batches


async def test_scorer_killed_during_catch_up_counts_exactly(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    seed = int(os.environ.get("QW_CHAOS_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    msgs, truth, n_events = generate(QUEUES, seed, hours=60, per_hour=250)
    assert n_events > 100_000
    exp = expected(chaos_settings(kafka_settings), msgs)
    await produce(kafka_settings, msgs)

    kills: list[str] = []
    services = Services(scorer_env(kafka_settings, tmp_path / "scorer"), tmp_path / "logs")
    deadline = time.monotonic() + 600
    try:
        services.start("scorer")
        for k in range(KILLS):
            # once the worker (re)started and applied a random share of the backlog again
            # (its changelog grows, a few records a batch), at a random moment after; before
            # the second kill, also once it has committed RESUME_PAST batches in this life,
            # so that a restart resumes mid-way from a committed offset (a worker draining a
            # backlog commits as it goes: services/scorer/app.py, bound_commit_flush; it
            # used to commit one batch and then nothing until the end of the backlog)
            if k == RESUME_KILL:
                since, _ = await progress(kafka_settings)
                while True:
                    services.check()
                    done, end = await progress(kafka_settings)
                    if done >= since + RESUME_PAST:
                        break
                    assert done < end, f"drained from {since} with no commit in between"
                    assert time.monotonic() < deadline, f"no commit past {since} in this life"
                    await asyncio.sleep(0.1)
                resumed_from = since
            target = await written(kafka_settings) + rng.randint(1, 800)
            while True:
                services.check()
                now = await written(kafka_settings)
                if now >= target:
                    break
                done, end = await progress(kafka_settings)
                assert done < end, f"the backlog was drained before kill {len(kills) + 1}"
                assert time.monotonic() < deadline, f"no work past {now} changelog records"
                await asyncio.sleep(0.1)
            await asyncio.sleep(rng.uniform(0, 0.5))
            done, end = await progress(kafka_settings)
            assert done < end, f"the backlog was drained before kill {len(kills) + 1}"
            if k == RESUME_KILL:
                assert done >= resumed_from + RESUME_PAST, f"kill {k + 1}: no commits in this life"
            services.end("scorer", signal.SIGKILL)
            kills.append(f"{done}/{end}")
            services.start("scorer")
        while True:
            services.check()
            done, end = await progress(kafka_settings)
            if done >= end:
                break
            assert time.monotonic() < deadline, f"scorer did not catch up: {done}/{end}"
            await asyncio.sleep(0.5)
        got = await collect(kafka_settings, truth, QUEUES)
    finally:
        services.stop()

    context = f"seed {seed}, killed at committed/end {kills}"
    assert len(kills) == KILLS
    lost, doubled = compare(got, truth, exp, QUEUES, context)
    log = (tmp_path / "logs" / "scorer.log").read_text(errors="replace")
    gaps = log.count("were not delivered")
    print(
        f"\nchaos ({gaps} undelivered ranges read directly): {n_events:,} events in "
        f"{len(msgs):,} batches, {KILLS} SIGKILLs at {kills}, {len(got.points)} subgroups and "
        f"{len(exp.breaches)} breaches compared: lost {lost}, doubled {doubled} ({context})"
    )
