"""The raw-topic validator: upstream systems may produce one event per message to the raw
topics. Each message is validated; valid events go on to the events topic grouped per queue,
invalid ones, and those of a queue that is not admitted (``services/ingest/admission.py``), to
the dead-letter topic with their reason and original bytes.

Offsets are committed only after every produce of the poll was acknowledged, so a crash
replays a poll rather than losing it (at-least-once; the scorer deduplicates by id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord, TopicPartition

from services.ingest.admission import QueueGate
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import Publisher
from services.ingest.settings import IngestSettings
from services.ingest.validation import (
    MAX_FUTURE_S,
    EventKind,
    ItemError,
    fast_item,
    floor_for,
    validate_raw,
)
from shared.kafka import make_consumer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PipelineStats:
    consumed: int = 0
    valid: int = 0
    dead_lettered: int = 0
    not_admitted: int = 0  # of dead_lettered: the queue is not admitted


class RawValidator:
    def __init__(
        self,
        settings: IngestSettings,
        publisher: Publisher,
        gate: QueueGate | None = None,
        metrics: IngestMetrics | None = None,
    ) -> None:
        """``gate``: the queues admitted (None: every queue, for tests of other concerns)."""
        self._settings = settings
        self._publisher = publisher
        self._gate = gate
        self._metrics = metrics
        topics = settings.kafka.topics
        self._kinds: dict[str, EventKind] = {
            topics.decisions_raw: "decision",
            topics.verdicts_raw: "verdict",
        }
        self.stats = PipelineStats()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self, ready: asyncio.Event | None = None) -> None:
        s = self._settings
        consumer = make_consumer(
            s.kafka, s.consumer_group, *self._kinds, max_partition_fetch_bytes=4 * 1024 * 1024
        )
        await consumer.start()
        if ready is not None:
            ready.set()
        try:
            while not self._stopping.is_set():
                polled = await self._poll(consumer)
                if not polled:
                    continue
                await self._handle(polled)
                try:
                    await consumer.commit()
                except CommitFailedError as exc:
                    # a rebalance took partitions away mid-poll: their records will be
                    # consumed again by the new owner, and downstream deduplicates by id
                    log.warning("offset commit failed (%s); the poll will be replayed", exc)
        finally:
            await consumer.stop()

    async def _poll(
        self, consumer: AIOKafkaConsumer
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """One micro-batch: the first poll, then more until the linger or the size limit."""
        s = self._settings
        polled: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = await consumer.getmany(
            timeout_ms=s.poll_timeout_ms, max_records=s.poll_max_records
        )
        if not polled:
            return polled
        count = sum(len(v) for v in polled.values())
        deadline = time.monotonic() + s.linger_ms / 1000
        while count < s.poll_max_records and not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = await consumer.getmany(
                timeout_ms=int(left * 1000), max_records=s.poll_max_records - count
            )
            for tp, records in more.items():
                polled.setdefault(tp, []).extend(records)
                count += len(records)
        return polled

    async def _handle(
        self, polled: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        # valid events go straight into their queue's v2 batch (validate_raw): validated
        # from the bytes, times parsed here once, no model and no dump in between
        per_kind: dict[EventKind, dict[str, list[dict[str, Any]]]] = {
            "decision": defaultdict(list),
            "verdict": defaultdict(list),
        }
        horizon = time.time() + MAX_FUTURE_S
        floor = floor_for(self._settings.max_age_days)
        dlq = []
        consumed = 0
        valid: list[tuple[TopicPartition, ConsumerRecord[bytes, bytes], str, dict[str, Any]]] = []
        for tp, records in polled.items():
            consumed += len(records)
            kind = self._kinds[tp.topic]
            for rec in records:
                # the fast path, then (for what it does not take) validate_raw, which tries
                # it again and decides with the models: validate_raw's result either way
                value = rec.value
                fast = None if value is None else fast_item(value, kind, horizon, floor)
                if fast is not None:
                    valid.append((tp, rec, fast[0], fast[1]))
                    continue
                result = validate_raw(value, kind, horizon, floor)
                if isinstance(result, ItemError):
                    dlq.append(await self._dead_letter(tp, rec, result.reason(), result.errors))
                else:
                    valid.append((tp, rec, *result))
        invalid = len(dlq)
        refused = await self._gate.refused(q for _, _, q, _ in valid) if self._gate else set()
        for tp, rec, queue, item in valid:
            if queue in refused:
                assert self._gate is not None
                error = self._gate.policy.error(queue)
                dlq.append(await self._dead_letter(tp, rec, error["msg"], [error]))
            else:
                per_kind[self._kinds[tp.topic]][queue].append(item)
        await self._publisher.publish_items(per_kind["decision"], per_kind["verdict"])
        if dlq:
            await asyncio.gather(*dlq)
        self.stats.consumed += consumed
        self.stats.valid += consumed - len(dlq)
        self.stats.dead_lettered += len(dlq)
        self.stats.not_admitted += len(dlq) - invalid
        if self._metrics is not None:
            self._metrics.count("raw", consumed - len(dlq), invalid, len(dlq) - invalid)
        if dlq:
            log.warning("dead-lettered %d of %d raw messages", len(dlq), consumed)
        if refused:
            log.warning("refused the events of %d queues not admitted", len(refused))

    async def _dead_letter(
        self,
        tp: TopicPartition,
        rec: ConsumerRecord[bytes, bytes],
        reason: str,
        errors: list[dict[str, Any]],
    ) -> asyncio.Future[Any]:
        return await self._publisher.dead_letter(
            reason=reason, errors=errors, value=rec.value, source_topic=tp.topic,
            partition=tp.partition, offset=rec.offset, key=rec.key,
        )  # fmt: skip
