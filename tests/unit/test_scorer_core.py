from __future__ import annotations

import itertools
import random
import re
import time
from datetime import timedelta
from typing import Any

import pytest

from services.ingest.validation import validate_items
from services.scorer.core import Output, Scorer, _limit_counts
from services.scorer.settings import ScorerSettings
from services.scorer.state import Bucket, QueueState
from shared import batches, codec
from shared.events import BreachKind
from shared.settings import QualitySettings
from shared.text import confidence_words
from tests.factories import T0, decision, verdict

H = timedelta(hours=1)
_BATCH_IDS = itertools.count()


def settings(**kw: Any) -> ScorerSettings:
    base: dict[str, Any] = {
        "subgroup_seconds": 3600, "grace_seconds": 2 * 3600, "phase1_subgroups": 5,
        "min_subgroup_n": 20, "snapshot_interval_s": 0.0,
    }  # fmt: skip
    base.update(kw)
    return ScorerSettings(**base)


def feed(scorer: Scorer, items: list[dict[str, Any]], wall: float | None = None) -> Output:
    out = Output()
    result = validate_items(items, None)
    assert not result.errors, result.errors
    for b in batches.group_by_queue(result.events):
        o = scorer.process(b, time.time() if wall is None else wall, (0, next(_BATCH_IDS)))
        scorer.commit(b["queue_id"])
        snap = scorer.snapshot_if_due(b["queue_id"], time.time() if wall is None else wall)
        out.snapshots += [snap] if snap else []
        out.breaches += o.breaches
        out.points += o.points
    return out


def hour_of_traffic(
    start: int, hour: int, n: int, error_rate: float, rng: random.Random, queue: str = "q"
) -> list[dict[str, Any]]:
    """n decisions in hour ``hour``, each QA-reviewed an hour later."""
    items: list[dict[str, Any]] = []
    for i in range(n):
        k = f"{queue}-{start + i}"
        at = T0 + hour * H + timedelta(seconds=rng.uniform(0, 3599))
        items.append(decision(k, queue, at))
        items.append(verdict(k, queue, at + H, correct=rng.random() >= error_rate))
    return items


def test_verdict_before_decision_is_joined_when_the_decision_arrives() -> None:
    sc = Scorer(settings(), {})
    feed(sc, [verdict(1, "q", correct=False)])
    st = sc.state("q")
    assert sc.pending_count("q") == 1
    assert st.verdicts_total == 0
    feed(sc, [decision(1, "q")])
    st = sc.state("q")
    assert sc.pending_count("q") == 0
    assert st.verdicts_total == 1
    bucket = st.buckets[int(T0.timestamp())]
    assert (bucket.n, bucket.e, bucket.decisions) == (1, 1, 1)
    assert bucket.errors_by_type == {"under_enforcement": 1}


def test_duplicates_are_counted_once() -> None:
    sc = Scorer(settings(), {})
    feed(sc, [decision(1, "q"), decision(1, "q"), verdict(1, "q")])
    feed(sc, [decision(1, "q"), verdict(1, "q"), verdict(1, "q")])
    st = sc.state("q")
    assert (st.decisions_total, st.verdicts_total) == (1, 1)
    assert st.buckets[int(T0.timestamp())].n == 1


def test_duplicate_verdict_while_pending_is_kept_once() -> None:
    sc = Scorer(settings(), {})
    feed(sc, [verdict(1, "q"), verdict(1, "q")])
    assert sc.pending_count("q") == 1
    feed(sc, [decision(1, "q")])
    assert sc.state("q").verdicts_total == 1


def test_only_random_samples_count_toward_accuracy() -> None:
    sc = Scorer(settings(), {})
    feed(sc, [decision(1, "q"), verdict(1, "q", correct=False, sample_type="targeted")])
    b = sc.state("q").buckets[int(T0.timestamp())]
    assert (b.n, b.e, b.other) == (0, 0, 1)


def test_phase1_then_drift_signals_and_stable_queue_stays_quiet() -> None:
    rng = random.Random(3)
    sc = Scorer(settings(), {})
    breaches = []
    for hour in range(14):
        drifted = 0.25 if hour >= 8 else 0.05
        items = hour_of_traffic(hour * 1000, hour, 200, drifted, rng, "drifty")
        items += hour_of_traffic(hour * 1000, hour, 200, 0.05, rng, "steady")
        breaches += feed(sc, items).breaches
    assert sc.state("drifty").baseline_p is not None
    assert 0.02 < (sc.state("steady").baseline_p or 0) < 0.09
    drifty = [b for b in breaches if b.queue_id == "drifty" and b.kind == "spc"]
    assert drifty, "the drifted queue must signal"
    assert min(b.subgroup_start for b in drifty if b.subgroup_start) >= T0 + 8 * H
    assert not [b for b in breaches if b.queue_id == "steady"]
    first = next(b for b in drifty if b.rule == "p_chart_ucl")
    assert first.observed_p > first.ucl  # type: ignore[operator]
    assert first.dedup_key == f"drifty:p_chart_ucl:{int(first.subgroup_start.timestamp())}"  # type: ignore[union-attr]


def test_configured_baseline_skips_phase1() -> None:
    rng = random.Random(1)
    sc = Scorer(settings(baseline_p={"q": 0.05}), {})
    out = Output()
    for hour in range(4):
        o = feed(sc, hour_of_traffic(hour * 1000, hour, 200, 0.30, rng))
        out.breaches += o.breaches
    assert sc.state("q").baseline_p == 0.05
    assert any(b.rule == "p_chart_ucl" for b in out.breaches)


def test_a_subgroup_exactly_at_the_limit_signals_and_says_at_not_above() -> None:
    """The p-chart signals at or above its upper limit (errors >= the limit count): a
    subgroup exactly at it says so, both rates at one precision (it once read "error rate
    14.375% above the control limit 14.4%")."""
    sc = Scorer(settings(baseline_p={"q": 0.05}), {})
    n = 160
    _, k = _limit_counts(0.05, 0, 0, n, sc._pchart_alpha())
    items: list[dict[str, Any]] = []
    for i in range(n):
        at = T0 + timedelta(seconds=10 + i)
        items += [decision(i, "q", at), verdict(i, "q", at + H, correct=i >= k)]
    out = feed(sc, items)
    out.breaches += feed(sc, [decision("late", "q", T0 + 4 * H)]).breaches  # closes hour 0
    [b] = [b for b in out.breaches if b.rule == "p_chart_ucl"]
    assert b.observed_p == b.ucl == k / n
    said = re.search(r"error rate ([\d.]+)% at the control limit ([\d.]+)% ", b.message)
    assert said is not None, b.message
    assert said[1] == said[2]
    assert float(said[1]) == pytest.approx(100 * k / n, abs=0.0005)
    assert "above" not in b.message


def test_small_subgroups_are_not_charted() -> None:
    rng = random.Random(1)
    sc = Scorer(settings(baseline_p={"q": 0.05}), {})
    out = Output()
    for hour in range(5):
        out.breaches += feed(sc, hour_of_traffic(hour * 100, hour, 5, 1.0, rng)).breaches
    assert not [b for b in out.breaches if b.kind == "spc"]
    assert sc.state("q").last_point is None


def test_below_target_breach_once_per_day() -> None:
    rng = random.Random(2)
    sc = Scorer(settings(quality=QualitySettings(accuracy_target=0.95)), {})
    out = Output()
    for hour in range(6):
        out.breaches += feed(sc, hour_of_traffic(hour * 1000, hour, 100, 0.20, rng)).breaches
    target = [b for b in out.breaches if b.rule == "accuracy_24h_below_target"]
    assert len(target) == 1
    assert target[0].severity == "critical"
    # in error rates, as every other alert speaks, the accuracy target stated as set
    b = target[0]
    rate = b.observed_p
    bound = confidence_words(sc.target_rule.confidence)
    assert bound == "99.9992%"  # the rule's share of the default budget, over 24 looks a day
    assert b.message.startswith(
        f"queue q: 24h error rate {rate:.1%} (accuracy {1 - rate:.1%}, upper {bound} bound "
    ), b.message
    assert "is over the 5.0% the 95.0% accuracy target allows, n=" in b.message, b.message
    # its cause compares with what the target allows, not with the chart's baseline
    assert "against the 5.0% the target allows, n=" in b.message, b.message


def test_the_below_target_rule_looks_once_a_subgroup_closes_and_is_published() -> None:
    """The rule compares its bound with the target once a subgroup closes (24 looks a day),
    not after every batch: a look is a test, and its tail is spent per look. Its design is
    in every snapshot: at the defaults, 10% of a queue's share of 1 false alarm a day over
    500 queues, over 24 looks: a tail of 8.3e-6 a look (one-sided 99.9992%)."""
    rng = random.Random(5)
    sc = Scorer(settings(quality=QualitySettings(accuracy_target=0.95)), {})
    out = feed(sc, hour_of_traffic(0, 0, 200, 0.30, rng))  # verdicts by 02:00: none closed
    assert not [b for b in out.breaches if b.kind == BreachKind.BELOW_TARGET]
    assert sc.state("q").closed_through < 0
    out = feed(sc, [decision("later", "q", T0 + 3 * H + timedelta(minutes=1))])  # 00:00 closes
    assert [b.rule for b in out.breaches if b.kind == BreachKind.BELOW_TARGET] == [
        "accuracy_24h_below_target"
    ]
    rule = out.snapshots[-1].target_rule
    assert rule is not None
    assert rule == sc.target_rule
    assert rule.source == "budget"
    assert rule.looks_per_day == 24
    assert rule.tail_per_look == pytest.approx(1.0 * 0.1 / 500 / 24)
    assert rule.false_alarms_per_day == pytest.approx(1.0 * 0.1 / 500)
    assert rule.confidence == pytest.approx(1 - rule.tail_per_look)
    # set, it is that confidence, outside the budget
    fixed = Scorer(settings(quality=QualitySettings(target_rule_confidence=0.95)), {})
    assert fixed.target_rule.source == "configured"
    assert fixed.target_rule.tail_per_look == 0.05  # exactly: no float noise in the API
    tiny = Scorer(settings(quality=QualitySettings(target_rule_confidence=1 - 1e-13)), {})
    assert tiny.target_rule.tail_per_look == pytest.approx(1e-13)
    # at most one breach a UTC day: never more than one false one, whatever the tail
    assert fixed.target_rule.false_alarms_per_day == 1.0
    # a subgroup that does not divide the day: as many looks as a UTC day can hold
    odd = Scorer(settings(subgroup_seconds=7000), {}).target_rule
    assert odd.looks_per_day == 13
    assert odd.tail_per_look == pytest.approx(1.0 * 0.1 / 500 / 13)


def test_below_target_needs_the_verdicts_the_health_needs_to_say_anything() -> None:
    """20 verdicts, half wrong: the health says 'too few to say' below QW_MIN_SAMPLE (30),
    so the scorer raises no critical breach on them either; at 30 it does (at its look, once
    their subgroup closes)."""

    def below_target(n: int) -> list[str]:
        sc = Scorer(settings(quality=QualitySettings(min_sample=30)), {})
        items: list[dict[str, Any]] = []
        for i in range(n):
            at = T0 + timedelta(minutes=i)
            items += [decision(i, "q", at), verdict(i, "q", at + H, correct=i % 2 == 0)]
        items.append(decision(10_000, "q", T0 + 4 * H))  # past the first subgroup's grace
        return [b.rule for b in feed(sc, items).breaches if b.kind == BreachKind.BELOW_TARGET]

    assert below_target(29) == []
    assert below_target(30) == ["accuracy_24h_below_target"]


def test_state_survives_a_restart_exactly() -> None:
    """A new Scorer over the same tables (a restarted worker) continues where it stopped."""
    rng_a, rng_b = random.Random(9), random.Random(9)
    table: dict[str, Any] = {}
    continuous = Scorer(settings(), {})
    restarted = Scorer(settings(), table)
    for hour in range(10):
        items_a = hour_of_traffic(hour * 1000, hour, 60, 0.1, rng_a)
        items_b = hour_of_traffic(hour * 1000, hour, 60, 0.1, rng_b)
        feed(continuous, items_a)
        # the tables go through JSON as they would through the changelog
        table = codec.loads(codec.dumps(table))
        restarted = Scorer(settings(), table)
        feed(restarted, items_b)
    a, b = continuous.state("q").to_dict(), restarted.state("q").to_dict()
    for volatile in ("applied", "outbox"):  # message positions and wall times differ
        del a[volatile], b[volatile]
    assert a == b


def test_queue_state_round_trip() -> None:
    rng = random.Random(4)
    sc = Scorer(settings(), {})
    for hour in range(9):
        feed(sc, hour_of_traffic(hour * 1000, hour, 50, 0.1, rng))
    st = sc.state("q")
    again = QueueState.from_dict(codec.loads(codec.dumps(st.to_dict())))
    assert again == st


def test_old_decisions_expire() -> None:
    sc = Scorer(settings(decision_ttl_seconds=3 * 3600, pending_ttl_seconds=3 * 3600), {})
    feed(sc, [decision(1, "q")])
    feed(sc, [decision(2, "q", T0 + 10 * H)])
    assert [k.hour for k, _ in sc._decisions.chunks("q")] == [
        int((T0 + 10 * H).timestamp()) // 3600 * 3600
    ]  # d1's chunk is gone
    assert sc._decisions.get("q", "d1") is None
    assert sc._decisions.get("q", "d2") is not None


def test_snapshot_has_windows_and_chart() -> None:
    rng = random.Random(5)
    sc = Scorer(settings(), {})
    out = Output()
    for hour in range(10):
        out.snapshots += feed(sc, hour_of_traffic(hour * 1000, hour, 100, 0.1, rng)).snapshots
    snap = out.snapshots[-1]
    assert snap.queue_id == "q"
    assert snap.baseline_state == "frozen"
    assert snap.n_24h > 0
    assert snap.accuracy_24h is not None
    assert 0.8 < snap.accuracy_24h < 0.97
    assert snap.last_point is not None
    assert snap.last_point.lcl <= snap.last_point.ucl
    assert snap.ewma is not None
    assert snap.ewma_ucl is not None


def test_a_replayed_message_is_recognised_as_applied() -> None:
    sc = Scorer(settings(), {})
    batch = batches.group_by_queue(validate_items([decision("a", "q")], None).events)[0]
    sc.process(batch, time.time(), (0, 1))
    sc.commit("q")
    assert sc.process(batch, time.time(), (0, 1)).skipped
    assert sc.process(batch, time.time(), (0, 0)).skipped
    assert sc.state("q").decisions_total == 1
    assert not sc.process(batch, time.time(), (1, 0)).skipped  # another partition's offsets


def test_counted_verdict_ids_live_at_least_as_long_as_their_decisions() -> None:
    """A batch mixing old and new decisions must not let a verdict be counted twice."""
    sc = Scorer(settings(decision_ttl_seconds=2 * 86400, pending_ttl_seconds=2 * 86400), {})
    feed(sc, [decision(1, "q", T0), decision(2, "q", T0 + 36 * H)])
    feed(sc, [verdict(1, "q", T0 + 37 * H, correct=False)])
    feed(sc, [decision(3, "q", T0 + 70 * H)])  # time moves on
    feed(sc, [verdict(1, "q", T0 + 71 * H, correct=False)])  # re-sent by upstream
    st = sc.state("q")
    assert st.verdicts_total == 1
    assert sum(b.n for b in st.buckets.values()) == 1


def test_scorer_rejects_far_future_and_incomplete_events() -> None:
    sc = Scorer(settings(), {})
    future = decision(9, "q", T0)
    future["decided_at"] = "2099-01-01T00:00:00+00:00"
    broken = {"decision_id": "x"}
    batch: Any = {
        "v": 1,
        "queue_id": "q",
        "decisions": [decision(1, "q"), future, broken],
        "verdicts": [],
    }
    out = sc.process(batch, time.time(), (0, 0))
    assert [r[0].get("decision_id") for r in out.rejected] == ["d9", "x"]
    st = sc.state("q")
    assert st.decisions_total == 1
    assert st.watermark < T0.timestamp() + 3600


def test_phase1_without_errors_does_not_make_the_ewma_alarm_on_one_error() -> None:
    rng = random.Random(8)
    sc = Scorer(settings(), {})
    out = Output()
    for hour in range(6):
        out.breaches += feed(sc, hour_of_traffic(hour * 1000, hour, 100, 0.0, rng)).breaches
    items = hour_of_traffic(9000, 6, 100, 0.0, rng)
    items[1]["outcome"], items[1]["error_type"] = "incorrect", "technical"
    out.breaches += feed(sc, items).breaches
    out.breaches += feed(sc, hour_of_traffic(10000, 12, 100, 0.0, rng)).breaches
    assert sc.state("q").baseline_e == 0
    assert not [b for b in out.breaches if b.kind == "spc"]


def test_pending_verdicts_are_capped() -> None:
    sc = Scorer(settings(pending_max=3), {})
    feed(sc, [verdict(i, "q") for i in range(5)])
    st = sc.state("q")
    assert sc.pending_count("q") == 3
    assert st.expired_pending == 2


def test_duplicate_decision_in_one_batch_keeps_the_first_copy() -> None:
    sc = Scorer(settings(), {})
    feed(sc, [decision(1, "q", T0), decision(1, "q", T0 + 5 * H)])
    feed(sc, [verdict(1, "q")])
    st = sc.state("q")
    assert st.decisions_total == 1
    assert st.buckets[int(T0.timestamp())].n == 1


def test_every_closed_subgroup_is_published_once_with_its_status() -> None:
    rng = random.Random(11)
    sc = Scorer(settings(phase1_subgroups=3), {})
    out = Output()
    for hour in range(9):
        n = 3 if hour == 1 else 60  # hour 1 is too small to learn from
        o = feed(sc, hour_of_traffic(hour * 1000, hour, n, 0.1, rng))
        out.points += o.points
    starts = [p.start for p in out.points]
    assert len(starts) == len(set(starts))  # each once
    assert starts == sorted(starts)
    st = sc.state("q")
    assert len(out.points) == st.closed_count
    assert [p.status for p in out.points[:5]] == [
        "phase1", "learning_skipped", "phase1", "phase1", "charted",
    ]  # fmt: skip
    charted = out.points[4]
    assert charted.center is not None
    assert charted.center == st.baseline_p
    assert charted.lcl is not None
    assert charted.ucl is not None
    assert charted.lcl <= charted.center <= charted.ucl
    assert charted.revision == 0
    assert charted.original_n == charted.n


def test_late_verdicts_revise_the_published_subgroup_and_never_alert() -> None:
    sc = Scorer(settings(baseline_p={"q": 0.05}), {})
    rng = random.Random(12)
    closed = feed(sc, [*hour_of_traffic(0, 0, 40, 0.0, rng), decision("tick", "q", T0 + 5 * H)])
    assert [p.revision for p in closed.points if p.start == T0] == [0]
    (first,) = [p for p in closed.points if p.start == T0]
    assert first.ewma is not None
    late = [decision(f"x{i}", "q", T0 + timedelta(minutes=i)) for i in range(30)]
    late += [verdict(f"x{i}", "q", T0 + 5 * H, correct=False) for i in range(30)]
    out = feed(sc, late)
    revised = [p for p in out.points if p.start == T0]
    assert [p.revision for p in revised] == [1]
    r = revised[0]
    assert (r.original_n, r.original_errors) == (40, 0)
    assert (r.n, r.errors, r.late) == (70, 30, 30)
    assert "p_chart_ucl" in r.signals  # shown on the chart ...
    assert not [b for b in out.breaches if b.kind == "spc"]  # ... but raises no SPC alert
    # the EWMA runs in time order: a revision carries it as it stood at the close (a chart
    # of revised points keeps its EWMA line), not restepped with the late errors
    assert (r.ewma, r.ewma_ucl) == (first.ewma, first.ewma_ucl)
    assert "ewma_ucl" not in r.signals
    snap = sc.snapshot(sc.state("q"), time.time())
    assert snap.late_verdicts_total == 30
    assert snap.subgroups_closed >= 1


def test_a_revision_keeps_the_ewma_signal_its_subgroup_closed_with() -> None:
    """Found by the wall's browser test: revisions were published without their EWMA, so
    a queue whose subgroups all took late verdicts lost its EWMA line."""
    sc = Scorer(settings(baseline_p={"q": 0.05}), {})
    rng = random.Random(5)
    closed = feed(sc, [*hour_of_traffic(0, 0, 60, 0.5, rng), decision("tick", "q", T0 + 5 * H)])
    (first,) = [p for p in closed.points if p.start == T0]
    assert "ewma_ucl" in first.signals
    out = feed(sc, [decision("late-only", "q", T0 + timedelta(minutes=30))])
    (revised,) = [p for p in out.points if p.start == T0]
    assert (revised.ewma, revised.ewma_ucl) == (first.ewma, first.ewma_ucl)
    assert revised.signals == first.signals
    # the closing EWMA survives the state's round trip, and a bucket written before it was
    # kept reads as none
    st = sc.state("q")
    again = QueueState.from_dict(st.to_dict())
    assert again.buckets[int(T0.timestamp())].ewma == [first.ewma, first.ewma_ucl]
    old = st.buckets[int(T0.timestamp())].to_list()[:12]
    assert Bucket.from_list(old).ewma is None


def test_a_late_decision_alone_revises_the_published_subgroup() -> None:
    """Found by a new user: a decision arriving after its hour was charted changed the
    queue's total but not the published subgroup's decisions."""
    sc = Scorer(settings(baseline_p={"q": 0.05}), {})
    rng = random.Random(12)
    closed = feed(sc, [*hour_of_traffic(0, 0, 40, 0.0, rng), decision("tick", "q", T0 + 5 * H)])
    (first,) = [p for p in closed.points if p.start == T0]
    out = feed(sc, [decision("late-only", "q", T0 + timedelta(minutes=30))])
    (revised,) = [p for p in out.points if p.start == T0]
    assert revised.revision == first.revision + 1
    assert revised.decisions == first.decisions + 1
    assert (revised.n, revised.errors, revised.late) == (first.n, first.errors, first.late)
    assert feed(sc, [decision("late-only", "q", T0 + timedelta(minutes=30))]).points == []


def test_held_back_snapshots_are_flushed_later() -> None:
    sc = Scorer(settings(snapshot_interval_s=60.0), {})
    b = batches.group_by_queue(validate_items([decision(1, "q")], None).events)[0]
    w = time.time()
    sc.process(b, w, (0, 0))
    sc.commit("q")
    assert sc.snapshot_if_due("q", w) is not None
    b2 = batches.group_by_queue(validate_items([decision(2, "q")], None).events)[0]
    sc.process(b2, w + 10, (0, 1))
    sc.commit("q")
    assert sc.snapshot_if_due("q", w + 10) is None  # throttled, not dropped
    assert sc.due_snapshots(w + 30) == []
    (snap,) = sc.due_snapshots(w + 61)
    assert snap.decisions_total == 2
    assert sc.due_snapshots(w + 1000) == []  # nothing changed since


def test_acknowledged_outputs_leave_the_queue_record() -> None:
    rng = random.Random(13)
    sc = Scorer(settings(phase1_subgroups=2), {})
    feed(sc, hour_of_traffic(0, 0, 30, 0.1, rng) + hour_of_traffic(1000, 6, 30, 0.1, rng))
    entries = sc.unsent("q")
    assert entries
    assert sc.unsent("q") == []
    assert len(sc.state("q").outbox) == len(entries)
    for e in entries[:-1]:
        sc.acked("q", e.seq)
    feed(sc, [decision("more", "q", T0 + 6 * H)])
    assert [e[0] for e in sc.state("q").outbox] == [entries[-1].seq]


def test_a_flood_of_orphan_verdicts_keeps_the_queue_record_small() -> None:
    table: dict[str, Any] = {}
    sc = Scorer(settings(pending_max=10_000), table)
    items = [verdict(f"o{i}", "q", T0 + H, decision_id=f"missing{i}") for i in range(10_000)]
    feed(sc, items)
    assert sc.pending_count("q") == 10_000
    assert len(codec.dumps(table["q|q"])) < 4096
    assert max(len(codec.dumps(v)) for v in table.values()) < 1024 * 1024


@pytest.mark.parametrize("item", [7, "text", None, [1, 2], {"decision_id": 5}])
def test_items_of_the_wrong_shape_go_to_the_dead_letter_topic(item: Any) -> None:
    sc = Scorer(settings(), {})
    batch: Any = {
        "v": 1,
        "queue_id": "q",
        "decisions": [item, decision(1, "q")],
        "verdicts": [item],
    }
    out = sc.process(batch, time.time(), (0, 0))
    assert len(out.rejected) == 2
    assert all(reason.startswith("scorer: ") for _, reason in out.rejected)
    sc.commit("q")
    assert sc.state("q").decisions_total == 1
    # counted, and published: the snapshot (and so qw_queue_rejected_items) says how many
    assert sc.snapshot(sc.state("q"), time.time()).rejected_items == 2
    assert QueueState.from_dict(sc.state("q").to_dict()).rejected_items == 2


def test_admission_refuses_every_field_it_would_use_with_a_wrong_type_or_range() -> None:
    """An event straight on the events topic (no ingest in front) with a wrong type in any
    field the scorer reads is dead-lettered with a reason; the batch's good events count.
    (An error_type object used to make ``process`` raise; severity "high" was counted.)"""
    sc = Scorer(settings(), {})
    good = [decision(i, "q", T0) for i in range(3)]
    bad_decisions = [
        decision("s1", "q", T0, severity="high"),
        decision("s2", "q", T0, severity=0),
        decision("s3", "q", T0, severity=True),
        decision("s4", "q", T0, severity=None),
        decision("t1", "q", T0, moderator_tenure_days="long"),
        decision("t2", "q", T0, moderator_tenure_days=-1),
        decision("i1", "q", T0, decision_id="D" * 100_000),
    ]
    verdicts = [
        verdict(0, "q", correct=False, error_type={"x": 1}),
        verdict(1, "q", correct=False, error_type=5),
        verdict(2, "q", correct=False, error_type="made_up"),
        verdict(0, "q", verdict_id="v0b", sample_type=["random"]),
        verdict(1, "q", verdict_id="v1b", sample_type="gold"),
        verdict(2, "q", verdict_id="v2b", outcome="maybe"),
        verdict(0, "q", verdict_id="v0c", correct=False, error_type="technical"),
    ]
    batch = batches.EventBatch(v=1, queue_id="q", decisions=good + bad_decisions, verdicts=verdicts)
    out = sc.process(batch, T0.timestamp() + 86400, (0, 0))
    sc.commit("q")
    reasons = [reason for _, reason in out.rejected]
    assert len(reasons) == len(bad_decisions) + len(verdicts) - 1, reasons
    for word in ("severity", "moderator_tenure_days", "decision_id"):
        assert any(word in r for r in reasons[: len(bad_decisions)]), (word, reasons)
    for word in ("error_type", "sample_type", "outcome"):
        assert any(word in r for r in reasons[len(bad_decisions) :]), (word, reasons)
    st = sc.state("q")
    assert (st.decisions_total, st.verdicts_total) == (3, 1)
    assert st.buckets[int(T0.timestamp())].errors_by_type == {"technical": 1}


def _hole_traffic(q: str) -> list[list[dict[str, Any]]]:
    """trial7 holes.py hole2: hours 0 and 2 decided on time and reviewed 10 h later, hour
    1's decisions stalled until then, then live traffic at hour 14: four batches."""

    def dec(h: int, k: int) -> dict[str, Any]:
        return decision(f"{h}-{k}", q, T0 + h * H + timedelta(minutes=k))

    def ver(h: int, k: int, lag: int, correct: bool = True) -> dict[str, Any]:
        return verdict(f"{h}-{k}", q, T0 + h * H + timedelta(minutes=k) + lag * H, correct)

    return [
        [dec(h, k) for h in (0, 2) for k in range(25)],
        [ver(h, k, 10) for h in (0, 2) for k in range(25)],
        [dec(1, k) for k in range(25)] + [ver(1, k, 11, k >= 10) for k in range(25)],
        [dec(14, 0)],
    ]


@pytest.mark.parametrize("baseline", [True, False], ids=["frozen", "phase1"])
def test_a_subgroup_whose_events_come_after_a_later_one_closed_is_published(
    baseline: bool,
) -> None:
    """Hour 1's events arrive after hour 2 (and every hour to 11) closed: hour 1 still
    closes once, with the status its n calls for, counts in subgroups_closed, and, being
    out of order, steps no EWMA and raises no alert (it used to stay unpublished)."""
    sc = Scorer(settings(baseline_p={"q": 0.05} if baseline else {}), {})
    points, breaches = [], []
    for items in _hole_traffic("q"):
        out = feed(sc, items, wall=(T0 + 15 * H).timestamp())
        points += out.points
        breaches += out.breaches
    h1 = [p for p in points if p.start == T0 + H]
    assert len(h1) == 1, [(p.start, p.revision) for p in points]
    assert (h1[0].revision, h1[0].n, h1[0].errors, h1[0].late) == (
        0,
        25,
        10,
        0,
    )  # its first counts, not late ones
    st = sc.state("q")
    assert st.closed_count == 3 == len({p.start for p in points})
    assert st.buckets[int((T0 + H).timestamp())].rev == 0
    if baseline:
        assert h1[0].status == "charted"
        assert h1[0].lcl is not None
        assert h1[0].ucl is not None
        assert h1[0].ucl < 10 / 25
        assert h1[0].signals == ["p_chart_ucl"]
        assert h1[0].ewma is None  # out of order: the EWMA ran on hours 0 and 2 only
        assert breaches == []  # (10 errors in 25 would alarm in order)
        assert st.last_point is not None
        assert st.last_point.start == T0 + 2 * H
    else:
        assert h1[0].status == "phase1"
        assert len(st.phase1) == 3


def test_the_same_ids_in_two_queues_are_two_sets_of_events() -> None:
    """trial7 burst1/burst2: two queues of one partition with the same decision ids. Each
    queue counts its own decisions, joins its verdicts to its own decisions, and holds a
    verdict whose decision only the other queue has (it used to deduplicate burst2's
    decisions against burst1's and join burst2's verdict to burst1's decision)."""
    sc = Scorer(settings(), {})
    feed(sc, [decision(f"b-{i}", "burst1", T0) for i in (1, 2, 3)])
    feed(sc, [verdict("b-9", "burst2"), verdict("b-1", "burst1")])
    feed(sc, [decision(f"b-{i}", "burst2", T0 + H, site_id="manila") for i in (1, 2, 3)])
    feed(sc, [verdict("b-2", "burst2", T0 + 2 * H, correct=False)])
    one, two = sc.state("burst1"), sc.state("burst2")
    assert (one.decisions_total, two.decisions_total) == (3, 3)
    assert (one.verdicts_total, two.verdicts_total) == (1, 1)
    assert two.buckets[int((T0 + H).timestamp())].e == 1  # burst2's own decision's hour
    assert int(T0.timestamp()) not in two.buckets
    assert (sc.pending_count("burst1"), sc.pending_count("burst2")) == (0, 1)
    feed(sc, [decision("b-1", "burst1", T0)])  # still a duplicate within its own queue
    assert sc.state("burst1").decisions_total == 3


def test_a_revision_that_brings_a_too_small_subgroup_to_min_n_charts_it() -> None:
    """A subgroup closed with no verdicts (too_small) that late verdicts bring to n=28 is
    republished as charted, with the p-chart limits of n=28, and still raises no alert (it
    used to stay too_small with null limits)."""
    sc = Scorer(settings(baseline_p={"q": 0.05}), {})
    feed(sc, [decision(f"a{i}", "q", T0 + timedelta(minutes=i)) for i in range(28)])
    first = feed(sc, [decision("live", "q", T0 + 4 * H)]).points
    assert [(p.status, p.n, p.ucl) for p in first] == [("too_small", 0, None)]
    late = [verdict(f"a{i}", "q", T0 + 5 * H, correct=i >= 12) for i in range(28)]
    out = feed(sc, late)
    (rev,) = [p for p in out.points if p.start == T0]
    assert (rev.revision, rev.status, rev.n, rev.errors, rev.late) == (1, "charted", 28, 12, 28)
    assert rev.center == 0.05
    assert rev.lcl is not None
    assert rev.ucl is not None
    assert rev.ucl < 12 / 28
    assert rev.signals == ["p_chart_ucl"]
    # (the 24h accuracy target may fire on these counts: not a subgroup alert)
    assert [b for b in out.breaches if b.rule in {"p_chart_ucl", "ewma_ucl"}] == []
    assert sc.state("q").buckets[int(T0.timestamp())].status == "charted"
