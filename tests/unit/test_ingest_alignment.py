"""VerdictAlignment's decisions on a consumer's state (the real broker: tests/integration/
test_ingest_kafka.py, a backlog read with and without it)."""

from __future__ import annotations

from typing import Any, cast

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

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
