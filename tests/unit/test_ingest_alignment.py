"""VerdictAlignment's decisions on a consumer's state (the real broker: tests/integration/
test_ingest_kafka.py, a backlog read with and without it)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any, cast

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.pipeline import VerdictAlignment

D0, D1 = TopicPartition("qw.decisions.raw.v1", 0), TopicPartition("qw.decisions.raw.v1", 1)
V0, V1 = TopicPartition("qw.verdicts.raw.v1", 0), TopicPartition("qw.verdicts.raw.v1", 1)


class Consumer:
    """What VerdictAlignment asks of an AIOKafkaConsumer."""

    def __init__(self, high: dict[TopicPartition, int | None]) -> None:
        self.high = high
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


def _as_consumer(c: Consumer) -> AIOKafkaConsumer:
    return cast(AIOKafkaConsumer, c)


async def test_verdicts_ahead_of_a_decisions_backlog_wait_until_it_catches_up() -> None:
    c = Consumer({D0: 1000, D1: 1000, V0: 100, V1: 100})
    a = VerdictAlignment("qw.decisions.raw.v1", 60.0)
    # D0 has a backlog (read to 10 of 1000) and has reached t=1000; D1 is caught up, so it
    # holds nobody back whatever its time
    read = {D0: 10, D1: 1000, V0: 50, V1: 50}
    await a.update(_as_consumer(c), read, {D0: 1000.0, D1: 5.0, V0: 1061.0, V1: 1059.0})
    assert c.paused() == {V0}  # 61 s ahead; V1 is within the lead
    assert a.pauses == a.paused == 1
    await a.update(_as_consumer(c), {D0: 20}, {D0: 1000.5})
    assert c.paused() == {V0}  # 60.5 s ahead still
    await a.update(_as_consumer(c), {D0: 30}, {D0: 1001.5})
    assert c.paused() == set()  # within the lead now
    await a.update(_as_consumer(c), {V1: 60}, {V1: 9000.0})
    assert c.paused() == {V1}
    await a.update(_as_consumer(c), {D0: 1000}, {})  # D0 read to its end: nothing to wait for
    assert c.paused() == set()
    assert (a.pauses, a.paused) == (2, 0)


async def test_a_decision_partition_not_read_yet() -> None:
    """The verdicts may come first out of a fetch: a decision partition not read yet holds
    them back if its start is before its end (its time unknown: any verdict is ahead), not
    if it is caught up; whose end is not known yet (no fetch answered), it does not (it may
    well be caught up: waiting could wait forever)."""
    a = VerdictAlignment("qw.decisions.raw.v1", 60.0)
    c = Consumer({D0: 1000, V0: 100})
    await a.update(_as_consumer(c), {V0: 10}, {V0: 1e9})
    assert c.paused() == {V0}
    a = VerdictAlignment("qw.decisions.raw.v1", 60.0)
    c = Consumer({D0: 1000, V0: 100})
    c.pos[D0] = 1000
    await a.update(_as_consumer(c), {V0: 10}, {V0: 1e9})
    assert c.paused() == set()
    unknown: dict[TopicPartition, Any] = {D0: None, V0: 100}
    c = Consumer(unknown)
    await a.update(_as_consumer(c), {D0: 5, V0: 10}, {D0: 0.0, V0: 1e9})
    assert c.paused() == set()


async def test_off_at_zero() -> None:
    c = Consumer({D0: 1000, V0: 100})
    await VerdictAlignment("qw.decisions.raw.v1", 0.0).update(
        _as_consumer(c), {D0: 1, V0: 10}, {D0: 0.0, V0: 1e9}
    )
    assert c.paused() == set()


async def test_partitions_moved_away_are_forgotten() -> None:
    a = VerdictAlignment("qw.decisions.raw.v1", 60.0)
    c = Consumer({D0: 1000, V0: 100})
    await a.update(_as_consumer(c), {D0: 10, V0: 10}, {D0: 0.0, V0: 100.0})
    assert c.paused() == {V0}
    c = Consumer({D1: 1000, V0: 100})  # D0 moved to another process; V0 stayed (resumed)
    c.pos[D1] = 1000  # and D1, new here, is caught up
    await a.update(_as_consumer(c), {}, {})
    assert c.paused() == set()  # what D0 said no longer holds V0 back
    c.high[D1] = 2000  # D1 gets a backlog
    await a.update(_as_consumer(c), {}, {})
    assert c.paused() == {V0}


class Seeking(Consumer):
    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.pos[tp] = offset


async def test_decisions_ahead_of_a_verdicts_backlog_are_held_back() -> None:
    """A trial loaded three days of history before ingest started: one fetch held a day of
    decisions and none of their verdicts, the scorer's clock ran past them, and their
    verdicts counted as late. Decisions more than the decision lead ahead of a verdicts
    backlog now wait: their partition is sought back to the first of them and paused."""
    c = Seeking({D0: 1000, V0: 1000})
    a = VerdictAlignment("qw.decisions.raw.v1", 60.0, 60.0)
    times = {D0: [(0, 50.0), (1, 100.0), (2, 150.0), (3, 170.0), (4, 120.0)], V0: [(9, 100.0)]}
    held = await a.hold_back(_as_consumer(c), {D0: 5, V0: 10}, times)
    assert held == {D0: 3}  # 170 > 100 + 60: from offset 3 on (120 after it too)
    assert (c.pos[D0], c.paused(), a.holds) == (3, {D0}, 1)
    await a.update(_as_consumer(c), {D0: 3, V0: 10}, {D0: 150.0, V0: 100.0})
    assert (c.paused(), a.held) == ({D0}, 1)  # the verdicts have not caught up
    await a.update(_as_consumer(c), {V0: 20}, {V0: 109.0})
    assert c.paused() == {D0}  # 170 > 169
    await a.update(_as_consumer(c), {V0: 30}, {V0: 110.0})
    assert (c.paused(), a.held) == (set(), 0)  # 170 <= 170: read again from offset 3
    # a verdicts partition caught up holds nothing back, however far behind its time
    c = Seeking({D0: 1000, V0: 10})
    a = VerdictAlignment("qw.decisions.raw.v1", 60.0, 60.0)
    assert await a.hold_back(_as_consumer(c), {D0: 5, V0: 10}, times) == {}
    # off at zero
    c = Seeking({D0: 1000, V0: 1000})
    a = VerdictAlignment("qw.decisions.raw.v1", 60.0, 0.0)
    assert await a.hold_back(_as_consumer(c), {D0: 5, V0: 10}, times) == {}


async def test_a_partition_one_offset_short_of_its_end_is_caught_up() -> None:
    """A transactional producer's last offset is its commit marker, never delivered: read
    to the record before it, a quiet verdict partition is caught up, and holds no decision
    back (it would until its next verdict: in a live queue, an hour)."""
    c = Seeking({D0: 1000, V0: 51})
    a = VerdictAlignment("qw.decisions.raw.v1", 60.0, 60.0)
    times = {D0: [(0, 5000.0)], V0: [(49, 100.0)]}
    assert await a.hold_back(_as_consumer(c), {D0: 1, V0: 50}, times) == {}
    c.high[V0] = 52  # a record after it, not read yet: a backlog again
    assert await a.hold_back(_as_consumer(c), {D0: 1}, {D0: [(1, 5001.0)]}) == {D0: 1}


async def test_a_verdict_partition_not_read_yet_holds_the_decisions_back() -> None:
    """Its time unknown, any decision may be ahead of it: the decisions wait for it to be
    read (it is never paused itself: its place is -inf), then go on."""
    c = Seeking({D0: 1000, V0: 1000})
    a = VerdictAlignment("qw.decisions.raw.v1", 60.0, 60.0)
    held = await a.hold_back(_as_consumer(c), {D0: 2}, {D0: [(0, 5.0), (1, 6.0)]})
    assert held == {D0: 0}
    await a.update(_as_consumer(c), {D0: 0}, {})
    assert c.paused() == {D0}
    await a.update(_as_consumer(c), {V0: 3}, {V0: 1.0})
    assert c.paused() == set()


@dataclass
class _Sim:
    """Raw partitions of event times (a backlog), read in polls of at most ``per_poll``
    records a partition from each partition not paused, as RawValidator.run reads them."""

    logs: dict[TopicPartition, list[float]]
    per_poll: int

    async def run(self, a: VerdictAlignment) -> tuple[list[tuple[TopicPartition, int]], float]:
        c = Seeking({tp: len(log) for tp, log in self.logs.items()})
        handled: list[tuple[TopicPartition, int]] = []
        worst = 0.0  # the most a decision handled ran ahead of a verdicts backlog's place
        for _ in range(10_000):
            if all(c.pos[tp] >= len(log) for tp, log in self.logs.items()):
                return handled, worst
            polled = {
                tp: list(range(c.pos[tp], min(c.pos[tp] + self.per_poll, len(log))))
                for tp, log in self.logs.items()
                if tp not in c.paused() and c.pos[tp] < len(log)
            }
            for tp, offsets in polled.items():
                c.pos[tp] = offsets[-1] + 1
            read_to = {tp: offsets[-1] + 1 for tp, offsets in polled.items()}
            times = {tp: [(o, self.logs[tp][o]) for o in offsets] for tp, offsets in polled.items()}
            held = await a.hold_back(_as_consumer(c), read_to, times)
            newest: dict[TopicPartition, float] = {}
            for tp, offsets in polled.items():
                kept = [o for o in offsets if o < held.get(tp, o + 1)]
                handled += [(tp, o) for o in kept]
                if kept:
                    newest[tp] = max(self.logs[tp][o] for o in kept)
                    read_to[tp] = kept[-1] + 1
                else:
                    read_to.pop(tp)
            behind = min(
                (max(self.logs[tp][: c.pos[tp]], default=-math.inf)
                 for tp in self.logs
                 if tp.topic == V0.topic and c.pos[tp] < len(self.logs[tp]) - 1),
                default=None,
            )  # fmt: skip
            if behind is not None:
                for tp, offsets in polled.items():
                    if tp.topic == D0.topic:
                        for o in offsets:
                            if o < held.get(tp, o + 1):
                                worst = max(worst, self.logs[tp][o] - behind)
            await a.update(_as_consumer(c), read_to, newest)
        raise AssertionError("no progress in 10,000 polls: the alignment stalled the consumer")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 500), min_size=0, max_size=40), min_size=4, max_size=4),
    st.integers(1, 12),
    st.sampled_from([0.0, 10.0, 60.0]),
    st.sampled_from([0.0, 10.0, 60.0]),
)
def test_the_alignment_never_stalls_and_every_record_is_handled_once(
    logs: list[list[int]], per_poll: int, lead: float, decision_lead: float
) -> None:
    """Any backlog (times in any order, partitions of any length, empty ones), any poll
    size, either lead on or off: the consumer reads every record exactly once, in each
    partition's order, and never stalls; with the decision lead on, no decision is handled
    more than that lead ahead of a verdicts backlog's place. (A held partition's place is
    where it stands: with its last time handled instead, this stalls.)"""
    tps = [D0, D1, V0, V1]
    sim = _Sim({tp: [float(t) for t in log] for tp, log in zip(tps, logs, strict=True)}, per_poll)
    handled, worst = asyncio.run(sim.run(VerdictAlignment(D0.topic, lead, decision_lead)))
    for tp, log in sim.logs.items():
        assert [o for t, o in handled if t == tp] == list(range(len(log)))
    if decision_lead > 0:
        assert worst <= decision_lead


def test_the_metrics_say_how_often_partitions_were_held_back() -> None:
    """A second trial found the gauges back to 0 seconds after the backlog was read, so
    nothing but ingest's debug log said the alignment had acted: the counters do."""
    from prometheus_client import CollectorRegistry

    from services.ingest.metrics import IngestMetrics
    from services.ingest.pipeline import RawValidator
    from services.ingest.publisher import Publisher
    from services.ingest.settings import IngestSettings

    registry = CollectorRegistry()
    v = RawValidator(
        IngestSettings(), cast(Publisher, None), metrics=IngestMetrics.create(registry)
    )

    def sample(name: str) -> float | None:
        return registry.get_sample_value(name)

    v.alignment.pauses, v.alignment.holds, v.alignment.paused, v.alignment.held = 3, 2, 1, 2
    v.publish_alignment()
    v.alignment.pauses, v.alignment.paused, v.alignment.held = 5, 0, 0
    v.publish_alignment()
    assert sample("qw_ingest_verdict_partition_pauses_total") == 5
    assert sample("qw_ingest_decision_partition_holds_total") == 2
    assert sample("qw_ingest_verdict_partitions_paused") == 0
    assert sample("qw_ingest_decision_partitions_held") == 0
