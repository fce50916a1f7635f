"""Play a ``Simulation`` into Kafka's raw topics (as upstream systems would), paced by a
time-compression factor: ``speed`` simulated seconds per real second."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.simulator.model import SimConfig, Simulation
from shared import admission, codec
from shared.kafka import ensure_topics, make_producer
from shared.settings import KafkaSettings
from shared.topics import queue_key


@dataclass(slots=True)
class SimProgress:
    sim_time: float = 0.0
    sim_start: float = 0.0
    decisions: int = 0
    verdicts: int = 0
    invalid: int = 0
    done: bool = False
    errors_by_queue: Counter[str] = field(default_factory=Counter)
    reviewed_by_queue: Counter[str] = field(default_factory=Counter)

    @property
    def sim_elapsed_h(self) -> float:
        return (self.sim_time - self.sim_start) / 3600.0


def _invalid_event(i: int) -> bytes:
    """Malformed input upstream systems do send: not JSON, or a verdict missing a field."""
    if i % 2 == 0:
        return (
            b'{"kind": "verdict", "verdict_id": "broken-'
            + str(i).encode()
            + b'", "outcome": "maybe"'
        )
    return codec.dumps({"kind": "decision", "decision_id": f"bad-{i}", "queue_id": "spam-en"})


async def play(
    cfg: SimConfig,
    kafka: KafkaSettings,
    *,
    duration_s: float,
    speed: float,
    invalid_every: int = 0,
    progress: SimProgress | None = None,
    on_progress: Callable[[SimProgress], None] | None = None,
    stop: asyncio.Event | None = None,
    admit: bool = False,
) -> SimProgress:
    """Produce the simulation's events; returns when all were acknowledged.

    ``speed`` 0 means as fast as possible (for benchmarks and tests). ``admit``: admit the
    simulated queues first (on the admitted-queues topic, as an operator onboarding them
    would), so an ingest running with the default QW_INGEST_QUEUES=admitted takes them.
    """
    topics = kafka.topics
    await ensure_topics(kafka)
    prog = progress or SimProgress()
    sim = Simulation(cfg)
    if admit:
        await admission.admit_all(kafka, (q.queue_id for q in sim.queues), "simulator")
    prog.sim_start = prog.sim_time = sim.t0
    producer = make_producer(kafka, linger_ms=20)
    await producer.start()
    pending: list[asyncio.Future[Any]] = []
    real_start = time.monotonic()
    last_report = 0.0
    try:
        for i, (emit, ev) in enumerate(sim.events(duration_s)):
            if stop is not None and stop.is_set():
                break
            if speed > 0:
                delay = real_start + (emit - sim.t0) / speed - time.monotonic()
                if delay > 0.005:
                    await asyncio.gather(*pending)
                    pending.clear()
                    await asyncio.sleep(delay)
            topic = topics.decisions_raw if ev["kind"] == "decision" else topics.verdicts_raw
            pending.append(
                await producer.send(topic, codec.dumps(ev), key=queue_key(ev["queue_id"]))
            )
            prog.sim_time = emit
            if ev["kind"] == "decision":
                prog.decisions += 1
            else:
                prog.verdicts += 1
                if ev["sample_type"] == "random":
                    prog.reviewed_by_queue[ev["queue_id"]] += 1
                    prog.errors_by_queue[ev["queue_id"]] += ev["outcome"] == "incorrect"
            if invalid_every and i % invalid_every == invalid_every - 1:
                pending.append(await producer.send(topic, _invalid_event(i), key=b"bad"))
                prog.invalid += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
            now = time.monotonic()
            if on_progress is not None and now - last_report >= 0.5:
                on_progress(prog)
                last_report = now
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    prog.done = True
    if on_progress is not None:
        on_progress(prog)
    return prog
