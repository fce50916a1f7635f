"""Baseline resets in the pure scorer: a control record on the events topic starts a new
Phase I for its queue, once per request, in order with the queue's events; the target rule
keeps applying while the queue learns."""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.validation import validate_items
from services.scorer.core import Output, Scorer
from services.scorer.state import QueueState
from shared import batches, codec, control
from shared.events import SubgroupStatus
from shared.topics import partition_of
from tests.factories import T0, decision
from tests.unit.test_scorer_core import H, hour_of_traffic, settings

_POSITIONS = itertools.count()
HOUR = 3600


def run(sc: Scorer, items: list[dict[str, Any]], out: Output, wall: float = 0.0) -> None:
    """Score ``items`` one batch per queue, each committed, collecting every output."""
    for b in batches.group_by_queue(validate_items(items, None).events):
        _apply(sc, b, out, wall)


def reset(
    sc: Scorer, out: Output, queue: str = "q", request_id: str = "r1", **kw: Any
) -> tuple[int, int]:
    """Apply a baseline reset of ``queue``; returns its input position."""
    record = control.baseline_reset(
        queue, request_id=request_id, reason=kw.pop("reason", "policy spam.v4 in force"),
        actor=kw.pop("actor", "key 3f9c0a1b (ops lead)"), requested_at=T0.timestamp(), **kw,
    )  # fmt: skip
    return _apply(sc, record, out)


def _apply(sc: Scorer, msg: Any, out: Output, wall: float = 0.0) -> tuple[int, int]:
    position = (0, next(_POSITIONS))
    o = sc.process(msg, wall or time.time(), position)
    sc.commit(msg["queue_id"])
    out.points += o.points
    out.breaches += o.breaches
    out.baselines += o.baselines
    out.rejected += o.rejected
    return position


def hours(sc: Scorer, out: Output, first: int, last: int, rate: float, seed: int = 1) -> None:
    rng = random.Random(seed * 1000 + first)
    for hour in range(first, last):
        run(sc, hour_of_traffic(hour * 1000, hour, 200, rate, rng), out)


def test_subgroups_too_small_for_the_phase1_are_counted_in_the_snapshot() -> None:
    """A quiet queue learns for ever when its subgroups are under QW_SCORER_MIN_SUBGROUP_N:
    the snapshot says how many were skipped so, and the most one of them had (the health
    says why it is still learning); a reset starts the count again."""
    sc = Scorer(settings(), {})
    out = Output()
    rng = random.Random(5)
    for hour in range(8):
        run(sc, hour_of_traffic(hour * 1000, hour, 12 + hour % 3, 0.05, rng), out)
    st = sc.state("q")
    skipped = [p for p in out.points if p.status == SubgroupStatus.LEARNING_SKIPPED]
    assert len(skipped) == st.closed_count >= 5
    snap = sc.snapshot(st, time.time())
    assert (snap.phase1_subgroups, snap.phase1_too_small, snap.min_subgroup_n) == (
        0, len(skipped), 20,
    )  # fmt: skip
    assert snap.phase1_too_small_max_n == max(p.n for p in skipped) == 14
    assert QueueState.from_dict(st.to_dict()) == st  # (kept in the table)
    reset(sc, Output())
    snap = sc.snapshot(sc.state("q"), time.time())
    assert (snap.phase1_too_small, snap.phase1_too_small_max_n) == (0, None)


def statuses(out: Output) -> dict[int, str]:
    """Each subgroup's status as first published, by hour."""
    seen: dict[int, str] = {}
    for p in out.points:
        h = int((p.start - T0).total_seconds()) // HOUR
        seen.setdefault(h, p.status.value)
    return seen


def test_a_reset_in_the_middle_of_a_stream_learns_a_new_baseline() -> None:
    sc = Scorer(settings(), {})
    before = Output()
    hours(sc, before, 0, 10, 0.05)
    st = sc.state("q")
    assert st.baseline_p is not None
    assert 0.02 < st.baseline_p < 0.09
    assert st.cusum
    assert st.ewma
    assert st.last_point
    (frozen,) = before.baselines
    assert (frozen.event, frozen.epoch, frozen.subgroups) == ("frozen", 0, 5)
    assert frozen.baseline_p == st.baseline_p
    closed_before = st.closed_through

    after = Output()
    reset(sc, after, reason="policy spam.v4 in force")
    st = sc.state("q")
    assert (st.baseline_p, st.baseline_n, st.phase1, st.ewma, st.cusum) == (None, 0, [], None, {})
    assert st.last_point is None
    assert st.baseline_epoch == 1
    # the new Phase I takes the first subgroup starting at or after the watermark
    assert st.phase1_from == -(-int(st.watermark) // HOUR) * HOUR
    (event,) = after.baselines
    assert (event.event, event.epoch, event.reason, event.actor) == (
        "reset", 1, "policy spam.v4 in force", "key 3f9c0a1b (ops lead)",
    )  # fmt: skip
    assert event.previous_p == frozen.baseline_p
    assert event.phase1_from is not None
    assert event.phase1_from.timestamp() == st.phase1_from
    snap = sc.snapshot(st, time.time())
    assert (snap.baseline_state, snap.baseline_source, snap.baseline_epoch) == ("phase1", None, 1)
    assert (snap.phase1_subgroups, snap.phase1_length) == (0, 5)
    assert snap.last_reset is not None
    assert snap.last_reset.request_id == "r1"
    assert snap.cusum_upper is None
    assert snap.last_point is None

    # the new policy confuses the queue: the new baseline learns its error rate, and no
    # chart alarms on it
    hours(sc, after, 10, 22, 0.30)
    st = sc.state("q")
    assert st.baseline_p is not None
    assert 0.24 < st.baseline_p < 0.36
    assert st.phase1_from is not None
    first_new = st.phase1_from // HOUR - int(T0.timestamp()) // HOUR
    seen = statuses(after)
    # subgroups still open at the reset and those before its effective time are not learnt
    assert all(seen[h] == "learning_skipped" for h in seen if h < first_new), seen
    assert [seen[h] for h in range(first_new, first_new + 5)] == ["phase1"] * 5
    assert min(seen) == closed_before // HOUR - int(T0.timestamp()) // HOUR + 1
    assert [b.event for b in after.baselines] == ["reset", "frozen"]
    new = after.baselines[1]
    assert (new.epoch, new.subgroups, new.baseline_p) == (1, 5, st.baseline_p)
    assert not [b for b in after.breaches if b.kind == "spc"], after.breaches
    # the target rule kept applying while the queue learned: 70% is under the 90% target
    target = [b for b in after.breaches if b.rule == "accuracy_24h_below_target"]
    assert target
    assert target[0].detected_at < new.at
    snap = sc.snapshot(st, time.time())
    assert (snap.baseline_state, snap.baseline_source, snap.phase1_subgroups) == (
        "frozen", "estimated", 5,
    )  # fmt: skip
    assert snap.cusum_upper is not None  # designed again for the new baseline


def test_the_target_rule_applies_during_phase_one() -> None:
    sc = Scorer(settings(), {})
    out = Output()
    reset(sc, out)  # a queue learning from its first event
    hours(sc, out, 0, 4, 0.30)
    assert sc.state("q").baseline_p is None
    target = [b for b in out.breaches if b.rule == "accuracy_24h_below_target"]
    assert len(target) == 1
    assert target[0].severity == "critical"


def test_a_replayed_or_repeated_reset_is_applied_once() -> None:
    sc = Scorer(settings(), {})
    out = Output()
    hours(sc, out, 0, 9, 0.05)
    position = reset(sc, out)
    record = control.baseline_reset(
        "q", request_id="r1", reason="x", actor="y", requested_at=T0.timestamp()
    )
    # the same message again (a replay after a crash): recognised as applied
    assert sc.process(record, time.time(), position).skipped
    hours(sc, out, 9, 13, 0.05)
    learnt = list(sc.state("q").phase1)
    assert learnt
    # the same request produced again (a retried POST): the Phase I under way goes on
    again = Output()
    reset(sc, again, request_id="r1")
    st = sc.state("q")
    assert (st.baseline_epoch, st.phase1, again.baselines) == (1, learnt, [])
    # a new request is a new reset
    reset(sc, again, request_id="r2")
    assert (sc.state("q").baseline_epoch, sc.state("q").phase1) == (2, [])
    assert sc.state("q").reset_ids == ["r1", "r2"]


def test_effective_at_in_the_past_learns_from_the_open_subgroups_after_it() -> None:
    sc = Scorer(settings(), {})
    out = Output()
    hours(sc, out, 0, 9, 0.05)
    st = sc.state("q")
    open_from = st.closed_through + HOUR
    # the change happened an hour into the open subgroups
    effective = open_from + HOUR - 600
    reset(sc, out, effective_at=float(effective))
    assert sc.state("q").phase1_from == open_from + HOUR
    after = Output()
    hours(sc, after, 9, 12, 0.05)
    seen = statuses(after)
    first = open_from // HOUR - int(T0.timestamp()) // HOUR
    assert seen[first] == "learning_skipped"  # before the change
    assert seen[first + 1] == "phase1"  # the first subgroup starting after it


def test_effective_at_in_the_future_is_refused_and_resets_nothing() -> None:
    sc = Scorer(settings(), {})
    out = Output()
    hours(sc, out, 0, 9, 0.05)
    p = sc.state("q").baseline_p
    reset(sc, out, effective_at=time.time() + 86400)
    assert len(out.rejected) == 1
    assert "in the future" in out.rejected[0][1]
    st = sc.state("q")
    assert (st.baseline_p, st.baseline_epoch, st.reset_ids) == (p, 0, [])


def test_a_configured_baseline_is_replaced_by_a_learnt_one_and_stays_replaced() -> None:
    table: dict[str, Any] = {}
    s = settings(baseline_p={"q": 0.05})
    sc = Scorer(s, table)
    out = Output()
    hours(sc, out, 0, 3, 0.05)
    snap = sc.snapshot(sc.state("q"), time.time())
    assert (snap.baseline_p, snap.baseline_source) == (0.05, "configured")
    assert not out.baselines  # a configured baseline is not estimated: nothing frozen
    reset(sc, out)
    hours(sc, out, 3, 5, 0.05)
    # a restarted worker reads the record: the configuration does not seed it again
    restarted = Scorer(s, codec.loads(codec.dumps(table)))
    assert restarted.state("q").baseline_p is None
    assert restarted.state("q").baseline_epoch == 1


def test_the_record_round_trips_and_an_older_record_reads_as_never_reset() -> None:
    sc = Scorer(settings(), {})
    out = Output()
    hours(sc, out, 0, 7, 0.05)
    reset(sc, out)
    st = sc.state("q")
    again = QueueState.from_dict(codec.loads(codec.dumps(st.to_dict())))
    assert again == st
    old = st.to_dict()
    for key in ("baseline_epoch", "phase1_from", "last_reset", "reset_ids"):
        del old[key]
    older = QueueState.from_dict(old)
    assert (older.baseline_epoch, older.phase1_from, older.last_reset, older.reset_ids) == (
        0, None, None, [],
    )  # fmt: skip


def test_a_revision_of_a_subgroup_charted_before_the_reset_carries_no_limits() -> None:
    sc = Scorer(settings(), {})
    out = Output()
    hours(sc, out, 0, 9, 0.05)
    charted = max(p.start for p in out.points if p.status is SubgroupStatus.CHARTED)
    reset(sc, out)
    late = Output()
    item = decision("late-one", "q", charted + H / 2)  # a late decision revises it
    run(sc, [item], late)
    (point,) = [p for p in late.points if p.start == charted]
    assert point.revision == 1
    assert point.status is SubgroupStatus.CHARTED
    assert (point.center, point.lcl, point.ucl) == (None, None, None)


GOOD = control.baseline_reset(
    "spam-en", request_id="abc", reason="why", actor="who", requested_at=1.0e9
)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"kind": "baseline_nuke"}, "unknown kind"),
        ({"v": 2}, "version"),
        ({"v": True}, "version"),
        ({"queue_id": "a/b"}, "queue id"),
        ({"request_id": "a b"}, "request_id"),
        ({"request_id": 7}, "request_id"),
        ({"reason": ""}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": "x" * 2001}, "reason"),
        ({"actor": None}, "actor"),
        ({"requested_at": "2026-11-02T00:00:00Z"}, "requested_at"),
        ({"effective_at": -1e300}, "effective_at"),
        ({"effective_at": "2026-11-02T00:00:00Z"}, "effective_at"),
        ({"effective_at": True}, "effective_at"),
        ({"extra": 1}, "unknown fields"),
        ({"reason": None, "actor": None}, "reason"),
    ],
)
def test_a_malformed_control_record_is_refused_with_its_reason(
    change: dict[str, Any], reason: str
) -> None:
    bad = {**GOOD, **change}
    with pytest.raises(ValueError, match=reason):
        control.decode_record(codec.dumps(bad))


def test_a_control_record_without_a_field_is_refused() -> None:
    bad = {k: v for k, v in GOOD.items() if k != "reason"}
    with pytest.raises(ValueError, match="missing fields"):
        control.decode_record(codec.dumps(bad))


def test_decode_input_tells_batches_from_control_records() -> None:
    assert control.decode_input(control.encode(GOOD), b"spam-en") == GOOD
    batch = batches.group_by_queue(validate_items([decision(1, "q")], None).events)[0]
    assert control.decode_input(batches.encode(batch), b"q") == batches.columns(batch)  # (v3)
    with pytest.raises(ValueError, match="not JSON"):
        control.decode_input(b"{", b"q")


@given(key=st.binary(min_size=0, max_size=200), partitions=st.integers(1, 1000))
def test_partition_of_is_the_producers_default_partitioner(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert partition_of(key, partitions) == DefaultPartitioner()(key, every, every)


def test_a_record_on_another_partition_than_its_key_goes_to_is_refused() -> None:
    """A producer that chose the partition itself, under the right key: scored there, it
    would be a second state of the queue beside the one on its key's partition."""
    batch = batches.group_by_queue(validate_items([decision(1, "spam-en")], None).events)[0]
    home = partition_of(b"spam-en", 12)
    for value, what in ((batches.encode(batch), "EventBatch"), (control.encode(GOOD), "baseline")):
        assert control.decode_input(value, b"spam-en", home, 12)  # its own partition
        assert control.decode_input(value, b"spam-en", (home + 1) % 12, None)  # count unknown
        with pytest.raises(
            ValueError, match=f"on partition {(home + 1) % 12}, but its key goes "
        ) as refused:
            control.decode_input(value, b"spam-en", (home + 1) % 12, 12)
        assert what in str(refused.value)
        assert f"to partition {home} of 12" in str(refused.value)


@pytest.mark.parametrize("key", [b"spam-fr", b"SPAM-EN", b"spam-en ", b"", None])
def test_a_record_keyed_otherwise_than_its_queue_is_refused(key: bytes | None) -> None:
    """The key decides the partition: a batch or reset of queue q under another key would
    be scored into a second state of q on another partition (and lost after a restart)."""
    batch = batches.group_by_queue(validate_items([decision(1, "spam-en")], None).events)[0]
    for value, what in ((batches.encode(batch), "EventBatch"), (control.encode(GOOD), "baseline")):
        with pytest.raises(ValueError, match="'spam-en' under") as refused:
            control.decode_input(value, key)
        reason = str(refused.value)
        assert what in reason, reason
        assert ("no key" if key is None else repr(key)) in reason, reason
