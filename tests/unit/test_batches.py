from __future__ import annotations

import itertools
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.validation import validate_items
from shared import batches, codec
from tests.factories import decision, verdict


def test_groups_per_queue_and_round_trips() -> None:
    events = validate_items(
        [decision(1, "a"), decision(2, "b"), verdict(1, "a"), decision(3, "a")], None
    ).events
    out = batches.group_by_queue(events)
    assert [b["queue_id"] for b in out] == ["a", "b"]
    a = out[0]
    assert [d["decision_id"] for d in a["decisions"]] == ["d1", "d3"]
    assert [v["verdict_id"] for v in a["verdicts"]] == ["v1"]
    # written as v3, one list per field, standing for the same events
    decoded = batches.decode(batches.encode(a))
    assert decoded["v"] == 3
    assert batches.rows(cast(batches.ColumnBatch, decoded)["decisions"]) == a["decisions"]
    assert batches.rows(cast(batches.ColumnBatch, decoded)["verdicts"]) == a["verdicts"]


def test_large_groups_are_split() -> None:
    n = batches.MAX_EVENTS_PER_MESSAGE + 5
    events = validate_items([decision(i) for i in range(n)], None).events
    out = batches.group_by_queue(events)
    assert [len(b["decisions"]) for b in out] == [batches.MAX_EVENTS_PER_MESSAGE, 5]


def _d(i: int, t: float) -> dict[str, Any]:
    return {"decision_id": f"d{i}", "decided_at": t}


def _v(i: int, t: float) -> dict[str, Any]:
    return {"verdict_id": f"v{i}", "reviewed_at": t}


def test_a_backlog_is_cut_in_event_time_not_by_position() -> None:
    """A queue's poll of a backlog: 16 hours of decisions (5 a minute) and a fifth as many
    verdicts, each an hour after its decision. Cut by position, the first batch held the
    first 2,000 decisions (6.7 hours) with every verdict, reviewed up to 17 hours in: the
    scorer held them, and their times closed the subgroups of the decisions still to come."""
    ds = [_d(i, 12.0 * i) for i in range(4800)]
    vs = [_v(i, 12.0 * i + 3600) for i in range(0, 4800, 5)]
    out = batches.pack({"q": ds}, {"q": vs})
    assert [d for b in out for d in b["decisions"]] == ds  # each kind whole, in its order
    assert [v for b in out for v in b["verdicts"]] == vs
    step = batches.MAX_EVENTS_PER_MESSAGE
    assert all(len(b["decisions"]) <= step and len(b["verdicts"]) <= step for b in out)
    assert len(out) == 3
    for b, after in itertools.pairwise(out):
        # no verdict of a batch is later than the next batch's first decision
        assert max(v["reviewed_at"] for v in b["verdicts"]) <= after["decisions"][0]["decided_at"]
    # verdicts alone past the bound are cut too; a poll within it is one batch, as it was
    only = batches.pack({}, {"q": [_v(i, float(i)) for i in range(step + 1)]})
    assert [len(b["verdicts"]) for b in only] == [step, 1]
    assert len(batches.pack({"q": ds[:step]}, {"q": vs})) == 1


@given(
    st.lists(st.floats(0, 1e5), max_size=60),
    st.lists(st.floats(0, 1e5), max_size=60),
    st.integers(1, 7),
)
def test_aligned_parts_keep_every_event_once_in_order_within_the_bound(
    d_times: list[float], v_times: list[float], step: int
) -> None:
    ds = [_d(i, t) for i, t in enumerate(d_times)]
    vs = [_v(i, t) for i, t in enumerate(v_times)]
    parts = list(batches.aligned(ds, vs, step))
    assert [d for p, _ in parts for d in p] == ds
    assert [v for _, p in parts for v in p] == vs
    assert all(len(p) + len(q) > 0 and len(p) <= step and len(q) <= step for p, q in parts)
    if d_times == sorted(d_times) and v_times == sorted(v_times):
        merged = [e for p, q in parts for e in sorted([*p, *q], key=_time)]
        assert [_time(e) for e in merged] == sorted(map(_time, merged))


def _time(e: dict[str, Any]) -> float:
    return float(e["decided_at"] if "decided_at" in e else e["reviewed_at"])


@pytest.mark.parametrize(
    "raw",
    [b"[]", codec.dumps({"v": 4, "queue_id": "a", "decisions": [], "verdicts": []}),
     codec.dumps({"v": 1, "decisions": [], "verdicts": []}), b"{bad"],
)  # fmt: skip
def test_decode_rejects_what_is_not_a_batch(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r"EventBatch|JSON|unexpected|parse"):
        batches.decode(raw)


@pytest.mark.parametrize(
    "queue_id", ["a|b", "a/b", "a b", "", "-lead", "q\u0085", "é", "x" * 129, "a@b"]
)
def test_decode_refuses_a_queue_id_outside_the_grammar(queue_id: str) -> None:
    raw = codec.dumps({"v": 1, "queue_id": queue_id, "decisions": [], "verdicts": []})
    with pytest.raises(ValueError, match=r"not a valid queue id|without queue_id"):
        batches.decode(raw)


@pytest.mark.parametrize("queue_id", ["a|b", "a/b", "-lead", "é", "a@b"])
def test_ingest_refuses_a_queue_id_outside_the_grammar(queue_id: str) -> None:
    result = validate_items([decision(1, queue_id)], None)
    assert not result.events
    assert "queue_id" in str(result.errors)


@pytest.mark.parametrize("queue_id", ["spam-en", "child_safety-pt", "hate.v3:de", "Q1", "x" * 128])
def test_ordinary_queue_ids_are_accepted(queue_id: str) -> None:
    raw = codec.dumps({"v": 1, "queue_id": queue_id, "decisions": [], "verdicts": []})
    assert batches.decode(raw)["queue_id"] == queue_id
    assert validate_items([decision(1, queue_id)], None).events


@pytest.mark.parametrize("field", ["queue_id", "site_id", "policy_id"])
@pytest.mark.parametrize(
    "value", ["ok-1", "a/b", "a|b", "a\n", "a b", "q\u0085", "é", "-x", "x" * 129, "x" * 128]
)
def test_the_scorer_decoder_refuses_what_ingest_refuses(field: str, value: str) -> None:
    """One grammar (shared/ids.py): a key id ingest refuses never gets into a batch the
    scorer decodes, even from a producer that writes to the events topic directly."""
    item = {**decision(1), field: value}
    accepted_by_ingest = bool(validate_items([item], "decision").events)
    raw = codec.dumps({"v": 1, "queue_id": item["queue_id"], "decisions": [item], "verdicts": []})
    try:
        batches.decode(raw)
        accepted_by_scorer = True
    except ValueError:
        accepted_by_scorer = False
    assert accepted_by_ingest == accepted_by_scorer


def test_an_event_of_another_queue_refuses_the_batch() -> None:
    raw = codec.dumps({"v": 1, "queue_id": "a", "decisions": [decision(1, "b")], "verdicts": []})
    with pytest.raises(ValueError, match="belongs to queue 'b'"):
        batches.decode(raw)
