"""The events topic's batch format v3 (one list per field) beside v2 (an object per event):
ingest's batches are written as v3, decode and score exactly as v2; a malformed v3 batch is
refused whole with its reason, a bad value refuses its event alone, as in v2."""

from __future__ import annotations

import re
import time
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.validation import validate_items
from services.scorer import core
from services.scorer.core import Scorer
from shared import batches, codec
from tests.factories import decision, verdict
from tests.unit.test_batch_v2 import (
    _CHOICES,
    _GOOD_DECISION,
    _GOOD_VERDICT,
    _ODD,
    _VALUES,
    scorer_settings,
    traffic,
)

HORIZON = 1.9e9 + 900


def test_ingest_batches_are_written_as_columns_and_stand_for_the_same_events() -> None:
    events = validate_items([decision(1, "a"), verdict(1, "a"), decision(2, "a")], None).events
    (b,) = batches.group_by_queue(events)
    data = batches.encode(b)
    decoded = cast(batches.ColumnBatch, batches.decode(data))
    assert decoded["v"] == 3
    assert decoded["decisions"]["decision_id"] == ["d1", "d2"]
    assert decoded["verdicts"]["verdict_id"] == ["v1"]
    assert batches.rows(decoded["decisions"]) == b["decisions"]
    assert batches.rows(decoded["verdicts"]) == b["verdicts"]
    assert (batches.count(decoded, "decisions"), batches.count(decoded, "verdicts")) == (2, 1)
    assert len(data) < len(codec.dumps(b))  # field names once, not once an event


def test_a_batch_whose_events_differ_in_fields_is_written_as_v2() -> None:
    events = validate_items([decision(1, "a"), decision(2, "a")], None).events
    (b,) = batches.group_by_queue(events)
    del b["decisions"][1]["market"]
    decoded = batches.decode(batches.encode(b))
    assert decoded == b
    assert decoded["v"] == 2
    assert batches.columns(b) is None


def test_v3_scores_exactly_as_v2() -> None:
    """Two scorers, one fed v2, one v3, same traffic: same outputs, same state."""
    two, three = Scorer(scorer_settings(), {}), Scorer(scorer_settings(), {})
    wall = time.time()
    offset = 0
    for poll in traffic(5):
        for b in batches.group_by_queue(poll):
            offset += 1
            d2 = batches.decode(codec.dumps(b))
            d3 = batches.decode(batches.encode(b))
            assert (d2["v"], d3["v"]) == (2, 3)
            o2 = two.process(d2, wall, (0, offset))
            o3 = three.process(d3, wall, (0, offset))
            assert not o2.rejected
            assert not o3.rejected
            assert o2.points == o3.points
            assert o2.breaches == o3.breaches
            two.commit(b["queue_id"])
            three.commit(b["queue_id"])
    for q in ("q1", "q2"):
        s2, s3 = two.state(q), three.state(q)
        assert s2.to_dict() == s3.to_dict()
        assert two.snapshot(s2, wall) == three.snapshot(s3, wall)
        assert s3.decisions_total == 240
        assert s3.closed_count > 0


def _v3(**kinds: Any) -> bytes:
    return codec.dumps({"v": 3, "queue_id": "q", "decisions": {}, "verdicts": {}, **kinds})


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_v3(decisions=[]), "without decisions/verdicts objects of columns"),
        (_v3(verdicts=None), "without decisions/verdicts objects of columns"),
        (_v3(decisions={"decision_id": "d1"}), "column 'decision_id' is not a list"),
        (_v3(decisions={"decision_id": ["d1", "d2"], "decided_at": [1.8e9]}),
         r"columns of different lengths \[1, 2\]"),
        (_v3(verdicts={"verdict_id": ["v"] * 2001}), "EventBatch with 2001 verdicts, more than"),
        (_v3(decisions={"decision_id": ["d1", "d2"], "queue_id": ["q", "other"]}),
         "decision 1 belongs to queue 'other'"),
        (_v3(decisions={"decision_id": ["d1", "d2"], "site_id": ["ok", "a/b"]}),
         "decision 1: site_id 'a/b' is not a valid key id"),
        (_v3(decisions={"policy_id": ["p|1"]}), "decision 0: policy_id 'p|1' is not a valid"),
    ],
)  # fmt: skip
def test_a_malformed_v3_batch_is_refused_whole_with_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        batches.decode(raw)


def test_an_empty_v3_batch_and_one_of_the_batch_queue_decode() -> None:
    assert batches.count(batches.decode(_v3()), "decisions") == 0
    ok = batches.decode(_v3(decisions={"decision_id": ["d1"], "queue_id": ["q"]}))
    assert batches.count(ok, "decisions") == 1


def test_a_bad_value_refuses_its_event_alone_with_the_v2_reason() -> None:
    """A v3 batch with one odd value in a column: that event goes to the dead-letter topic
    as the v2 event it stands for, with the reason v2 gives; the others are scored."""
    events = validate_items([decision(i, "q") for i in range(4)] + [verdict(1, "q")], None).events
    (b,) = batches.group_by_queue(events)
    b["decisions"][2]["severity"] = 7
    b["verdicts"][0]["reviewed_at"] = "soon"
    v2, v3 = Scorer(scorer_settings(), {}), Scorer(scorer_settings(), {})
    wall = time.time()
    o2 = v2.process(batches.decode(codec.dumps(b)), wall, (0, 0))
    o3 = v3.process(batches.decode(batches.encode(b)), wall, (0, 0))
    assert [(e["decision_id"], r) for e, r in o3.rejected] == [
        ("d2", "scorer: severity '7' must be an integer from 1 to 4"),
        ("d1", "scorer: reviewed_at 'soon' is invalid or in the future"),
    ]
    assert repr(o3.rejected) == repr(o2.rejected)
    assert v3.state("q").to_dict() == v2.state("q").to_dict()
    assert v3.state("q").decisions_total == 3
    assert v3.state("q").rejected_items == 2


def _admit_v3(kind: str, cols: dict[str, list[Any]]) -> tuple[Any, Any]:
    """As ``Scorer.process`` admits a v3 kind: the columns at once, else event by event."""
    out = core.Output()
    field = "decided_at" if kind == "decisions" else "reviewed_at"
    quick = core._quick_decisions if kind == "decisions" else core._quick_verdicts
    copies = {k: list(v) for k, v in cols.items()}
    kept = quick(copies, HORIZON)
    if kept is None:
        kept = core.Scorer._admit_rows(copies, HORIZON, out, field)
    return kept, out.rejected


def _admit_v2(kind: str, events: list[dict[str, Any]]) -> tuple[Any, Any]:
    """As ``Scorer.process`` admits the same events in a v2 batch, with its full checks."""
    out = core.Output()
    copies = [dict(e) for e in events]
    if kind == "decisions":
        kept = core._decision_columns(
            core.Scorer._admit(
                copies, core._DECISION_KEYS, "decided_at", HORIZON, out, core._decision_fault, True
            )
        )
    else:
        kept = core._verdict_columns(
            core.Scorer._admit(
                copies, core._VERDICT_KEYS, "reviewed_at", HORIZON, out, core._verdict_fault, True
            )
        )
    return kept, out.rejected


def _same(kind: str, cols: dict[str, list[Any]]) -> None:
    v3, v2 = _admit_v3(kind, cols), _admit_v2(kind, batches.rows(cols))
    assert repr(v3) == repr(v2)  # (repr: NaN is not equal to itself)
    times = v3[0][1] if kind == "decisions" else v3[0][2]
    assert {type(t) for t in times} <= {float}


@st.composite
def _columns(draw: Any, good: dict[str, Any]) -> dict[str, list[Any]]:
    """Up to five copies of a good event as columns, a field or two left out of all of them,
    a few values changed to odd ones."""
    n = draw(st.integers(0, 5))
    left_out = draw(st.lists(st.sampled_from(sorted(good)), max_size=2))
    cols = {k: [v] * n for k, v in good.items() if k not in left_out}
    for _ in range(draw(st.integers(0, 3)) if n else 0):
        name = draw(st.sampled_from(sorted(cols)))
        cols[name][draw(st.integers(0, n - 1))] = draw(_CHOICES.get(name, _ODD))
    return cols


@settings(max_examples=400, deadline=None)
@given(decisions=_columns(_GOOD_DECISION), verdicts=_columns(_GOOD_VERDICT))
def test_admission_per_column_keeps_what_the_full_checks_keep(
    decisions: dict[str, list[Any]], verdicts: dict[str, list[Any]]
) -> None:
    """Whatever the values, a v3 batch's kept events (times as floats), refusals and reasons
    are those of the v2 batch of the same events through the full checks alone."""
    _same("decisions", decisions)
    _same("verdicts", verdicts)


def test_admission_per_column_agrees_on_every_single_change() -> None:
    """Three good events, the middle one with one field changed to each of many values;
    and each field left out of all three."""
    for good, kind in ((_GOOD_DECISION, "decisions"), (_GOOD_VERDICT, "verdicts")):
        for name in good:
            _same(kind, {k: [v] * 3 for k, v in good.items() if k != name})
            for value in _VALUES:
                cols = {k: [v] * 3 for k, v in good.items()}
                cols[name][1] = value
                _same(kind, cols)


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize(
    ("field", "values", "reason"),
    [
        ("queue_id", ["q", "other"], "EventBatch decision 1 belongs to queue 'other'"),
        ("site_id", ["ok", "a/b"], "EventBatch decision 1: site_id 'a/b' is not a valid key id"),
        ("policy_id", ["p|1"], "EventBatch decision 0: policy_id 'p|1' is not a valid key id"),
    ],
)
def test_rows_and_columns_are_refused_with_the_same_reason(
    version: int, field: str, values: list[str], reason: str
) -> None:
    """One rule, one message: an event of another queue, or a key that is not a key id."""
    ids = [f"d{i}" for i in range(len(values))]
    if version == 3:
        raw = _v3(decisions={"decision_id": ids, field: values})
    else:
        rows = [{"decision_id": d, field: v} for d, v in zip(ids, values, strict=True)]
        raw = codec.dumps({"v": version, "queue_id": "q", "decisions": rows, "verdicts": []})
    with pytest.raises(ValueError, match=f"^{re.escape(reason)}$"):
        batches.decode(raw)
