"""Crash at every point between two state writes: the replay ends exactly where a run
without the crash ends.

The scorer's table is backed by a changelog: one ordered log per partition. A worker killed
at any moment leaves a *prefix* of its writes in that log, and its consumer group's
committed offset at some message at or before the one it was processing (Faust commits an
offset only after flushing the changelog records of the messages before it). So the state a
restarted worker recovers is "the writes up to point k", and it replays input from a
committed offset ``o`` <= the message being processed at k. This test tries every k, with
``o`` at the start of the input and at the interrupted message, and compares the result
with the uninterrupted run: queue records, what is counted and what waits, and the outbox
(everything to be published). Nothing lost, nothing doubled.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, MutableMapping
from datetime import timedelta
from typing import Any

import pytest

from services.ingest.validation import validate_items
from services.scorer import chunks
from services.scorer import cusum as live
from services.scorer.core import Scorer
from services.scorer.settings import ScorerSettings
from shared import batches, codec, control
from shared.batches import EventBatch
from tests.factories import T0, decision, verdict

H = timedelta(hours=1)
QUEUES = ("qa", "qb")
SITES = ("dublin", "manila", "austin")


class LoggedTable(MutableMapping[str, Any]):
    """A dict that records every write in order, as the changelog would."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.log: list[tuple[str, str, Any]] = []

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.log.append(("put", key, codec.dumps(value)))

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self.log.append(("del", key, None))

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def recover(log: list[tuple[str, str, Any]], table: dict[str, Any] | None = None) -> dict[str, Any]:
    """The table a restarted worker rebuilds from a changelog prefix (onto ``table``: the
    worker's own store)."""
    table = {} if table is None else table
    for op, key, value in log:
        if op == "put":
            table[key] = codec.loads(value)
        else:
            table.pop(key, None)
    return table


def settings() -> ScorerSettings:
    # a budget generous enough for the live CUSUMs to signal within these few hours, so
    # their state and signals are replayed too
    return ScorerSettings(
        subgroup_seconds=3600, grace_seconds=3600, phase1_subgroups=3, min_subgroup_n=4,
        snapshot_interval_s=0.0, decision_ttl_seconds=5 * 3600, pending_ttl_seconds=4 * 3600,
        pending_max=40, baseline_p={"qb": 0.1}, false_alarms_per_day=1000.0, expected_queues=1,
        sites_per_queue=2,
    )  # fmt: skip


def traffic(seed: int) -> list[EventBatch | control.BaselineReset]:
    """Two queues over ~12 hours: verdicts before and long after their decisions,
    duplicates, orphans that expire, late verdicts that revise closed subgroups, a drift
    that makes the charts signal, a baseline reset (sent twice) that makes one queue learn a
    new baseline, and three sites for two named ones."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    for hour in range(12):
        for q in QUEUES:
            rate = 0.5 if (q == "qa" and hour >= 7) else 0.1
            for i in range(8):
                k = f"{q}-{hour}-{i}"
                at = T0 + hour * H + timedelta(minutes=rng.uniform(0, 59))
                # three sites, one past the bound of two named sites: summed as "(other)"
                items.append(decision(k, q, at, site_id=SITES[i % 3]))
                lag = H * rng.choice([0.2, 0.5, 1, 2.5, 3.5])  # some arrive after the close
                items.append(verdict(k, q, at + lag, correct=rng.random() >= rate))
                if rng.random() < 0.1:
                    items.append(verdict(k, q, at + lag, correct=True))  # a duplicate
            items.append(verdict(f"orphan-{q}-{hour}", q, T0 + hour * H))  # never decided
    # arrival order: roughly by event time, shuffled locally; a verdict may come first
    keyed = []
    for item in items:
        t = item.get("decided_at") or item["reviewed_at"]
        keyed.append((t, rng.random(), item))
    keyed.sort(key=lambda x: (x[0][:13], x[1]))
    stream = [x[2] for x in keyed]
    out: list[EventBatch | control.BaselineReset] = []
    for i in range(0, len(stream), 9):
        events = validate_items(stream[i : i + 9], None).events
        out.extend(batches.group_by_queue(events))
    # a baseline reset of qb (configured) a third of the way, and the same request again
    # (a retried POST produced twice) half-way: qb learns a new baseline once
    reset = control.baseline_reset(
        "qb", request_id="r1", reason="policy change", actor="key 0000abcd (lead)",
        requested_at=T0.timestamp(),
    )  # fmt: skip
    out.insert(len(out) // 3, reset)
    out.insert(len(out) // 2, dict(reset))  # type: ignore[arg-type]
    return out


WALL = T0.timestamp() + 30 * 86400
LAG = 3  # messages between a commit and the broker's acknowledgement of its records


Published = set[tuple[str, bytes, bytes]]


def send(scorer: Scorer, queue_id: str, published: Published) -> None:
    """What the worker does after a commit: send the outbox; the broker acknowledges."""
    for entry in scorer.unsent(queue_id):
        value = codec.loads(entry.value)
        value.pop("emitted_at")
        published.add((entry.kind, entry.key, codec.dumps(value)))
        scorer.acked(queue_id, entry.seq)


def run(
    scorer: Scorer,
    msgs: list[EventBatch | control.BaselineReset],
    start: int,
    published: Published,
) -> None:
    for queue_id in scorer.queues():  # a restarted worker sends what was left unacknowledged
        send(scorer, queue_id, published)
    for offset in range(start, len(msgs)):
        b = msgs[offset]
        scorer.prune_acked((0, offset), b["queue_id"])  # as the worker does first
        out = scorer.process(b, WALL, (0, offset))
        if out.skipped:  # as the worker does with a message applied before
            scorer.reemit(b["queue_id"], (0, offset))
            continue
        scorer.commit(b["queue_id"])
        send(scorer, b["queue_id"], published)


def fingerprint(scorer: Scorer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q in QUEUES:
        st = scorer.state(q).to_dict()
        st.pop("outbox")  # what it held is compared as what was published
        for b in st["buckets"].values():
            assert b[0] <= b[2] * 2 + 10  # sanity: the counts are counts
        out[q] = st
        out[q + ":pending"] = scorer.pending_count(q)
    ids: dict[str, Any] = {}
    for store in (scorer._decisions, scorer._counted):
        for key, chunk in [c for q in QUEUES for c in store.chunks(q)]:
            alive_from = scorer.state(key.queue_id).alive_from
            for record_id in chunk["r"]:
                if store.key_of(key.queue_id, record_id, alive_from) is not None:
                    ids[f"{store.kind}:{key.queue_id}:{record_id}"] = store.get(
                        key.queue_id, record_id
                    )
    out["ids"] = ids
    return out


@pytest.mark.parametrize(
    ("seed", "record_bytes"), [(1, None), (2, None), (3, 300)], ids=["1", "2", "3-split"]
)
def test_every_crash_point_replays_to_the_uninterrupted_result(
    seed: int, record_bytes: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``record_bytes``: chunks cut into records of at most that many bytes (most chunks
    of this traffic are written in several parts, and a crash falls between them)."""
    if record_bytes is not None:
        monkeypatch.setattr(chunks, "MAX_RECORD_BYTES", record_bytes)
    # Phase Is of a dozen verdicts: held to their ARL0 over so broad a belief, the charts
    # would be too slow to signal here (cusum.belief); with the belief of a Phase I a
    # thousand times as long (the same estimate) they signal, so their replay is tested
    monkeypatch.setattr(live, "belief", lambda e, n, *_: ((e + 0.5) * 1000, (n - e + 0.5) * 1000))
    msgs = traffic(seed)
    table = LoggedTable()
    reference = Scorer(settings(), table)
    writes_before: list[int] = []  # message -> writes logged before it
    sent_before: list[Published] = []  # message -> what was published before it
    published: Published = set()
    for offset in range(len(msgs)):
        writes_before.append(len(table.log))
        sent_before.append(set(published))
        reference.prune_acked((0, offset), msgs[offset]["queue_id"])
        assert not reference.process(msgs[offset], WALL, (0, offset)).skipped
        reference.commit(msgs[offset]["queue_id"])
        send(reference, msgs[offset]["queue_id"], published)
    expected = fingerprint(reference)
    assert any(kind == "breach" for kind, _, _ in published), "the drift must signal"
    rules = {codec.loads(v)["rule"] for kind, _, v in published if kind == "breach"}
    assert "cusum_upper" in rules, rules
    assert all(reference.state(q).cusum for q in QUEUES)
    changes = sorted(
        (v["queue_id"], v["epoch"], v["event"])
        for v in (codec.loads(v) for kind, _, v in published if kind == "baseline")
    )
    assert changes == [("qa", 0, "frozen"), ("qb", 1, "frozen"), ("qb", 1, "reset")], changes
    assert any(codec.loads(v)["revision"] > 0 for k, _, v in published if k == "subgroup")
    # the per-site counts are replayed too: in each queue two sites by name (its first two),
    # the third summed as "(other)"
    points = [codec.loads(v) for k, _, v in published if k == "subgroup"]
    for q in QUEUES:
        named = {s for p in points if p["queue_id"] == q for s in p["sites"]}
        assert len(named) == 3, named
        assert "(other)" in named, named
        assert named < {*SITES, "(other)"}, named
    assert expected["qa:pending"] + expected["qb:pending"] > 0
    assert any(reference.state(q).expired_pending for q in QUEUES)

    tried = 0
    for k in range(len(table.log) + 1):
        # the message being processed when the k-th write was cut
        current = max(i for i, w in enumerate(writes_before) if w <= k)
        committed = {max(0, current - 3), current} | ({0} if k % 7 == 0 else set())
        for start in committed:
            restarted = Scorer(settings(), recover(table.log[:k]))
            after = set(sent_before[current])
            run(restarted, msgs, start, after)
            assert fingerprint(restarted) == expected, f"crash after write {k}, replay from {start}"
            assert after == published, f"crash after write {k}: published differs"
            tried += 1
    assert tried > 2 * len(msgs)
    if record_bytes is not None:
        assert any("." in key.rsplit("|", 1)[-1] for _, key, _ in table.log), "no chunk split"


@pytest.mark.parametrize("seed", [1, 2])
def test_a_local_store_ahead_of_its_changelog_replays_to_the_uninterrupted_result(
    seed: int,
) -> None:
    """RocksDB: a worker writes its store first and the changelog after, so one killed at
    write k restarts with a store holding writes 0..k-1, of which only 0..j-1 reached the
    changelog, and Faust replays the changelog from the last offset it recorded as sent
    (p <= j) onto that store. Then it replays input from its committed offset. The result
    must be exact, and the changelog, with what the restarted worker wrote, must hold the
    same state for a worker that recovers from it alone (a rebalance, a lost disk)."""
    msgs = traffic(seed)
    rng = random.Random(seed)
    table = LoggedTable()
    # the broker acknowledges a message's changelog records LAG messages later; chunks are
    # deleted only at horizons of acknowledged queue records
    reference = Scorer(settings(), table, durable_at_once=False)
    writes_before: list[int] = []
    sent_before: list[Published] = []
    published: Published = set()
    stamps: list[tuple[str, tuple[float, float]]] = []
    for offset in range(len(msgs)):
        writes_before.append(len(table.log))
        sent_before.append(set(published))
        if offset >= LAG:
            reference.mark_durable(*stamps[offset - LAG])
        reference.prune_acked((0, offset), msgs[offset]["queue_id"])
        reference.process(msgs[offset], WALL, (0, offset))
        stamps.append((msgs[offset]["queue_id"], reference.commit(msgs[offset]["queue_id"])))
        send(reference, msgs[offset]["queue_id"], published)
    expected = fingerprint(reference)
    log = table.log
    ahead = 0
    for k in range(len(log) + 1):
        at_kill = max(i for i, w in enumerate(writes_before) if w <= k)
        # what was acknowledged is in the changelog: at least the writes before message
        # at_kill - LAG; of the k writes made, j reached the changelog
        floor = writes_before[max(0, at_kill - LAG)]
        j = max(floor, k - rng.choice([0, 1, 2, 5, 20]))
        p = max(0, j - rng.choice([0, 1, 3]))  # recorded as sent by Faust
        # the committed offset is at or before the first message not wholly in the changelog
        current = max(i for i, w in enumerate(writes_before) if w <= j)
        start = rng.choice([max(0, current - 2), current])
        store = recover(log[p:j], recover(log[:k]))
        ahead += j < k
        worker = LoggedTable()
        worker.data = store
        restarted = Scorer(settings(), worker)
        # published before the kill: outputs go out after their message's local writes
        after = set(sent_before[at_kill])
        run(restarted, msgs, start, after)
        context = f"killed at write {k}, {j} sent, {p} recorded, replay from {start}"
        assert fingerprint(restarted) == expected, context
        assert after == published, context
        elsewhere = Scorer(settings(), recover(log[:j] + worker.log))
        assert fingerprint(elsewhere) == expected, f"changelog alone: {context}"
    assert ahead > len(log) // 2


def test_a_batch_that_raises_changes_nothing() -> None:
    """A failure half-way through a batch leaves the table as it was; the scorer forgets
    what it staged and goes on as if the batch had never come (it is dead-lettered)."""
    msgs = traffic(3)
    poisoned = 7
    without = Scorer(settings(), {})
    for offset, b in enumerate(msgs):
        if offset != poisoned and not without.process(b, WALL, (0, offset)).skipped:
            without.commit(b["queue_id"])
            send(without, b["queue_id"], set())

    table: dict[str, Any] = {}
    flaky = Scorer(settings(), table)
    for offset, b in enumerate(msgs):
        if offset == poisoned:
            before = codec.dumps(table)
            flaky.process(b, WALL, (0, offset))  # ... and a bug strikes before commit
            assert codec.dumps(table) == before
            flaky.rollback()
            flaky.skip(b["queue_id"], (0, offset))
            assert flaky.process(b, WALL, (0, offset)).skipped  # a replay does not retry it
            assert flaky.snapshot(flaky.state(b["queue_id"]), WALL).failed_batches == 1
            continue
        if not flaky.process(b, WALL, (0, offset)).skipped:
            flaky.commit(b["queue_id"])
            send(flaky, b["queue_id"], set())
    a, z = fingerprint(without), fingerprint(flaky)
    q = msgs[poisoned]["queue_id"]
    a[q].pop("applied"), z[q].pop("applied")
    assert z[q].pop("failed_batches") == 1
    a[q].pop("failed_batches")
    assert a == z


def test_acknowledged_outputs_leave_an_idle_queues_record_with_the_next_message() -> None:
    """Outputs the broker acknowledged leave the queue's record when the next message of its
    partition is handled, whichever queue that is: a restart does not send them again (an
    idle queue kept them until its own next input, and re-sent them on every restart). A
    record ahead of the message in hand (a store ahead of its changelog) is left alone."""
    msgs = [b for b in traffic(1) if b["queue_id"] == QUEUES[0]]
    table: dict[str, Any] = {}
    sc = Scorer(settings(), table)
    for offset, b in enumerate(msgs):
        sc.process(b, WALL, (0, offset))
        sc.commit(b["queue_id"])
    q = QUEUES[0]
    sent = sc.unsent(q)
    assert sent
    for entry in sent:
        sc.acked(q, entry.seq)
    assert Scorer(settings(), dict(table)).unsent(q)  # a restart now would send them again
    end = len(msgs)
    assert sc.prune_acked((1, end), QUEUES[1]) == []  # another partition's message
    assert sc.prune_acked((0, end - 1), QUEUES[1]) == []  # a message before the record's
    assert sc.prune_acked((0, end), q) == []  # the queue in hand commits anyway
    before = codec.loads(codec.dumps(table[f"q|{q}"]))
    assert sc.prune_acked((0, end), QUEUES[1]) == [q]
    after = codec.loads(codec.dumps(table[f"q|{q}"]))
    assert after["outbox"] == []
    before.pop("outbox"), after.pop("outbox")
    assert after == before  # nothing else changed
    assert Scorer(settings(), dict(table)).unsent(q) == []
    assert sc.prune_acked((0, end + 1), QUEUES[1]) == []  # once
