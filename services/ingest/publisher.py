"""Produce validated events to the events topic and bad input to the dead-letter topic."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from shared import batches, deadletter
from shared.events import Decision, Verdict
from shared.topics import Topics, queue_key


class Publisher:
    def __init__(self, producer: AIOKafkaProducer, topics: Topics) -> None:
        self._producer = producer
        self._topics = topics

    async def publish(self, events: Sequence[Decision | Verdict]) -> int:
        """Produce events grouped per queue; returns once the broker acknowledged all."""
        await self._send(batches.group_by_queue(events))
        return len(events)

    async def publish_items(
        self,
        decisions: Mapping[str, list[dict[str, Any]]],
        verdicts: Mapping[str, list[dict[str, Any]]],
    ) -> None:
        """Produce events already in batch form (``shared.batches.item``), per queue;
        returns once the broker acknowledged all."""
        await self._send(batches.pack(decisions, verdicts))

    async def _send(self, out: list[batches.EventBatch]) -> None:
        # every batch handed to the producer first (it packs them into as few requests as
        # it can), then one wait for all acknowledgements
        futures = [
            await self._producer.send(
                self._topics.events, value=batches.encode(b), key=queue_key(b["queue_id"])
            )
            for b in out
        ]
        if futures:
            await asyncio.gather(*futures)

    async def dead_letter(
        self,
        *,
        reason: str,
        errors: list[dict[str, Any]],
        value: bytes | None,
        source_topic: str | None,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
    ) -> asyncio.Future[Any]:
        """Send one record to the dead-letter topic: the reason and the original bytes
        (``source_topic`` None: an HTTP request's item)."""
        body = deadletter.record(
            stage="ingest", reason=reason, errors=errors, value=value, source_topic=source_topic,
            partition=partition, offset=offset, key=key,
        )  # fmt: skip
        fut: asyncio.Future[Any] = await self._producer.send(
            self._topics.deadletter, value=body, key=key
        )
        return fut
