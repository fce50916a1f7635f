"""The admitted-queues log: ``qw.queues.v1``, a compacted topic keyed by queue id.

A record admits its queue (value: who admitted it and when); a tombstone (no value) removes
it. Compaction keeps one record per queue, so the topic stays as small as the set of queues
and a reader that starts from the beginning knows the whole set: every ingest process reads
it at start (before it validates anything) and follows it while it runs, so an admission made
through one process reaches all of them, and survives their restarts.

``AdmissionLog.catch_up`` is a read-your-writes barrier: it returns once the reader has
applied every record the topic held when it was called. Ingest calls it before refusing an
event for an unknown queue, so an event sent after its queue's admission was acknowledged is
never refused for it, whichever process or topic each went through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import codec
from shared.kafka import ensure_topics, make_producer, wait_for_leaders
from shared.settings import KafkaSettings
from shared.topics import queue_key

log = logging.getLogger(__name__)

# (queue id, the record's value or None when the queue was removed)
OnChange = Callable[[str, dict[str, Any] | None], None]


def admission_record(queue_id: str, by: str) -> bytes:
    return codec.dumps(
        {"v": 1, "queue_id": queue_id, "admitted_by": by, "admitted_at": datetime.now(UTC)}
    )


async def admit(producer: AIOKafkaProducer, kafka: KafkaSettings, queue_id: str, by: str) -> None:
    """Admit ``queue_id``; returns once the broker acknowledged it."""
    value = admission_record(queue_id, by)
    await producer.send_and_wait(kafka.topics.queues, value, key=queue_key(queue_id))


async def remove(producer: AIOKafkaProducer, kafka: KafkaSettings, queue_id: str) -> None:
    """Remove ``queue_id``'s run-time admission (a tombstone); returns once acknowledged."""
    await producer.send_and_wait(kafka.topics.queues, None, key=queue_key(queue_id))


async def admit_all(kafka: KafkaSettings, queue_ids: Iterable[str], by: str) -> int:
    """Admit every queue of ``queue_ids`` (the topics created if need be) with a producer of
    its own; returns how many, once all were acknowledged. For tools with the broker's trust
    (``qwatch queues admit``, the simulator, benchmarks): the HTTP call is ingest's way."""
    ids = list(dict.fromkeys(queue_ids))
    await ensure_topics(kafka)
    producer = make_producer(kafka)
    await producer.start()
    try:
        sent = [
            await producer.send(kafka.topics.queues, admission_record(q, by), key=queue_key(q))
            for q in ids
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return len(ids)


class AdmissionLog:
    """Follows ``qw.queues.v1`` from its beginning, handing every change to ``on_change``.
    Not a consumer group: every process reads every record."""

    def __init__(self, kafka: KafkaSettings, on_change: OnChange) -> None:
        self._kafka = kafka
        self._on_change = on_change
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._advanced = asyncio.Condition()
        self._lock = asyncio.Lock()
        self._synced_at = -1.0  # time.monotonic() when the last completed catch-up began
        self.records = 0

    async def start(self) -> None:
        """Assign every partition from the beginning and apply what the topic holds (once
        its leader serves it: on a topic just created, reading at once logs aiokafka ERRORs,
        shared/kafka.py ``wait_for_leaders``)."""
        topic = self._kafka.topics.queues
        # (its partitions from the broker: the topic may have been made with more than one)
        partitions = (await wait_for_leaders(self._kafka, [topic]))[topic]
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._kafka.bootstrap,
            client_id=f"{self._kafka.client_id}-queues",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()
        self._tps = [TopicPartition(topic, p) for p in partitions]
        self._consumer.assign(self._tps)
        await self._consumer.seek_to_beginning(*self._tps)
        ends = await self._consumer.end_offsets(self._tps)
        while await self._behind(ends):
            await self._poll(500)

    async def _behind(self, ends: dict[TopicPartition, int]) -> bool:
        """Has the reader yet to apply records before ``ends``?"""
        assert self._consumer is not None
        for tp in self._tps:
            if await self._consumer.position(tp) < ends[tp]:
                return True
        return False

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def _poll(self, timeout_ms: int) -> None:
        assert self._consumer is not None
        polled = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=5000)
        for records in polled.values():
            for rec in records:
                self._apply(rec.key, rec.value)
        async with self._advanced:
            self._advanced.notify_all()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        queue_id = key.decode("utf-8", "replace")
        record: dict[str, Any] | None = None
        if value is not None:
            try:
                decoded = codec.loads(value)
            except codec.JSONDecodeError:
                log.error("undecodable record for queue %r on the admitted-queues topic", queue_id)
                return
            record = decoded if isinstance(decoded, dict) else {}
        self.records += 1
        self._on_change(queue_id, record)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the topic until ``stop``."""
        while not stop.is_set():
            await self._poll(200)

    async def catch_up(self, timeout_s: float = 5.0) -> bool:
        """Return once every record on the topic when this was called is applied (True), or
        after ``timeout_s`` (False). Concurrent callers share one broker round trip: a
        catch-up that began after this call did serves it too."""
        called = time.monotonic()
        async with self._lock:
            if self._synced_at >= called:
                return True
            began = time.monotonic()
            assert self._consumer is not None
            ends = await self._consumer.end_offsets(self._tps)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    while await self._behind(ends):
                        async with self._advanced:
                            await self._advanced.wait()
                    self._synced_at = began
                    return True
            log.warning("the admitted-queues topic was not read to its end in %g s", timeout_s)
            return False
