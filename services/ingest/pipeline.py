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
verdicts (by event time, ``reviewed_at``) more than ``verdict_lead_s`` ahead of the most
behind of those decision partitions (``decided_at``) are not handled yet. The other way
round, one fetch of a backlog can hold a day of a small operation's decisions and none of
its verdicts; the scorer's clock would pass the subgroups' grace before their verdicts came,
which would then count as late. So while this process's verdict partitions have a backlog,
decisions more than ``decision_lead_s`` ahead of the most behind of them are not handled
yet. Both are decided record by record, on both topics' records in hand at once
(``RawAlignment.cut``): the records that wait stay in hand, in their partition's order,
and their partition is paused until the other topic catches up (``RawAlignment.hold``).
Offsets are committed only up to the first record that waits, so a crash or a rebalance
loses none (the partition's owner reads them again); records in hand from before a
rebalance are dropped for that reason. The most behind partition of both topics is never
held, so the waits always end.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
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


#: a valid raw event in hand: its partition, record, queue and item (validate_raw's)
Valid = tuple[TopicPartition, ConsumerRecord[bytes, bytes], str, dict[str, Any]]
#: an invalid one, with why
Bad = tuple[TopicPartition, ConsumerRecord[bytes, bytes], ItemError]


@dataclass(slots=True)
class Waiting:
    """A partition's records read and validated but not handled yet (``RawAlignment.cut``),
    in offset order: kept in hand, not read again."""

    valid: list[Valid]
    bad: list[Bad]
    times: list[tuple[int, float]]  # (offset, event time) of the valid ones
    first: int  # the offset of the first: the partition's committed offset meanwhile
    read_to: int  # the offset after the last


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]
    """Counts the consumer's rebalances: records in hand from before one are dropped (the
    partition's owner, this process or another, reads them again from the committed offset,
    which is never past them)."""

    def __init__(self) -> None:
        self.count = 0

    async def on_partitions_revoked(self, revoked: object) -> None:
        self.count += 1

    async def on_partitions_assigned(self, assigned: object) -> None:
        self.count += 1


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
        self.alignment = RawAlignment(
            topics.decisions_raw, settings.verdict_lead_s, settings.decision_lead_s
        )
        self._published = (0, 0)  # the alignment's pauses and holds in the metrics so far
        self._waiting: dict[TopicPartition, Waiting] = {}  # records in hand, not handled
        self._commit_at: dict[TopicPartition, int] = {}  # handled since the last commit
        # what this process committed last, in this assignment (a poll that handles none
        # of the records in hand commits nothing again)
        self._committed: tuple[int, dict[TopicPartition, int]] = (0, {})
        self._rebalances = _Rebalances()

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
            s.kafka, s.consumer_group, max_partition_fetch_bytes=4 * 1024 * 1024
        )
        consumer.subscribe(list(self._kinds), listener=self._rebalances)
        await consumer.start()
        if ready is not None:
            ready.set()
        try:
            while not self._stopping.is_set():
                rebalances = self._rebalances.count
                polled = await self._poll(consumer)
                if polled or self._waiting:
                    await self._handle(polled, consumer, rebalances)
                self.publish_alignment()
                if self._commit_at:
                    await self._commit(consumer)
        finally:
            await consumer.stop()

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit each partition's offset after what was handled of it: never past a
        record in hand that waits."""
        assigned = consumer.assignment()
        rebalances, committed = self._committed
        if rebalances != self._rebalances.count:
            committed = {}
        offsets = {
            tp: o for tp, o in self._commit_at.items() if tp in assigned and committed.get(tp) != o
        }
        self._commit_at.clear()
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
            self._committed = (self._rebalances.count, {**committed, **offsets})
        except (CommitFailedError, IllegalStateError) as exc:
            # a rebalance took partitions away mid-poll: their records will be
            # consumed again by the new owner, and downstream deduplicates by id
            log.warning("offset commit failed (%s); the poll will be replayed", exc)

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
        rebalances: int = 0,
    ) -> int:
        """Validate and publish a poll, and the records still in hand from earlier ones;
        returns how many records were handled. With ``consumer``, those of a partition that
        run ahead of the other raw topic's backlog are not handled: they stay in hand and
        their partition is paused (``RawAlignment``) until it catches up. ``rebalances``:
        the consumer's rebalances when the poll began (records in hand from before one are
        dropped, read again from the committed offset)."""
        # valid events go straight into their queue's v2 batch (validate_raw): validated
        # from the bytes, times parsed here once, no model and no dump in between
        per_kind: dict[EventKind, dict[str, list[dict[str, Any]]]] = {
            "decision": defaultdict(list),
            "verdict": defaultdict(list),
        }
        horizon = time.time() + MAX_FUTURE_S
        floor = floor_for(self._settings.max_age_days)
        dlq = []
        if consumer is not None and self._rebalances.count != rebalances:
            self._drop_waiting(consumer)
        # in hand, per partition in offset order: the records that waited first
        valids: dict[TopicPartition, list[Valid]] = {}
        bads: dict[TopicPartition, list[Bad]] = {}
        times: dict[TopicPartition, list[tuple[int, float]]] = {}  # (offset, time) of the valid
        read_to: dict[TopicPartition, int] = {}
        for tp, w in self._waiting.items():
            valids[tp], bads[tp], times[tp], read_to[tp] = w.valid, w.bad, w.times, w.read_to
        for tp, records in polled.items():
            if not records:
                continue
            kind = self._kinds[tp.topic]
            valid = valids.setdefault(tp, [])
            bad = bads.setdefault(tp, [])
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
                times.setdefault(tp, []).extend((v[1].offset, v[3][field]) for v in valid[first:])
            read_to[tp] = records[-1].offset + 1
        self._waiting = {}
        cut: dict[TopicPartition, int] = {}
        if consumer is not None:
            cut = await self.alignment.cut(consumer, read_to, {t: o for t, o in times.items() if o})
        for tp, at in cut.items():  # from there, they wait in hand (each list in offset order)
            v, b, t = valids[tp], bads[tp], times[tp]
            i = bisect.bisect_left(v, at, key=_offset)
            j = bisect.bisect_left(b, at, key=_offset)
            k = bisect.bisect_left(t, at, key=_first)
            # (``at`` is a valid record's: the bad ones before it are handled)
            self._waiting[tp] = Waiting(v[i:], b[j:], t[k:], at, read_to[tp])
            valids[tp], bads[tp] = v[:i], b[:j]
        valid = [v for vs in valids.values() for v in vs]
        bad = [b for bs in bads.values() for b in bs]
        for tp, end in read_to.items():
            held = self._waiting.get(tp)
            self._commit_at[tp] = end if held is None else held.first
        consumed = len(valid) + len(bad)
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
        if consumer is not None:
            if self._rebalances.count != rebalances:
                self._drop_waiting(consumer)
            self.alignment.hold(consumer, set(self._waiting))
        return consumed

    def _drop_waiting(self, consumer: AIOKafkaConsumer) -> None:
        """After a rebalance: the records in hand are dropped, and each of their partitions
        still assigned here is sought back to the first of them, so that they are read again.
        (aiokafka sets a partition assigned again to its committed offset, which is never
        past them, but records fetched after that may be among them too: seeking back is
        right either way, and one taken away is read by its new owner from that offset.)"""
        assigned = consumer.assignment()
        for tp, w in self._waiting.items():
            if tp in assigned:
                with contextlib.suppress(IllegalStateError):
                    consumer.seek(tp, w.first)
                self.alignment.rewound(tp, w.first)
        self._waiting.clear()

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


def _offset(entry: Valid | Bad) -> int:
    offset: int = entry[1].offset
    return offset


def _first(pair: tuple[int, float]) -> int:
    return pair[0]


def _lower(behind: dict[bool, float | None], side: bool, place: float) -> None:
    """The side's most behind place, ``place`` counted."""
    at = behind[side]
    behind[side] = place if at is None else min(at, place)


class RawAlignment:
    """Keeps the two raw topics within a lead of each other in event time while one has a
    backlog (module docstring), record by record: ``cut`` says, for the records in hand,
    from which offset each partition's must wait; ``hold`` pauses the partitions that keep
    records in hand and resumes the others. Times are event times (epoch s: a decision's
    decided_at, a verdict's reviewed_at). (Kafka record times would not do: a backlog
    produced at full speed packs hours of event time into each second.)

    A partition's *place* is the time it has reached: for one cut, the time of its first
    record that waits (where it stands); for one with records in hand, the newest time of
    them and of those handled before; for one with none, the newest time handled from it,
    -inf if none yet. Each side waits only for the other's partitions that have a backlog
    (records in hand that wait, or unread offsets on the broker), and only while it is more
    than its lead ahead of the most behind of them. The records waiting stay in hand, not
    read again, so both sides' records in hand count at once: each poll moves both sides by
    what was read, not by one lead. The waits always end: the partition of both topics
    that stands furthest behind is never cut, so either it has records in hand, which are
    handled, or it has none and is not paused, and is read."""

    def __init__(self, decisions_topic: str, lead_s: float, decision_lead_s: float = 0.0) -> None:
        self._decisions = decisions_topic
        self._leads = {True: decision_lead_s, False: lead_s}  # by "is a decision partition"
        self._newest: dict[TopicPartition, float] = {}  # the newest time handled
        self._read_to: dict[TopicPartition, int] = {}  # the next offset, after what was read
        self._holding: set[TopicPartition] = set()  # partitions with records waiting
        self.pauses = 0  # verdict partitions that had records wait so far (one each time)
        self.paused = 0  # ... and now
        self.holds = 0  # decision partitions that had records wait so far
        self.held = 0  # ... and now

    @property
    def on(self) -> bool:
        return self._leads[True] > 0 or self._leads[False] > 0

    async def _backlog(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> bool:
        """Whether the broker holds offsets of ``tp`` not read yet (never, for a partition
        not assigned here now: a rebalance may take it away while a poll is handled)."""
        if tp not in consumer.assignment():
            return False  # (and aiokafka's highwater asserts it is)
        high, at_offset = consumer.highwater(tp), self._read_to.get(tp)
        if high is None:
            return False  # no fetch of it answered yet: no backlog known to wait for
        if at_offset is None:
            # nothing read from it yet (the other kind may come first from a fetch): where
            # it starts. A fetch was answered, so the position is known and this does not
            # wait; one that moved away since (or, bounded, one that would) is skipped
            with contextlib.suppress(IllegalStateError, TimeoutError):
                start: int = await asyncio.wait_for(consumer.position(tp), 1.0)
                at_offset = self._read_to[tp] = start
            if at_offset is None:
                return False
        # caught up: the last offset may be a transaction's commit marker, which is never
        # delivered, so a quiet partition of a transactional producer would otherwise have a
        # "backlog" of one until its next record, and hold the other topic back that long
        # (a live queue's decisions, for an hour)
        return bool(at_offset < high - 1)

    def rewound(self, tp: TopicPartition, offset: int) -> None:
        """``tp`` is read again from ``offset`` (records in hand dropped): its backlog
        counts from there."""
        self._read_to[tp] = offset

    def _forget_moved(self, consumer: AIOKafkaConsumer) -> set[TopicPartition]:
        assigned: set[TopicPartition] = consumer.assignment()
        for seen in (self._newest, self._read_to):
            for tp in [tp for tp in seen if tp not in assigned]:
                del seen[tp]  # (moved to another process)
        return assigned

    async def cut(
        self,
        consumer: AIOKafkaConsumer,
        read_to: dict[TopicPartition, int],
        times: dict[TopicPartition, list[tuple[int, float]]],
    ) -> dict[TopicPartition, int]:
        """The records in hand: ``read_to``, the offset after the last of each partition;
        ``times``, the (offset, event time) of the valid ones, in offset order. Returns the
        partitions whose records from an offset on run more than their kind's lead ahead of
        the other kind's backlog, with that offset: the caller handles none of them from
        there, and keeps them in hand. Records the newest time handled of each partition.

        A poll of a backlog can hold a day of a small operation's decisions and none of its
        verdicts, or the other way round: handled, the scorer's clock (which both move)
        would pass subgroups' grace before the other kind's events come. The cuts are found
        together: each kind's bound is the other's place after its own cuts, so they are
        found again until none moves (each round only cuts earlier, so it ends)."""
        if not self.on:
            return {}
        assigned = self._forget_moved(consumer)
        self._read_to.update(read_to)
        # the other partitions with a backlog: their places do not move in this poll
        fixed: dict[bool, float | None] = {True: None, False: None}
        for tp in assigned:
            if tp in times or not await self._backlog(consumer, tp):
                continue
            _lower(fixed, tp.topic == self._decisions, self._newest.get(tp, -math.inf))
        # ... and those with records in hand: where they stand if none waits
        whole: dict[TopicPartition, float] = {}
        for tp, offsets in times.items():
            if await self._backlog(consumer, tp):
                newest = max(t for _, t in offsets)
                whole[tp] = max(self._newest.get(tp, newest), newest)
        cut: dict[TopicPartition, tuple[int, float]] = {}
        while True:
            behind = dict(fixed)
            for tp in times:
                place = cut[tp][1] if tp in cut else whole.get(tp)
                if place is not None:  # (None: caught up once its records are handled)
                    _lower(behind, tp.topic == self._decisions, place)
            moved = False
            for tp, offsets in times.items():
                side = tp.topic == self._decisions
                other = behind[not side]
                if self._leads[side] <= 0 or other is None:
                    continue
                bound = other + self._leads[side]
                until = cut[tp][0] if tp in cut else math.inf
                first = next(((o, t) for o, t in offsets if o < until and t > bound), None)
                if first is not None:
                    cut[tp] = first
                    moved = True
            if not moved:
                break
        for tp, offsets in times.items():
            until = cut[tp][0] if tp in cut else math.inf
            kept = [t for o, t in offsets if o < until]
            if kept:
                self._newest[tp] = max(self._newest.get(tp, -math.inf), *kept)
        return {tp: o for tp, (o, _) in cut.items()}

    def hold(self, consumer: AIOKafkaConsumer, waiting: set[TopicPartition]) -> None:
        """After a poll is handled: ``waiting``, the partitions that keep records in hand.
        They are paused (their records in hand stand for them; fetching more of them would
        only grow what is held), and every other partition paused is resumed."""
        assigned = consumer.assignment()
        waiting = waiting & assigned
        paused: set[TopicPartition] = consumer.paused()
        pause, resume = waiting - paused, paused - waiting
        if pause:
            consumer.pause(*pause)
        if resume:
            consumer.resume(*resume)
        new = waiting - self._holding
        decisions = sum(1 for tp in new if tp.topic == self._decisions)
        self.holds += decisions
        self.pauses += len(new) - decisions
        self.held = sum(1 for tp in waiting if tp.topic == self._decisions)
        self.paused = len(waiting) - self.held
        if new:
            log.debug(
                "ahead of the other raw topic by more than the lead: %s held until it catches "
                "up", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(new)),
            )  # fmt: skip
        self._holding = waiting
