"""Every state record the scorer writes stays far below the producer's request size,
whatever the input. A new user's trial: one ingest request of 2,000 decisions with every id
at the grammar's maximum made one batch whose decisions chunk was one 1.39 MB changelog
record; the producer refused it (``MessageSizeTooLargeError``, max_request_size 1 MB), the
worker died, and every restart replayed the same message and died again. A chunk is now
written in parts of at most ``chunks.MAX_RECORD_BYTES``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.ingest.validation import validate_items
from services.scorer import chunks
from services.scorer.core import Scorer
from services.scorer.settings import ScorerSettings
from shared import batches, codec
from tests.factories import T0, longest_decisions, longest_id, verdict
from tests.unit.test_scorer_crash_points import LoggedTable, recover

PRODUCER_REQUEST_SIZE = 1_000_000  # Faust's default max_request_size
WALL = T0.timestamp() + 86400


def one_batch(items: list[dict[str, object]]) -> batches.EventBatch:
    events = validate_items(items, None).events
    assert len(events) == len(items)
    (batch,) = batches.group_by_queue(events)
    return batch


def puts(table: LoggedTable, since: int = 0) -> list[tuple[str, int]]:
    return [(key, len(value)) for op, key, value in table.log[since:] if op == "put"]


def longest_verdicts(queue: str, n: int = 2000) -> list[dict[str, object]]:
    return [
        verdict(
            i,
            queue,
            T0 + timedelta(hours=1, seconds=i),
            correct=i % 3 != 0,
            verdict_id=longest_id(i, 200, "\\"),
            decision_id=longest_id(i, 200),
            auditor_id=longest_id(i, 200),
        )
        for i in range(n)
    ]


def test_the_trial_batch_is_written_in_records_far_below_the_request_size() -> None:
    batch = one_batch(longest_decisions("bigq"))
    assert len(batch["decisions"]) == batches.MAX_EVENTS_PER_MESSAGE
    # as one record, the chunk would be past the producer's request size
    whole = {"q": "bigq", "r": {d["decision_id"]: [0.0] * 6 for d in batch["decisions"]}}
    assert len(codec.dumps(whole)) > 300_000
    table = LoggedTable()
    scorer = Scorer(ScorerSettings(), table)
    scorer.process(batch, WALL, (0, 0))
    scorer.commit("bigq")
    written = puts(table)
    assert max(size for _, size in written) <= chunks.MAX_RECORD_BYTES < PRODUCER_REQUEST_SIZE / 3
    parts = [key for key, _ in written if key.startswith("d|bigq|")]
    assert len(parts) >= 5, parts  # ~1.6 MB of decisions, in parts
    assert written[-1][0] == "q|bigq"  # the queue's record last, after every part
    # a worker rebuilt from the changelog finds every decision, and counts every verdict
    restarted = Scorer(ScorerSettings(), recover(table.log))
    assert restarted.state("bigq").decisions_total == 2000
    for d in batch["decisions"]:
        assert restarted._decisions.get("bigq", d["decision_id"]) is not None
    mark = len(table.log)
    scorer.process(one_batch(longest_verdicts("bigq")), WALL, (0, 1))
    scorer.commit("bigq")
    assert max(size for _, size in puts(table, mark)) <= chunks.MAX_RECORD_BYTES
    assert scorer.state("bigq").verdicts_total == 2000
    assert any(k.startswith("v|bigq|") and "." in k for k, _ in puts(table, mark))


def test_waiting_verdicts_are_written_in_parts_too() -> None:
    table = LoggedTable()
    scorer = Scorer(ScorerSettings(), table)
    scorer.process(one_batch(longest_verdicts("orphans")), WALL, (0, 0))
    scorer.commit("orphans")
    assert max(size for _, size in puts(table)) <= chunks.MAX_RECORD_BYTES
    assert scorer.pending_count("orphans") == 2000
    restarted = Scorer(ScorerSettings(), recover(table.log))
    assert restarted.pending_count("orphans") == 2000


def test_split_keeps_every_record_in_order_and_cuts_the_same_way_each_time() -> None:
    records = {longest_id(i, 1 + i % 200, '"'): [float(i), "s" * (i % 128)] for i in range(3000)}
    chunk = {"q": "q", "r": records}
    for limit in (2_000, 50_000, chunks.MAX_RECORD_BYTES, 10**9):
        parts = chunks.split(chunk, limit)
        assert all(len(codec.dumps(p)) <= limit for p in parts)
        assert [k for p in parts for k in p["r"]] == list(records)
        assert all(p["r"] == {k: records[k] for k in p["r"]} for p in parts)
        assert parts == chunks.split({"q": "q", "r": dict(records)}, limit)
    assert chunks.split(chunk, 10**9) == [chunk]


def test_parts_a_cut_short_application_left_beyond_the_new_cut_are_deleted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cut is a function of the chunk, so a replay writes the same parts; were it not
    (another limit after an upgrade), a part left over from a cut-short application would
    come to count once the queue's record names its message: the replay deletes it."""
    batch = one_batch(longest_decisions("q", 50))
    monkeypatch.setattr(chunks, "MAX_RECORD_BYTES", 4_000)
    first = LoggedTable()
    scorer = Scorer(ScorerSettings(), first)
    scorer.process(batch, WALL, (0, 0))
    scorer.commit("q")
    parts = [key for key, _ in puts(first) if key.startswith("d|q|")]
    assert len(parts) > 3
    cut = [entry for entry in first.log if entry[1] != "q|q"]  # crashed before the record
    monkeypatch.setattr(chunks, "MAX_RECORD_BYTES", 1_000_000)
    table = recover(cut)
    restarted = Scorer(ScorerSettings(), table)
    restarted.process(one_batch(longest_decisions("q", 50)), WALL, (0, 0))
    restarted.commit("q")
    assert [key for key in table if key.startswith("d|q|")] == parts[:1]
    assert restarted.state("q").decisions_total == 50
    assert len(restarted._decisions.chunks("q")[0][1]["r"]) == 50
