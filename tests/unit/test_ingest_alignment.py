"""RawAlignment's cuts on a consumer's state, and RawValidator reading a backlog through it
(the real broker: tests/integration/test_ingest_kafka.py, a backlog read with and without
it)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.pipeline import RawAlignment, RawValidator
from services.ingest.publisher import Publisher
from services.ingest.settings import IngestSettings
from shared import codec
from tests.factories import decision, verdict

DT, VT = "qw.decisions.raw.v1", "qw.verdicts.raw.v1"  # (IngestSettings' default topics)
D0, D1 = TopicPartition(DT, 0), TopicPartition(DT, 1)
V0, V1 = TopicPartition(VT, 0), TopicPartition(VT, 1)


class Consumer:
    """What RawAlignment asks of an AIOKafkaConsumer."""

    def __init__(self, high: Mapping[TopicPartition, int | None]) -> None:
        self.high: dict[TopicPartition, int | None] = dict(high)
        self.pos = dict.fromkeys(high, 0)  # where each starts (the group's committed offset)
        self._paused: set[TopicPartition] = set()

    async def position(self, tp: TopicPartition) -> int:
        return self.pos[tp]

    def assignment(self) -> set[TopicPartition]:
        return set(self.high)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.high[tp]

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def pause(self, *tps: TopicPartition) -> None:
        self._paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused -= set(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.pos[tp] = offset


def _as_consumer(c: Consumer) -> AIOKafkaConsumer:
    return cast(AIOKafkaConsumer, c)


def _times(first: int, *ts: float) -> list[tuple[int, float]]:
    return [(first + i, t) for i, t in enumerate(ts)]


async def test_verdicts_ahead_of_a_decisions_backlog_wait_in_hand() -> None:
    c = _as_consumer(Consumer({D0: 1000, D1: 1000, V0: 100, V1: 100}))
    a = RawAlignment(DT, 60.0, 60.0)
    # D0 has a backlog (read to 10 of 1000) and reaches t=1000; D1 is caught up, so it holds
    # nobody back whatever its time
    times = {D0: _times(0, 990.0, 1000.0), D1: _times(998, 5.0), V0: _times(40, 1050.0, 1061.0)}
    times[V1] = _times(40, 1059.0)
    cut = await a.cut(c, {D0: 10, D1: 1000, V0: 50, V1: 50}, times)
    assert cut == {V0: 41}  # 1061 > 1000 + 60; 1050 and V1's 1059 are within the lead
    a.hold(c, {V0})
    assert c.paused() == {V0}
    assert (a.pauses, a.paused, a.holds, a.held) == (1, 1, 0, 0)
    # V0's 1061 in hand again; D0 reaches 1001.5: within the lead now
    assert await a.cut(c, {D0: 30, V0: 50}, {D0: _times(10, 1001.5), V0: _times(41, 1061.0)}) == {}
    a.hold(c, set())
    assert c.paused() == set()
    assert (a.pauses, a.paused) == (1, 0)


async def test_decisions_ahead_of_a_verdicts_backlog_wait_in_hand() -> None:
    """A trial loaded three days of history before ingest started: one fetch held a day of
    decisions and none of their verdicts, the scorer's clock ran past them, and their
    verdicts counted as late. Decisions more than the decision lead ahead of a verdicts
    backlog now wait."""
    c = _as_consumer(Consumer({D0: 1000, V0: 1000}))
    a = RawAlignment(DT, 60.0, 60.0)
    times = {D0: _times(0, 50.0, 100.0, 150.0, 170.0, 120.0), V0: _times(9, 100.0)}
    assert await a.cut(c, {D0: 5, V0: 10}, times) == {D0: 3}  # 170 > 100 + 60: from 3 on
    a.hold(c, {D0})
    assert (c.paused(), a.holds, a.held) == ({D0}, 1, 1)
    # D0's place is 170, where it stands: verdicts up to 230 pass
    times = {D0: _times(3, 170.0, 120.0), V0: _times(10, 109.0, 200.0, 231.0)}
    assert await a.cut(c, {D0: 5, V0: 13}, times) == {V0: 12}  # D0 within V0's 231 + 60
    # D0's 170 and 120 were handled; V0's 231 waits, and passes once D0 reaches 175
    assert await a.cut(c, {D0: 6, V0: 13}, {D0: _times(5, 175.0), V0: _times(12, 231.0)}) == {}
    # a verdicts partition caught up holds nothing back, however far behind its time
    c = _as_consumer(Consumer({D0: 1000, V0: 10}))
    a = RawAlignment(DT, 60.0, 60.0)
    assert await a.cut(c, {D0: 5, V0: 10}, {D0: _times(0, 5000.0), V0: _times(9, 1.0)}) == {}


async def test_both_sides_in_hand_move_by_what_was_read_not_by_a_lead() -> None:
    """Holding both sides back by seeking their partitions back made them move in lockstep,
    a lead a poll (of 36,000 events, 7,997 read in 90 s on the broker): what waits stays in
    hand, so the cuts are found on both sides' records at once."""
    c = _as_consumer(Consumer({D0: 10_000, V0: 10_000}))
    a = RawAlignment(DT, 60.0, 60.0)
    d = [float(t) for t in range(0, 3600, 10)]
    v = [float(t) for t in range(0, 3000, 10)]
    assert await a.cut(c, {D0: len(d), V0: len(v)}, {D0: _times(0, *d), V0: _times(0, *v)}) == {
        D0: 300 + 6  # up to V0's newest, 2990, + 60: the decisions after it wait
    }


async def test_a_partition_not_read_yet_holds_the_other_side_back() -> None:
    """Its time unknown, anything may be ahead of it: the other side waits for it to be
    read (it is never held itself: its place is -inf), then goes on; whose end is not known
    yet (no fetch answered), it does not (it may well be caught up: waiting could wait
    forever)."""
    c = _as_consumer(Consumer({D0: 1000, V0: 1000}))
    a = RawAlignment(DT, 60.0, 60.0)
    assert await a.cut(c, {D0: 2}, {D0: _times(0, 5.0, 6.0)}) == {D0: 0}
    a.hold(c, {D0})
    assert c.paused() == {D0}
    times = {D0: _times(0, 5.0, 6.0), V0: _times(0, 1.0)}
    assert await a.cut(c, {D0: 2, V0: 1}, times) == {}
    a.hold(c, set())
    assert c.paused() == set()
    # caught up where it starts
    c = Consumer({D0: 1000, V0: 100})
    c.pos[V0] = 100
    assert (
        await RawAlignment(DT, 60.0, 60.0).cut(_as_consumer(c), {D0: 1}, {D0: _times(0, 9.0)}) == {}
    )
    # end unknown
    unknown: dict[TopicPartition, int | None] = {D0: 1000, V0: None}
    c = Consumer(unknown)
    assert (
        await RawAlignment(DT, 60.0, 60.0).cut(_as_consumer(c), {D0: 1}, {D0: _times(0, 9.0)}) == {}
    )


async def test_a_partition_one_offset_short_of_its_end_is_caught_up() -> None:
    """A transactional producer's last offset is its commit marker, never delivered: read
    to the record before it, a quiet verdict partition is caught up, and holds no decision
    back (it would until its next verdict: in a live queue, an hour)."""
    c = Consumer({D0: 1000, V0: 51})
    a = RawAlignment(DT, 60.0, 60.0)
    times = {D0: _times(0, 5000.0), V0: _times(49, 100.0)}
    assert await a.cut(_as_consumer(c), {D0: 1, V0: 50}, times) == {}
    c.high[V0] = 52  # a record after it, not read yet: a backlog again
    assert await a.cut(_as_consumer(c), {D0: 2}, {D0: _times(1, 5001.0)}) == {D0: 1}


async def test_off_at_zero() -> None:
    c = _as_consumer(Consumer({D0: 1000, V0: 1000}))
    times = {D0: _times(0, 0.0), V0: _times(0, 1e9)}
    assert await RawAlignment(DT, 0.0, 0.0).cut(c, {D0: 1, V0: 1}, times) == {}
    # one lead on: only that side waits
    assert await RawAlignment(DT, 60.0, 0.0).cut(c, {D0: 1, V0: 1}, times) == {V0: 0}
    times = {D0: _times(0, 1e9), V0: _times(0, 0.0)}
    assert await RawAlignment(DT, 0.0, 60.0).cut(c, {D0: 1, V0: 1}, times) == {D0: 0}


async def test_partitions_moved_away_are_forgotten() -> None:
    a = RawAlignment(DT, 60.0, 60.0)
    c = Consumer({D0: 1000, V0: 1000})
    assert await a.cut(_as_consumer(c), {D0: 1}, {D0: _times(0, 0.0)}) == {D0: 0}  # V0 unread
    c = Consumer({D1: 1000, V0: 1000})  # D0 moved to another process; D1 is new here
    c.pos[D1] = 1000  # and caught up
    assert await a.cut(_as_consumer(c), {V0: 1}, {V0: _times(0, 1e9)}) == {}
    c.high[D1] = 2000  # D1 gets a backlog, not read yet: -inf
    assert await a.cut(_as_consumer(c), {V0: 2}, {V0: _times(1, 1e9)}) == {V0: 1}


async def test_records_of_a_partition_taken_away_meanwhile_hold_nothing_back() -> None:
    """A rebalance can take a partition away while its records are handled: they hold the
    other side back no more (aiokafka's highwater asserted, and ingest exited, in
    tests/integration/test_ingest_admission.py, when a second process left the group)."""
    c = Consumer({D0: 1000, V0: 1000})
    a = RawAlignment(DT, 60.0, 60.0)
    del c.high[V0]  # taken away
    times = {D0: _times(0, 1e6), V0: _times(0, 0.0)}
    assert await a.cut(_as_consumer(c), {D0: 1, V0: 1}, times) == {}


# --- RawValidator on a simulated backlog -------------------------------------------------

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


class _Published(Publisher):
    """A publisher that keeps what it is given, in order: (queue, id) of each event and the
    (partition, offset) of each dead letter."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.letters: list[tuple[str, int, int]] = []

    async def publish_items(
        self,
        decisions: Mapping[str, list[dict[str, Any]]],
        verdicts: Mapping[str, list[dict[str, Any]]],
    ) -> None:
        for per_queue, key in ((decisions, "decision_id"), (verdicts, "verdict_id")):
            for q, items in per_queue.items():
                self.events += [(q, item[key]) for item in items]

    async def dead_letter(self, **kw: Any) -> asyncio.Future[Any]:
        self.letters.append((kw["source_topic"], kw["partition"], kw["offset"]))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _record(tp: TopicPartition, offset: int, t: int) -> ConsumerRecord[bytes, bytes]:
    """The raw event at ``offset`` of ``tp``, ``t`` seconds after T0 (-1: malformed)."""
    queue, i = f"q{tp.partition}", f"{tp.partition}-{offset}"
    at = T0 + timedelta(seconds=t)
    body = decision(i, queue, at) if tp.topic == DT else verdict(i, queue, at)
    value = b"{" if t < 0 else codec.dumps(body)
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, None, value, None, 0, 0, [])


@dataclass
class _Sim:
    """Raw partitions of event times (a backlog; -1 a malformed message), read by the real
    RawValidator in polls of at most ``per_poll`` records a partition from each partition
    not paused."""

    logs: dict[TopicPartition, list[int]]
    per_poll: int
    lead: float
    decision_lead: float
    rebalance_at: int | None = None  # the poll during which the group rebalances
    worst: dict[str, float] = field(default_factory=dict)

    def _place(self, tp: TopicPartition, handled: int, waiting: list[tuple[int, float]]) -> float:
        if waiting:
            return waiting[0][1]
        return max((t for t in self.logs[tp][:handled] if t >= 0), default=-math.inf)

    async def run(self) -> _Published:
        published = _Published()
        v = RawValidator(
            IngestSettings(verdict_lead_s=self.lead, decision_lead_s=self.decision_lead),
            published,
        )
        c = Consumer({tp: len(log) for tp, log in self.logs.items()})
        total = sum(len(log) for log in self.logs.values())
        for step in range(10_000):
            before = len(published.events)
            if before + len(published.letters) == total:
                return published
            polled = {
                tp: [
                    _record(tp, o, log[o])
                    for o in range(c.pos[tp], min(c.pos[tp] + self.per_poll, len(log)))
                ]
                for tp, log in self.logs.items()
                if tp not in c.paused() and c.pos[tp] < len(log)
            }
            for tp, records in polled.items():
                c.pos[tp] = records[-1].offset + 1
            rebalances = v._rebalances.count
            if step == self.rebalance_at:  # every partition assigned here again, as it was
                v._rebalances.count += 2
            await v._handle(polled, _as_consumer(c), rebalances)
            # what each partition has handled: its offsets before the committed one
            handled: dict[TopicPartition, int] = {}
            for tp in self.logs:
                w = v._waiting.get(tp)
                handled[tp] = w.first if w is not None else c.pos[tp]
                if tp in v._commit_at:
                    assert v._commit_at[tp] <= handled[tp]
            v._commit_at.clear()
            if step != self.rebalance_at:  # (its cuts were made before the rebalance was
                # known: a partition whose records in hand were dropped stands where its
                # last record handled does, after them)
                self._check_leads(published, before, handled, v)
        raise AssertionError("no progress in 10,000 polls: the alignment stalled the consumer")

    def _check_leads(
        self,
        published: _Published,
        before: int,
        handled: dict[TopicPartition, int],
        v: RawValidator,
    ) -> None:
        """No event handled in this poll more than its kind's lead ahead of the place of a
        partition of the other kind with a backlog after it."""
        places: dict[str, list[float]] = {DT: [], VT: []}
        for tp, log in self.logs.items():
            w = v._waiting.get(tp)
            if w is None and handled[tp] >= len(log) - 1:
                continue  # caught up (or one short: a commit marker's place)
            places[tp.topic].append(self._place(tp, handled[tp], w.times if w else []))
        for _, event_id in published.events[before:]:
            kind = DT if event_id.startswith("d") else VT
            p, o = (int(x) for x in event_id[1:].split("-"))
            t = self.logs[TopicPartition(kind, p)][o]
            lead = self.decision_lead if kind == DT else self.lead
            other = places[VT if kind == DT else DT]
            if lead > 0 and other:
                self.worst[kind] = max(self.worst.get(kind, -math.inf), t - min(other))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.integers(-1, 500), min_size=0, max_size=40), min_size=4, max_size=4),
    st.integers(1, 12),
    st.sampled_from([0.0, 10.0, 60.0]),
    st.sampled_from([0.0, 10.0, 60.0]),
    st.one_of(st.none(), st.integers(0, 20)),
)
def test_a_backlog_is_read_once_in_order_within_the_leads_and_never_stalls(
    logs: list[list[int]],
    per_poll: int,
    lead: float,
    decision_lead: float,
    rebalance_at: int | None,
) -> None:
    """Any backlog (times in any order, partitions of any length, empty ones, malformed
    messages), any poll size, either lead on or off, a rebalance during any poll or none:
    RawValidator hands on every record exactly once, in each partition's order, commits no
    offset past a record it has not handled, and never stalls; no event is handled more
    than its kind's lead ahead of the other kind's backlog. (The rebalance gives every
    partition back without resetting its position, so records in hand dropped and not
    read again would be lost.)"""
    tps = [D0, D1, V0, V1]
    sim = _Sim(dict(zip(tps, logs, strict=True)), per_poll, lead, decision_lead, rebalance_at)
    published = asyncio.run(sim.run())
    for tp, log in sim.logs.items():
        kind = "d" if tp.topic == DT else "v"
        ids = [i for q, i in published.events if q == f"q{tp.partition}" and i.startswith(kind)]
        assert ids == [f"{kind}{tp.partition}-{o}" for o, t in enumerate(log) if t >= 0]
        letters = [o for topic, p, o in published.letters if (topic, p) == tp]
        assert letters == [o for o, t in enumerate(log) if t < 0]
    if decision_lead > 0:
        assert sim.worst.get(DT, -math.inf) <= decision_lead
    if lead > 0:
        assert sim.worst.get(VT, -math.inf) <= lead


def test_the_metrics_say_how_often_partitions_were_held_back() -> None:
    """A second trial found the gauges back to 0 seconds after the backlog was read, so
    nothing but ingest's debug log said the alignment had acted: the counters do."""
    from prometheus_client import CollectorRegistry

    from services.ingest.metrics import IngestMetrics

    registry = CollectorRegistry()
    v = RawValidator(
        IngestSettings(), cast(Publisher, None), metrics=IngestMetrics.create(registry)
    )

    def sample(name: str) -> float | None:
        return registry.get_sample_value(name)

    c = _as_consumer(Consumer({D0: 10, D1: 10, V0: 10}))
    v.alignment.hold(c, {V0, D0, D1})
    v.publish_alignment()
    assert sample("qw_ingest_verdict_partitions_paused") == 1
    assert sample("qw_ingest_decision_partitions_held") == 2
    v.alignment.hold(c, {D0})  # D0 still: not counted again
    v.alignment.hold(c, {V0})
    v.publish_alignment()
    assert sample("qw_ingest_verdict_partition_pauses_total") == 2
    assert sample("qw_ingest_decision_partition_holds_total") == 2
    assert sample("qw_ingest_verdict_partitions_paused") == 1
    assert sample("qw_ingest_decision_partitions_held") == 0


async def test_a_poll_that_handles_nothing_new_commits_nothing_again() -> None:
    """While records wait in hand, each poll (every 200 ms) found the same offsets to
    commit: they are committed once, and again after a rebalance (another owner may have
    moved them meanwhile)."""
    commits: list[dict[TopicPartition, int]] = []

    class Committing(Consumer):
        async def commit(self, offsets: dict[TopicPartition, int]) -> None:
            commits.append(dict(offsets))

    c = Committing({D0: 100, V0: 100})
    v = RawValidator(IngestSettings(), cast(Publisher, None))
    for at in ({D0: 5, V0: 7}, {D0: 5, V0: 7}, {D0: 6, V0: 7}):
        v._commit_at.update(at)
        await v._commit(_as_consumer(c))
    assert commits == [{D0: 5, V0: 7}, {D0: 6}]
    v._rebalances.count += 2
    v._commit_at.update({D0: 6, V0: 7, D1: 3})  # (D1 not assigned here: never committed)
    await v._commit(_as_consumer(c))
    assert commits[-1] == {D0: 6, V0: 7}
