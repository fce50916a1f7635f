from __future__ import annotations

import pytest

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
    assert batches.decode(batches.encode(a)) == a


def test_large_groups_are_split() -> None:
    n = batches.MAX_EVENTS_PER_MESSAGE + 5
    events = validate_items([decision(i) for i in range(n)], None).events
    out = batches.group_by_queue(events)
    assert [len(b["decisions"]) for b in out] == [batches.MAX_EVENTS_PER_MESSAGE, 5]


@pytest.mark.parametrize(
    "raw",
    [b"[]", codec.dumps({"v": 2, "queue_id": "a", "decisions": [], "verdicts": []}),
     codec.dumps({"v": 1, "decisions": [], "verdicts": []}), b"{bad"],
)  # fmt: skip
def test_decode_rejects_what_is_not_a_batch(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r"EventBatch|JSON|unexpected|parse"):
        batches.decode(raw)
