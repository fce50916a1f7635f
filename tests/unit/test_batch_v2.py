"""The events topic's batch format v2 (event times as numbers) beside v1 (RFC 3339 text):
v2 round-trips, v1 still decodes and scores to the same state, bad numbers are refused."""

from __future__ import annotations

import json
import math
import random
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.validation import validate_items
from services.scorer.core import Scorer
from services.scorer.settings import ScorerSettings
from shared import batches, codec
from shared.events import Decision, Verdict
from tests.factories import T0, decision, iso, verdict

H = timedelta(hours=1)


def scorer_settings() -> ScorerSettings:
    return ScorerSettings(
        subgroup_seconds=3600, grace_seconds=2 * 3600, phase1_subgroups=3, min_subgroup_n=5,
        snapshot_interval_s=0.0,
    )  # fmt: skip


def v1_batches(events: list[Decision | Verdict]) -> list[batches.EventBatch]:
    """What ingest wrote before v2: every field as the event's JSON, times as text."""
    out: list[batches.EventBatch] = []
    for q in sorted({e.queue_id for e in events}):
        out.append(
            batches.EventBatch(
                v=1, queue_id=q,
                decisions=[e.model_dump(mode="json") for e in events
                           if isinstance(e, Decision) and e.queue_id == q],
                verdicts=[e.model_dump(mode="json") for e in events
                          if isinstance(e, Verdict) and e.queue_id == q],
            )
        )  # fmt: skip
    return out


def traffic(seed: int) -> list[list[Decision | Verdict]]:
    """Hours of two queues' events with odd offsets, microseconds, late decisions, verdicts
    before their decision and duplicates, as ingest validated them, one list per poll."""
    rng = random.Random(seed)
    zones = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-7))]
    polls: list[list[dict[str, Any]]] = []
    for hour in range(8):
        items: list[dict[str, Any]] = []
        for i in range(30):
            for q in ("q1", "q2"):
                k = f"{q}-{hour}-{i}"
                at = T0 + hour * H + timedelta(microseconds=rng.randrange(3600 * 10**6))
                zone = zones[rng.randrange(3)]
                d = decision(k, q, decided_at=at.astimezone(zone).isoformat())
                v = verdict(k, q, correct=rng.random() > 0.1,
                            reviewed_at=iso(at + timedelta(minutes=rng.uniform(1, 150))))  # fmt: skip
                items += [v, d] if rng.random() < 0.2 else [d, v]
                if rng.random() < 0.05:
                    items.append(v)  # a duplicate
        rng.shuffle(items)
        polls.append(items)
    out = []
    for items in polls:
        result = validate_items(items, None)
        assert not result.errors
        out.append(result.events)
    return out


def test_v2_round_trips_with_times_as_numbers() -> None:
    events = validate_items([decision(1, "a"), verdict(1, "a"), decision(2, "b")], None).events
    out = batches.group_by_queue(events)
    assert [b["v"] for b in out] == [2, 2]
    a = out[0]
    assert batches.decode(codec.dumps(a)) == a
    assert a["decisions"][0]["decided_at"] == T0.timestamp()
    assert a["verdicts"][0]["reviewed_at"] == (T0 + H).timestamp()
    # the batch and its lists say what the events no longer repeat
    assert not {"v", "kind", "queue_id"} & (a["decisions"][0].keys() | a["verdicts"][0].keys())
    assert len(codec.dumps(a)) < len(codec.dumps(v1_batches(events)[0]))


def test_a_v1_batch_still_decodes_and_scores_exactly_as_v2() -> None:
    """Two scorers, one fed the old format, one the new, same traffic: same state."""
    old, new = Scorer(scorer_settings(), {}), Scorer(scorer_settings(), {})
    wall = (T0 + 40 * H).timestamp()
    offset = 0
    for poll in traffic(3):
        for b1, b2 in zip(v1_batches(poll), batches.group_by_queue(poll), strict=True):
            offset += 1
            d1 = batches.decode(batches.encode(b1))
            d2 = batches.decode(codec.dumps(b2))  # (encode would write it as v3)
            assert (d1["v"], d2["v"]) == (1, 2)
            o1 = old.process(d1, wall, (0, offset))
            o2 = new.process(d2, wall, (0, offset))
            assert not o1.rejected
            assert not o2.rejected
            assert o1.points == o2.points
            assert o1.breaches == o2.breaches
            old.commit(b1["queue_id"])
            new.commit(b2["queue_id"])
    for q in ("q1", "q2"):
        s1, s2 = old.state(q), new.state(q)
        assert s1.to_dict() == s2.to_dict()
        assert old.snapshot(s1, wall) == new.snapshot(s2, wall)
        assert s1.decisions_total == 240
        assert s1.closed_count > 0


@pytest.mark.parametrize(
    "bad",
    [True, None, "2026-11-02T00:00:00Z", [1], {"t": 1}, 1e300, -1e300, 10**30,
     batches.MAX_EPOCH + 1, batches.MIN_EPOCH - 1],
)  # fmt: skip
def test_a_v2_event_time_that_is_no_time_is_refused_alone(bad: Any) -> None:
    events = validate_items([decision(1, "q"), decision(2, "q"), verdict(1, "q")], None).events
    b = batches.group_by_queue(events)[0]
    b["decisions"][1]["decided_at"] = bad
    b["verdicts"].append({**b["verdicts"][0], "verdict_id": "v9", "reviewed_at": bad})
    sc = Scorer(scorer_settings(), {})
    # the standard library's encoder writes integers of any size, as another producer may
    out = sc.process(batches.decode(json.dumps(b).encode()), time.time(), (0, 0))
    seen = codec.loads(json.dumps(bad))  # (orjson reads an integer past 64 bits as a float)
    assert [(r[0]["decision_id"], r[1]) for r in out.rejected] == [
        ("d2", f"scorer: decided_at {seen!r} is invalid or in the future"),
        ("d1", f"scorer: reviewed_at {seen!r} is invalid or in the future"),
    ]
    st_ = sc.state("q")
    assert (st_.decisions_total, st_.verdicts_total) == (1, 1)


def test_a_v2_time_in_the_future_is_refused_and_an_integer_time_is_taken() -> None:
    b = batches.group_by_queue(validate_items([decision(1, "q"), decision(2, "q")], None).events)[0]
    b["decisions"][0]["decided_at"] = int(T0.timestamp())
    b["decisions"][1]["decided_at"] = time.time() + 3600
    sc = Scorer(scorer_settings(), {})
    out = sc.process(b, time.time(), (0, 0))
    assert [r[0]["decision_id"] for r in out.rejected] == ["d2"]
    assert sc.state("q").watermark == T0.timestamp()


def test_a_v1_batch_needs_its_times_as_text() -> None:
    events = validate_items([decision(1, "q"), decision(2, "q")], None).events
    b = v1_batches(events)[0]
    b["decisions"][1]["decided_at"] = T0.timestamp()
    out = Scorer(scorer_settings(), {}).process(b, time.time(), (0, 0))
    assert [r[1] for r in out.rejected] == [
        "scorer: fields ['decided_at'] must be strings of <= 200"
    ]


@pytest.mark.parametrize("v", [4, 0, True, 2.0, "2", None])
def test_decode_refuses_an_unknown_version(v: Any) -> None:
    with pytest.raises(ValueError, match="not an EventBatch v1 or v2 or v3"):
        batches.decode(codec.dumps({"v": v, "queue_id": "a", "decisions": [], "verdicts": []}))


def test_epoch_takes_numbers_of_the_years_an_rfc3339_text_can_name() -> None:
    assert batches.epoch(batches.MIN_EPOCH) == batches.MIN_EPOCH
    assert batches.epoch(batches.MAX_EPOCH) == batches.MAX_EPOCH
    assert batches.epoch(0) == 0.0
    assert isinstance(batches.epoch(0), float)
    for bad in (math.nan, math.inf, -math.inf, False, "0", None, 10**400):
        assert batches.epoch(bad) is None


@settings(max_examples=300, deadline=None)
@given(
    at=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)),
                                   timezone(-timedelta(hours=23, minutes=59))]),
    )
)  # fmt: skip
def test_the_v2_number_is_the_one_the_scorer_read_from_v1_text(at: datetime) -> None:
    """For any instant, zone and microsecond, the number ingest now carries is exactly what
    the scorer computed from the v1 text (so subgroup boundaries cannot move)."""
    # (the model alone: ingest's clock check would refuse the times after now)
    event = Decision.model_validate(decision(1, "q", decided_at=at.isoformat()))
    carried = codec.loads(codec.dumps(batches.item(event)))["decided_at"]
    text = event.model_dump(mode="json")["decided_at"]
    assert carried == datetime.fromisoformat(text).timestamp()
    assert batches.epoch(carried) == carried


def test_a_batch_of_more_than_2000_events_of_a_kind_is_refused_whole() -> None:
    """Ingest never writes more; a producer writing to the events topic directly could (the
    topic takes 8 MiB), and the scorer's state for one batch must stay bounded."""
    item = {"decision_id": "d", "decided_at": 1.8e9}
    limit = batches.MAX_EVENTS_PER_MESSAGE
    for kind in ("decisions", "verdicts"):
        ok = {"v": 2, "queue_id": "q", "decisions": [], "verdicts": [], kind: [item] * limit}
        assert batches.check(ok) is ok
        over = {**ok, kind: [item] * (limit + 1)}
        with pytest.raises(ValueError, match=f"EventBatch with {limit + 1} {kind}, more than"):
            batches.decode(codec.dumps(over))


@pytest.mark.parametrize("t", [-62135596800, -3600, 0, 946684799.999])
def test_an_event_time_before_2000_is_refused_alone(t: float) -> None:
    good = {"decision_id": "ok", "content_id": "c", "moderator_id": "m", "site_id": "s",
            "policy_id": "p", "action": "remove", "decided_at": 1.8e9, "severity": 2}  # fmt: skip
    old = {**good, "decision_id": "old", "decided_at": t}
    v1 = {**good, "decision_id": "old1", "decided_at": "1969-12-31T23:00:00Z"}
    scorer = Scorer(ScorerSettings(), {})
    out = scorer.process(
        {"v": 2, "queue_id": "q", "decisions": [good, old], "verdicts": []}, 1.9e9, (0, 0)
    )
    assert [(e["decision_id"], r) for e, r in out.rejected] == [
        ("old", f"scorer: decided_at {t!r} is before 2000-01-01T00:00:00Z")
    ]
    out = scorer.process(
        {"v": 1, "queue_id": "q", "decisions": [v1], "verdicts": []}, 1.9e9, (0, 1)
    )
    assert [r for _, r in out.rejected] == [
        "scorer: decided_at '1969-12-31T23:00:00Z' is before 2000-01-01T00:00:00Z"
    ]
    st = scorer.state("q")
    assert st.decisions_total == 1
    assert min(st.buckets) > 0


class _Text(str):
    """A str subclass (a StrEnum's values are): not what a JSON decoder makes."""


_ODD_VALUES: list[Any] = [
    None, True, False, 0, 2, 5, -1, 36500, 36501, 2.0, "", "x" * 200, "x" * 201, [], {},
    _Text("ok"), _Text("correct"), math.nan, math.inf, -math.inf,
]  # fmt: skip
_ODD = st.sampled_from(_ODD_VALUES)
_TIMES = st.one_of(
    st.sampled_from(
        [batches.MIN_EVENT_EPOCH, batches.MIN_EVENT_EPOCH - 0.001, 1.9e9 + 900, 1.9e9 + 900.001,
         batches.MAX_EPOCH, batches.MAX_EPOCH + 1, 10**300, 1.8e9, int(1.8e9), True, "1.8e9",
         math.nan]
    ),
    st.floats(allow_nan=True),
    st.integers(),
)  # fmt: skip
_GOOD_DECISION = {
    "decision_id": "d1", "site_id": "s1", "moderator_id": "m1", "policy_id": "p.v1",
    "decided_at": 1.8e9, "severity": 2, "moderator_tenure_days": 30,
}  # fmt: skip
_GOOD_VERDICT = {
    "verdict_id": "v1", "decision_id": "d1", "reviewed_at": 1.8e9, "outcome": "incorrect",
    "error_type": "over_enforcement", "sample_type": "random",
}  # fmt: skip
_CHOICES = {
    "decided_at": _TIMES, "reviewed_at": _TIMES,
    "severity": st.one_of(st.sampled_from([1, 3, 4]), _ODD),
    "moderator_tenure_days": st.one_of(st.sampled_from([0, 36500]), _ODD),
    "outcome": st.one_of(st.sampled_from(["correct", "wrong"]), _ODD),
    "error_type": st.one_of(st.sampled_from(["under_enforcement", "nope"]), _ODD),
    "sample_type": st.one_of(st.sampled_from(["targeted", "appeal", "nope"]), _ODD),
}  # fmt: skip


@st.composite
def _event(draw: Any, good: dict[str, Any]) -> Any:
    """A good event with none, one or a few fields changed to odd values or left out."""
    event = dict(good)
    for name in draw(st.lists(st.sampled_from(sorted(good)), max_size=3)):
        if draw(st.booleans()):
            event.pop(name, None)
            continue
        event[name] = draw(_CHOICES.get(name, _ODD))
    return event


def _events(good: dict[str, Any]) -> Any:
    return st.lists(st.one_of(_event(good), _event(good), _ODD), max_size=6)


@settings(max_examples=400, deadline=None)
@given(decisions=_events(_GOOD_DECISION), verdicts=_events(_GOOD_VERDICT))
def test_the_scorers_quick_admission_keeps_what_the_full_checks_keep(
    decisions: list[Any], verdicts: list[Any]
) -> None:
    """``_admit`` first offers a v2 event to a quick check of the common case; whatever the
    event, the kept events (times made floats), the refusals and their reasons are those of
    the full checks alone."""
    _same_admission(decisions, verdicts)


def _same_admission(decisions: list[Any], verdicts: list[Any]) -> None:
    from services.scorer import core

    def admit(quick: bool) -> tuple[list[Any], list[tuple[Any, str]]]:
        with pytest.MonkeyPatch.context() as m:
            if not quick:
                m.setattr(core, "_QUICK", {})
            out = core.Output()
            kept = []
            for events, keys, field, fault in (
                (decisions, core._DECISION_KEYS, "decided_at", core._decision_fault),
                (verdicts, core._VERDICT_KEYS, "reviewed_at", core._verdict_fault),
            ):
                copies = [dict(e) if isinstance(e, dict) else e for e in events]
                kept += core.Scorer._admit(copies, keys, field, 1.9e9 + 900, out, fault, True)
            return kept, out.rejected

    quick, full = admit(True), admit(False)
    assert repr(quick) == repr(full)  # (repr: NaN is not equal to itself)
    assert [type(e[f]) for e in quick[0] for f in ("decided_at", "reviewed_at") if f in e] == [
        float for e in full[0] for f in ("decided_at", "reviewed_at") if f in e
    ]


_VALUES = [
    *_ODD_VALUES,
    batches.MIN_EVENT_EPOCH, batches.MIN_EVENT_EPOCH - 0.001, 1.9e9 + 900, 1.9e9 + 900.001,
    batches.MAX_EPOCH, 10**300, int(1.8e9), 1, 3, 4, 36499, "correct", "wrong", "targeted",
    "appeal", "nope", "under_enforcement",
]  # fmt: skip


def test_the_scorers_quick_admission_agrees_on_every_single_change() -> None:
    """Every good event with one field changed to each of many values, or left out."""
    for good, side in ((_GOOD_DECISION, "decisions"), (_GOOD_VERDICT, "verdicts")):
        changed: list[Any] = [dict(good)]
        for name in good:
            changed.append({k: v for k, v in good.items() if k != name})
            changed += [{**good, name: value} for value in _VALUES]
        _same_admission(**{"decisions": [], "verdicts": [], side: changed})
