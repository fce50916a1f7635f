"""The raw-topic validator: upstream systems may produce one event per message to the raw
topics. Each message is validated; valid events go on to the events topic grouped per queue,
invalid ones, and those of a queue that is not admitted (``services/ingest/admission.py``), to
the dead-letter topic with their reason and original bytes.

Offsets are committed only after every produce of the poll was acknowledged, so a crash
replays a poll rather than losing it (at-least-once; the scorer deduplicates by id).

**Neither raw topic runs ahead of the other.** A verdict whose decision has not been
counted waits in the scorer, up to ``QW_SCORER_PENDING_MAX`` a queue; past it, it is dropped
(and counted as such). Read live, both raw topics move with the clock. Read from a backlog
(a catch-up after an outage, a backfill), the consumer takes both topics at about the same
rate in *messages*, and the verdicts topic, with a fraction of the decisions' messages,
runs hours ahead of them in time: 2M backlogged events over 20 queues dropped 20% of the
verdicts (bench/pipeline.py). So while this process's decision partitions have a backlog,
each verdict partition whose newest verdict (by event time, ``reviewed_at``) is more than
``verdict_lead_s`` ahead of the newest decision (``decided_at``) read from the most behind
of those decision partitions is paused, and resumed once they catch up
(``VerdictAlignment``). The other way round, one fetch of a backlog can hold a day of a small
operation's decisions and none of its verdicts; the scorer's clock would pass the subgroups'
grace before their verdicts came, which would then count as late. So while this process's
verdict partitions have a backlog, the decisions of a poll more than ``decision_lead_s``
ahead of the most behind of them are held back: their partition is sought back to the first
of them, paused, and read again once the verdicts catch up (``VerdictAlignment.hold_back``).
The most behind partition of both topics is never held, so the waits always end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord, TopicPartition

from services.ingest.admission import QueueGate
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import Publisher
from services.ingest.settings import IngestSettings
from services.ingest.validation import (
    MAX_FUTURE_S,
    TIME_FIELD,
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
        self.alignment = VerdictAlignment(
            topics.decisions_raw, settings.verdict_lead_s, settings.decision_lead_s
        )
        self._published = (0, 0)  # the alignment's pauses and holds in the metrics so far

    def stop(self) -> None:
        self._stopping.set()

    def publish_alignment(self) -> None:
        """The alignment's partitions paused and held now, and how many times each was done
        since the last call, to the metrics."""
        if self._metrics is None:
            return
        a, m = self.alignment, self._metrics
        m.verdicts_paused.set(a.paused)
        m.decisions_held.set(a.held)
        m.verdict_pauses.inc(a.pauses - self._published[0])
        m.decision_holds.inc(a.holds - self._published[1])
        self._published = (a.pauses, a.holds)

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
                newest, read_to = await self._handle(polled, consumer) if polled else ({}, {})
                await self.alignment.update(consumer, read_to, newest)
                self.publish_alignment()
                if not polled:
                    continue
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
        self,
        polled: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        consumer: AIOKafkaConsumer | None = None,
    ) -> tuple[dict[TopicPartition, float], dict[TopicPartition, int]]:
        """Validate and publish a poll; returns each partition's newest valid event time
        and the offset after the last record handled. With ``consumer``, the decisions of
        the poll that run ahead of a verdicts backlog are not handled: their partition is
        sought back to the first of them and paused (``VerdictAlignment.hold_back``)."""
        # valid events go straight into their queue's v2 batch (validate_raw): validated
        # from the bytes, times parsed here once, no model and no dump in between
        per_kind: dict[EventKind, dict[str, list[dict[str, Any]]]] = {
            "decision": defaultdict(list),
            "verdict": defaultdict(list),
        }
        horizon = time.time() + MAX_FUTURE_S
        floor = floor_for(self._settings.max_age_days)
        dlq = []
        valid: list[tuple[TopicPartition, ConsumerRecord[bytes, bytes], str, dict[str, Any]]] = []
        bad: list[tuple[TopicPartition, ConsumerRecord[bytes, bytes], ItemError]] = []
        newest: dict[TopicPartition, float] = {}
        times: dict[TopicPartition, list[tuple[int, float]]] = {}  # (offset, time) of the valid
        for tp, records in polled.items():
            kind = self._kinds[tp.topic]
            first = len(valid)
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
                    bad.append((tp, rec, result))
                else:
                    valid.append((tp, rec, *result))
            if len(valid) > first:
                field = TIME_FIELD[kind]
                times[tp] = [(v[1].offset, v[3][field]) for v in valid[first:]]
        read_to = {tp: records[-1].offset + 1 for tp, records in polled.items() if records}
        held: dict[TopicPartition, int] = {}
        if consumer is not None:
            held = await self.alignment.hold_back(consumer, read_to, times)
        if held:  # the partition was sought back there: not handled now, read again later
            valid = [v for v in valid if v[1].offset < held.get(v[0], v[1].offset + 1)]
            bad = [b for b in bad if b[1].offset < held.get(b[0], b[1].offset + 1)]
            read_to.update(held)
        for tp, offsets in times.items():
            kept = [t for offset, t in offsets if offset < held.get(tp, offset + 1)]
            if kept:
                newest[tp] = max(kept)
        consumed = sum(
            sum(1 for r in records if r.offset < held[tp]) if tp in held else len(records)
            for tp, records in polled.items()
        )
        for tp, rec, item_error in bad:
            dlq.append(await self._dead_letter(tp, rec, item_error.reason(), item_error.errors))
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
        return newest, read_to

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


class VerdictAlignment:
    """Keeps the two raw topics within a lead of each other in event time while one has a
    backlog (module docstring): verdict partitions ahead of a decisions backlog are paused
    (``update``), and the decisions of a poll ahead of a verdicts backlog are held back
    (``hold_back``). Times are event times (epoch s: a decision's decided_at, a verdict's
    reviewed_at), the newest valid one read per partition. (Kafka record times would not
    do: a backlog produced at full speed packs hours of event time into each second.)

    A partition's *place* is the time it has reached: the newest valid time read from it,
    or, for a decision partition held back, the time of its first record not handled
    (where it stands); -inf for one not read yet. Each side waits only for the other's
    partitions that have a backlog, and only while it is more than its lead ahead of the
    most behind of them, so one side can always move: the most behind partition of all is
    never held (its place is at most the other side's minimum), and a partition not read
    yet is never held (its place is -inf)."""

    def __init__(self, decisions_topic: str, lead_s: float, decision_lead_s: float = 0.0) -> None:
        self._decisions = decisions_topic
        self._lead = lead_s
        self._decision_lead = decision_lead_s
        self._newest: dict[TopicPartition, float] = {}
        self._read_to: dict[TopicPartition, int] = {}  # the next offset, after what was read
        # decision partitions held back: the time of the first record not handled
        self._held: dict[TopicPartition, float] = {}
        self.pauses = 0  # verdict partitions paused so far (a partition each time)
        self.paused = 0  # ... and now
        self.holds = 0  # decision partitions held back so far (a partition each time)
        self.held = 0  # ... and now

    def _place(self, tp: TopicPartition) -> float:
        held = self._held.get(tp)
        return held if held is not None else self._newest.get(tp, -math.inf)

    async def _behind(self, consumer: AIOKafkaConsumer, decisions: bool) -> float | None:
        """The place of the most behind of the kind's partitions that have a backlog (None:
        none has one)."""
        behind: float | None = None
        for tp in consumer.assignment():
            if (tp.topic == self._decisions) != decisions:
                continue
            high, at_offset = consumer.highwater(tp), self._read_to.get(tp)
            if high is None:
                continue  # no fetch of it answered yet: no backlog known to wait for
            if at_offset is None:
                # nothing read from it yet (the other kind may come first from a fetch): where
                # it starts. A fetch was answered, so the position is known and this does not
                # wait; one that moved away since (or, bounded, one that would) is skipped
                with contextlib.suppress(IllegalStateError, TimeoutError):
                    start: int = await asyncio.wait_for(consumer.position(tp), 1.0)
                    at_offset = self._read_to[tp] = start
                if at_offset is None:
                    continue
            if at_offset >= high - 1:
                # caught up: the last offset may be a transaction's commit marker, which is
                # never delivered, so a quiet partition of a transactional producer would
                # otherwise have a "backlog" of one until its next record, and hold the
                # other topic back that long (a live queue's decisions, for an hour)
                continue
            at = self._place(tp)
            behind = at if behind is None else min(behind, at)
        return behind

    def _forget_moved(self, consumer: AIOKafkaConsumer) -> set[TopicPartition]:
        assigned: set[TopicPartition] = consumer.assignment()
        for seen in (self._newest, self._read_to, self._held):
            for tp in [tp for tp in seen if tp not in assigned]:
                del seen[tp]  # (moved to another process)
        return assigned

    async def hold_back(
        self,
        consumer: AIOKafkaConsumer,
        read_to: dict[TopicPartition, int],
        times: dict[TopicPartition, list[tuple[int, float]]],
    ) -> dict[TopicPartition, int]:
        """Before a poll is handled: ``read_to``, the offset after its last record of each
        partition; ``times``, the (offset, event time) of its valid records. Returns the
        decision partitions whose records from an offset on run more than the decision
        lead ahead of a verdicts backlog, with that offset: each is sought back there and
        paused (``update`` resumes it once the verdicts catch up), and the caller handles
        none of its records from there. A poll can hold a day of a small operation's
        decisions and none of its verdicts: handled, the scorer's clock would pass their
        subgroups' grace before the verdicts arrive."""
        if self._decision_lead <= 0:
            return {}
        self._forget_moved(consumer)
        self._read_to.update(read_to)
        for tp, offsets in times.items():  # the verdicts' places, this poll's included
            if tp.topic != self._decisions:
                t = max(t for _, t in offsets)
                self._newest[tp] = max(self._newest.get(tp, t), t)
        behind = await self._behind(consumer, decisions=False)
        if behind is None:
            return {}
        bound = behind + self._decision_lead
        held: dict[TopicPartition, int] = {}
        for tp, offsets in times.items():
            if tp.topic != self._decisions:
                continue
            first = next(((o, t) for o, t in offsets if t > bound), None)
            if first is None:
                continue
            offset, t = first
            consumer.seek(tp, offset)
            self._held[tp] = t
            self._read_to[tp] = offset
            held[tp] = offset
        if held:
            consumer.pause(*held)
            self.holds += len(held)
            log.debug(
                "decisions ahead of the verdicts by more than %gs: %s held back until they "
                "catch up",
                self._decision_lead, ", ".join(f"{tp.topic}[{tp.partition}]" for tp in held),
            )  # fmt: skip
        return held

    async def update(
        self,
        consumer: AIOKafkaConsumer,
        read_to: dict[TopicPartition, int],
        newest: dict[TopicPartition, float],
    ) -> None:
        """After a poll: ``read_to``, the offset after the last record handled of each of
        its partitions; ``newest``, each one's newest valid event time handled."""
        self._read_to.update(read_to)
        for tp, t in newest.items():
            self._newest[tp] = max(self._newest.get(tp, t), t)
        if self._lead <= 0 and self._decision_lead <= 0:
            return
        assigned = self._forget_moved(consumer)
        paused = consumer.paused()
        ahead: list[TopicPartition] = []
        resume: list[TopicPartition] = []
        if self._lead > 0:
            behind = await self._behind(consumer, decisions=True)
            for tp in assigned:
                if tp.topic == self._decisions:
                    continue
                lead = behind is not None and self._newest.get(tp, -math.inf) > behind + self._lead
                if lead and tp not in paused:
                    ahead.append(tp)
                elif not lead and tp in paused:
                    resume.append(tp)
        if self._held:
            verdicts = await self._behind(consumer, decisions=False)
            for tp, t in list(self._held.items()):
                if verdicts is None or t <= verdicts + self._decision_lead:
                    del self._held[tp]  # read again from where it was held
                    if tp in paused:
                        resume.append(tp)
        self.paused = (
            sum(1 for tp in paused if tp.topic != self._decisions)
            + len(ahead)
            - sum(1 for tp in resume if tp.topic != self._decisions)
        )
        self.held = len(self._held)
        if ahead:
            consumer.pause(*ahead)
            self.pauses += len(ahead)
            log.debug(
                "verdicts ahead of the decisions by more than %gs: %s paused until they catch up",
                self._lead, ", ".join(f"{tp.topic}[{tp.partition}]" for tp in ahead),
            )  # fmt: skip
        if resume:
            consumer.resume(*resume)
            log.debug("%s resumed", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in resume))
