"""The scorer's logic: a batch of a queue's events in, snapshots, subgroups and breaches out.
No I/O.

State is handed in (one mutable mapping, which the Faust worker backs by a changelogged
table and tests back by a dict), so the same code runs in the stream, in tests and in the
benchmark.

Exactly-once effect on at-least-once input. A batch is applied in two steps: ``process``
computes the new state in memory and stages its writes; ``commit`` writes the batch's
chunks, then the queue's record (which names the input message it was made from, and holds
the outputs the broker has not acknowledged yet), then the deletions of expired chunks. The
table's changelog is one ordered log per partition, so whatever a crash leaves of it is a
prefix of that sequence, and a replayed message is either recognised as applied (its queue
record landed: ``applied``) or applied again from the queue's previous record after its
cut-short chunks are forgotten. ``docs/architecture.md`` lists the faults this covers.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from services.scorer import causes, sites
from services.scorer import cusum as live
from services.scorer.chunks import ChunkStore, Record
from services.scorer.index import QUEUE_PREFIX, ChunkIndex, IndexedTable
from services.scorer.pending import PendingStore
from services.scorer.settings import ScorerSettings
from services.scorer.state import Bucket, QueueState
from shared import batches
from shared.batches import MAX_EPOCH, MIN_EVENT_EPOCH, MIN_EVENT_TIME, AnyBatch, EventBatch, epoch
from shared.control import BaselineReset, is_control
from shared.events import (
    BaselineEvent,
    Breach,
    BreachKind,
    Cause,
    ChartPoint,
    CusumInfo,
    ErrorType,
    Outcome,
    QualitySnapshot,
    SampleType,
    SiteCounts,
    SiteWindows,
    SubgroupPoint,
    SubgroupStatus,
    TargetRule,
)
from shared.ids import OPAQUE_ID_MAX
from shared.stats.cusum import BernoulliCusum
from shared.stats.ewma import EwmaState
from shared.stats.intervals import exact_upper_bound
from shared.stats.problimits import CountModel, alpha_for_sigmas
from shared.text import below_target_words, rate_against_limit
from shared.topics import baseline_key, queue_key, subgroup_key

_DECISION_KEYS = frozenset({"decision_id", "decided_at", "site_id", "moderator_id", "policy_id"})
_VERDICT_KEYS = frozenset({"verdict_id", "decision_id", "reviewed_at", "outcome"})
_OUTCOMES = frozenset(o.value for o in Outcome)
_ERROR_TYPES = frozenset(t.value for t in ErrorType)
_SAMPLE_TYPES = frozenset(t.value for t in SampleType)
MAX_TENURE_DAYS = 36500  # as shared/events.py
MIN_PHASE1_ERRORS_FOR_EWMA = 2
MAX_FUTURE_S = 900.0  # as ingest: event times this far ahead of the clock are refused
WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}
RANDOM = "random"
Position = tuple[int, int]  # (partition, offset) of the input message
Horizons = tuple[float, float]  # a queue record's (alive_from, pending_alive_from)
OutKind = Literal["subgroup", "breach", "baseline"]  # what an outbox entry is, by topic
RESET_IDS_KEPT = 32  # recent reset request ids a queue remembers (a retry resets once)
# An admitted batch's events, one list per field the scorer reads (whatever the batch's
# version), times as floats: decisions (decision_id, decided_at, site_id, moderator_id,
# policy_id, severity, moderator_tenure_days), verdicts (verdict_id, decision_id,
# reviewed_at, outcome, error_type, sample_type)
Columns = tuple[list[Any], ...]


def _epoch(t: float | str) -> float:
    """An admitted event time in seconds: a v2 batch carries the number, v1 the text."""
    if isinstance(t, str):
        return datetime.fromisoformat(t).timestamp()
    return t


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(slots=True)
class OutboxEntry:
    """An output that must reach its topic at least once: ``kind`` is ``subgroup``,
    ``breach`` or ``baseline``; the key and JSON value are final (a retry sends the same
    bytes)."""

    seq: int
    kind: OutKind
    key: bytes
    value: bytes


@dataclass(slots=True)
class Output:
    points: list[SubgroupPoint] = field(default_factory=list)
    breaches: list[Breach] = field(default_factory=list)
    snapshots: list[QualitySnapshot] = field(default_factory=list)
    baselines: list[BaselineEvent] = field(default_factory=list)
    rejected: list[tuple[Any, str]] = field(default_factory=list)  # to dead letter
    skipped: bool = False  # the message was applied before (a replay)


class Scorer:
    def __init__(
        self,
        settings: ScorerSettings,
        table: MutableMapping[str, Any],
        index: ChunkIndex | None = None,
        *,
        durable_at_once: bool = True,
    ) -> None:
        """``index`` is the table's chunk index (``index.py``); without one, the table is
        wrapped in an ``IndexedTable`` that keeps it in memory. ``durable_at_once``: each
        write is durable when made (no changelog behind the table); a worker says False
        and calls ``mark_durable`` when the broker acknowledged a commit's records."""
        self.s = settings
        self._durable_at_once = durable_at_once
        self._durable: dict[str, Horizons] = {}
        if index is None:
            if not isinstance(table, ChunkIndex):
                table = IndexedTable(table)
            index = cast(ChunkIndex, table)
        self._table = table
        self._index = index
        # decision records [decided_at, site, moderator, policy, severity] for the join
        self._decisions = ChunkStore(table, index, "d", self._applied_position)
        # verdicts already counted [reviewed_at]: a replayed or duplicated verdict is not
        # counted twice
        self._counted = ChunkStore(table, index, "v", self._applied_position)
        self._pending = PendingStore(
            table, index, self._counted, self._horizons, self._applied_position
        )
        self._cache: dict[str, QueueState] = {}
        self._last_snapshot: dict[str, float] = {}
        self.target_rule = target_rule(settings)
        self._dirty: set[str] = set()  # queues whose latest state no snapshot carries yet
        self._sent: dict[str, int] = {}  # queue -> highest outbox seq handed out to send
        self._acked: dict[str, int] = {}  # queue -> highest outbox seq the broker acked
        self._prunable: set[str] = set()  # queues with acks their stored record still holds
        self.generation = 0  # bumped when in-memory state is dropped

    # -- state ------------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Partitions moved, or a batch failed: drop derived in-memory state; it is rebuilt
        from the table. Outputs not acknowledged are handed out again."""
        self.generation += 1
        self._cache.clear()
        self._decisions.invalidate()
        self._counted.invalidate()
        self._pending.invalidate()
        self._sent.clear()
        self._dirty.clear()

    def _load(self, queue_id: str) -> QueueState:
        st = self._cache.get(queue_id)
        if st is None:
            raw = self._table.get(QUEUE_PREFIX + queue_id)
            st = QueueState.from_dict(raw) if raw is not None else QueueState(queue_id)
            # a configured baseline seeds a queue that has none; once reset, the queue
            # learns its own (a reset is the operator's word over the configuration)
            if st.baseline_p is None and not st.baseline_epoch and queue_id in self.s.baseline_p:
                st.baseline_p = self.s.baseline_p[queue_id]
            self._cache[queue_id] = st
        return st

    def _applied_position(self, queue_id: str) -> Position:
        """The input position the queue's *stored* record applied (what its chunks count
        against; see ``chunks.written_by_applied``). A batch in hand moves it at the end of
        ``process``, when its own chunks are staged (staged chunks are always visible)."""
        st = self._cache.get(queue_id)
        if st is not None:
            return st.applied
        raw = self._table.get(QUEUE_PREFIX + queue_id)
        if raw is None:
            return (-1, -1)
        applied = raw["applied"]
        return (int(applied[0]), int(applied[1]))

    def _horizons(self, queue_id: str) -> tuple[float, float]:
        raw = self._table.get(QUEUE_PREFIX + queue_id)
        if raw is None:
            return float("-inf"), float("-inf")
        st = QueueState.from_dict(raw)
        return st.alive_from, st.pending_alive_from

    def state(self, queue_id: str) -> QueueState:
        return self._load(queue_id)

    def pending_count(self, queue_id: str) -> int:
        return self._pending.count(queue_id)

    def queues(self) -> list[str]:
        """Every queue with a record in the table (for a recovered worker's first flush)."""
        return self._index.queue_ids()

    def applied(self, queue_id: str, position: Position) -> bool:
        """Was the message at ``position`` applied to this queue already (a replay)?"""
        done = self._load(queue_id).applied
        return done[0] == position[0] and position[1] <= done[1]

    # -- processing -------------------------------------------------------------------------
    def process(
        self,
        batch: AnyBatch | BaselineReset,
        wall: float,
        position: Position,
        ref_time: float | None = None,
    ) -> Output:
        """Score one batch (or apply one control record, ``shared/control.py``) in memory
        and stage its writes; ``commit`` makes them durable.

        ``position`` identifies the input message (partition, offset). ``ref_time`` is the
        message's own timestamp: the clock that event times may not run ahead of, the same
        on every replay (``wall`` when absent)."""
        queue_id = batch["queue_id"]
        if self.applied(queue_id, position):
            return Output(skipped=True)
        st = self._load(queue_id)
        out = Output()
        # Event times drive the watermark; one far in the future would close every open
        # subgroup. Ingest refuses them; a replay of older data must not slip one through.
        horizon = min(wall, ref_time if ref_time is not None else wall) + MAX_FUTURE_S
        if is_control(batch):
            self._reset_baseline(st, cast(BaselineReset, batch), horizon, out, wall)
            st.applied = position
            self._dirty.add(queue_id)
            return out
        batch_id = f"{position[0]}-{position[1]}"
        if batch["v"] >= 3:  # columns (shared/batches.py)
            cols = cast(batches.ColumnBatch, batch)
            decisions = _quick_decisions(cols["decisions"], horizon)
            if decisions is None:  # not all of them the common case: event by event
                decisions = self._admit_rows(cols["decisions"], horizon, out, "decided_at")
            verdicts = _quick_verdicts(cols["verdicts"], horizon)
            if verdicts is None:
                verdicts = self._admit_rows(cols["verdicts"], horizon, out, "reviewed_at")
        else:
            rows = cast(EventBatch, batch)
            numeric = rows["v"] >= 2  # v2 carries event times as numbers (shared/batches.py)
            decisions = _decision_columns(
                self._admit(
                    rows["decisions"],
                    _DECISION_KEYS,
                    "decided_at",
                    horizon,
                    out,
                    _decision_fault,
                    numeric,
                )
            )
            verdicts = _verdict_columns(
                self._admit(
                    rows["verdicts"],
                    _VERDICT_KEYS,
                    "reviewed_at",
                    horizon,
                    out,
                    _verdict_fault,
                    numeric,
                )
            )

        st.rejected_items += len(out.rejected)  # each dead-lettered with its reason
        # the batch's ids looked up in the index at once; the index does not change until
        # commit, and the lookups are forgotten when this returns (chunks.ChunkStore.prefetch)
        self._decisions.prefetch(queue_id, decisions[0] + verdicts[1])
        self._counted.prefetch(queue_id, verdicts[0])
        try:
            self._apply(st, decisions, verdicts, batch_id, out, wall)
        finally:
            self._decisions.end_prefetch()
            self._counted.end_prefetch()
        st.applied = position
        self._dirty.add(queue_id)
        return out

    def _apply(
        self,
        st: QueueState,
        decisions: Columns,
        verdicts: Columns,
        batch_id: str,
        out: Output,
        wall: float,
    ) -> None:
        queue_id = st.queue_id
        counted: dict[str, Record] = {}
        revised: set[int] = set()
        if decisions[0]:
            self._add_decisions(
                st, decisions, self.s.subgroup_seconds, counted, revised, batch_id, out, wall
            )
        for verdict_id, decision_id, t, outcome, error_type, sample in zip(*verdicts, strict=True):
            st.watermark = max(st.watermark, t)
            rec: Record = [t, outcome, error_type, sample or RANDOM]
            record = self._decisions.get(queue_id, decision_id, st.alive_from)
            if record is None:
                self._hold(st, verdict_id, decision_id, rec, batch_id)
                continue
            self._count_verdict(st, verdict_id, rec, record, counted, revised, out, wall)
        if counted:
            self._counted.add(queue_id, st.watermark, batch_id, counted, st.alive_from)
        self._pending.stage(queue_id, st.watermark, batch_id, st.pending_alive_from)

        closed_through = st.closed_through
        self._close_subgroups(st, out, wall)
        self._design_cusums(st)
        self._revise(st, revised, out, wall)
        if st.closed_through > closed_through:  # the rule looks once a subgroup closes
            self._check_target(st, out, wall)
        self._expire(st)

    def commit(self, queue_id: str) -> Horizons:
        """Write what ``process`` staged: chunks, then the queue's record, then deletions
        of chunks expired at the queue's last durable horizons (``mark_durable``). Returns
        the horizons of the record written, for ``mark_durable`` once it is durable."""
        st = self._load(queue_id)
        acked = self._acked.get(queue_id, -1)
        st.outbox = [e for e in st.outbox if e[0] > acked]
        self._prunable.discard(queue_id)
        for store in (self._decisions, self._counted, self._pending.chunks):
            store.flush()
        self._table[QUEUE_PREFIX + queue_id] = st.to_dict()
        stamp = (st.alive_from, st.pending_alive_from)
        if self._durable_at_once:
            self.mark_durable(queue_id, stamp)
        alive_from, pending_alive_from = self._durable.get(queue_id, (-math.inf, -math.inf))
        self._decisions.purge(queue_id, alive_from)
        self._counted.purge(queue_id, alive_from)
        self._pending.chunks.purge(queue_id, pending_alive_from)
        for store in (self._decisions, self._counted, self._pending.chunks):
            store.flush_deletes()
        return stamp

    def mark_durable(self, queue_id: str, horizons: Horizons) -> None:
        """The queue record ``commit`` wrote with these horizons is in the changelog: chunks
        expired at them may be deleted."""
        a, p = self._durable.get(queue_id, (-math.inf, -math.inf))
        self._durable[queue_id] = (max(a, horizons[0]), max(p, horizons[1]))

    def reemit(self, queue_id: str, position: Position) -> None:
        """A replayed message that the table says was applied: write its chunks again and,
        if it is the queue's latest, the queue's record, as they are. After a crash the
        worker's own store (RocksDB) can hold writes whose changelog records were never
        sent; the changelog is what another worker, or this one without its disk, recovers
        from. Replays come in input order, so by the time the queue's record is written
        again, the chunks of every message before it are in the changelog as well."""
        batch_id = f"{position[0]}-{position[1]}"
        for store in (self._decisions, self._counted, self._pending.chunks):
            for key in store.batch_keys(batch_id):
                value = self._table.get(key)
                if value is not None:
                    self._table[key] = value
        if tuple(self._load(queue_id).applied) == tuple(position):
            record = self._table.get(QUEUE_PREFIX + queue_id)
            if record is not None:
                self._table[QUEUE_PREFIX + queue_id] = record

    def rollback(self) -> None:
        """A batch failed half-way: forget everything in memory, as after a rebalance."""
        self.invalidate()

    def skip(self, queue_id: str, position: Position) -> None:
        """Record a message that could not be applied (it went to the dead-letter topic) as
        applied, so a replay does not dead-letter it again."""
        st = self._load(queue_id)
        st.applied = position
        st.failed_batches += 1
        self._table[QUEUE_PREFIX + queue_id] = st.to_dict()
        self._dirty.add(queue_id)

    # -- outputs ----------------------------------------------------------------------------
    def _publish(self, st: QueueState, kind: OutKind, key: bytes, value: bytes) -> None:
        st.out_seq += 1
        st.outbox.append([st.out_seq, kind, key.decode(), value.decode()])

    def unsent(self, queue_id: str) -> list[OutboxEntry]:
        """Outbox entries not handed out for sending since this worker loaded the queue."""
        st = self._load(queue_id)
        sent = self._sent.get(queue_id, -1)
        fresh = [
            OutboxEntry(int(e[0]), e[1], e[2].encode(), e[3].encode())
            for e in st.outbox
            if e[0] > sent
        ]
        if fresh:
            self._sent[queue_id] = fresh[-1].seq
        return fresh

    def acked(self, queue_id: str, seq: int) -> None:
        """The broker acknowledged outbox entry ``seq``: the next commit drops it."""
        if seq > self._acked.get(queue_id, -1):
            self._acked[queue_id] = seq
            self._prunable.add(queue_id)

    def prune_acked(self, position: Position, busy: str) -> list[str]:
        """Write again, without their acknowledged outbox entries, the records of the queues
        of the partition whose outputs were acknowledged since their last commit (``busy``,
        the queue in hand, commits anyway); returns them. Called with each input message
        (at ``position``; table writes need one), so a queue that gets no more input does
        not keep its sent outputs until it does, to send them again after every restart.

        Exactly-once is untouched: the record written is the stored one (a queue not in
        hand has nothing staged: its cached state is what its last commit wrote) but for
        entries the broker holds, with the same ``applied`` position and horizons; and only
        a record that applied a message *before* ``position``, whose chunks were all sent
        to the changelog ahead of this write (a worker's store can hold a record ahead of
        its changelog after a crash: that one waits for the replay to write its chunks)."""
        written = []
        for queue_id in sorted(self._prunable):
            st = self._cache.get(queue_id)
            if st is None:
                self._prunable.discard(queue_id)  # reloaded later from the table
                continue
            if queue_id == busy or st.applied[0] != position[0] or st.applied[1] >= position[1]:
                continue
            acked = self._acked.get(queue_id, -1)
            self._prunable.discard(queue_id)
            if not st.outbox or st.outbox[0][0] > acked:
                continue
            st.outbox = [e for e in st.outbox if e[0] > acked]
            self._table[QUEUE_PREFIX + queue_id] = st.to_dict()
            written.append(queue_id)
        return written

    def snapshot_if_due(self, queue_id: str, wall: float) -> QualitySnapshot | None:
        """The queue's snapshot when its state changed and the throttle allows; otherwise
        the queue stays dirty for ``due_snapshots``."""
        if queue_id not in self._dirty:
            return None
        if wall - self._last_snapshot.get(queue_id, 0.0) < self.s.snapshot_interval_s:
            return None
        self._dirty.discard(queue_id)
        self._last_snapshot[queue_id] = wall
        return self.snapshot(self._load(queue_id), wall)

    def due_snapshots(self, wall: float) -> list[QualitySnapshot]:
        """Deferred flush: snapshots of dirty queues whose throttle has passed."""
        out = []
        for queue_id in sorted(self._dirty):
            snap = self.snapshot_if_due(queue_id, wall)
            if snap is not None:
                out.append(snap)
        return out

    def mark_dirty(self, queue_id: str) -> None:
        self._dirty.add(queue_id)

    @staticmethod
    def _admit_rows(cols: dict[str, list[Any]], horizon: float, out: Output, field: str) -> Columns:
        """A v3 kind's events that ``_quick_decisions`` or ``_quick_verdicts`` did not keep
        at once: each as the v2 event it stands for through ``_admit``, which refuses the
        bad ones alone and words why."""
        if field == "decided_at":
            return _decision_columns(
                Scorer._admit(
                    batches.rows(cols), _DECISION_KEYS, field, horizon, out, _decision_fault, True
                )
            )
        return _verdict_columns(
            Scorer._admit(
                batches.rows(cols), _VERDICT_KEYS, field, horizon, out, _verdict_fault, True
            )
        )

    @staticmethod
    def _admit(
        events: list[Any],
        keys: frozenset[str],
        field: str,
        horizon: float,
        out: Output,
        fault: Callable[[dict[str, Any]], str | None],
        numeric: bool = False,
    ) -> list[dict[str, Any]]:
        """The events the scorer can use; the others go to the dead-letter topic. Ingest
        validated them, so this is a cheap guard against a bad producer or a replay: every
        field the scorer reads is checked for type and range here (``fault``: the optional
        ones), so that no event can make ``process`` raise. ``numeric``: the event time
        ``field`` is a number (v2), made a float here; such an event is first offered to
        the kind's quick check (``_quick_decision``, ``_quick_verdict``), which keeps the
        common case at a fraction of the cost and leaves every other to the checks below."""
        kept = []
        texts = keys - {field} if numeric else keys
        quick = _QUICK.get(field) if numeric else None
        for e in events:
            if quick is not None and quick(e, horizon):
                kept.append(e)  # (its time a float now)
                continue
            if not isinstance(e, dict):
                out.rejected.append(
                    (e, f"scorer: an event must be an object, not {type(e).__name__}")
                )
                continue
            if not keys <= e.keys():
                out.rejected.append((e, f"scorer: missing fields {sorted(keys - e.keys())}"))
                continue
            bad = [k for k in texts if not isinstance(e[k], str) or len(e[k]) > OPAQUE_ID_MAX]
            if bad:
                out.rejected.append(
                    (e, f"scorer: fields {sorted(bad)} must be strings of <= {OPAQUE_ID_MAX}")
                )
                continue
            wrong = fault(e)
            if wrong is not None:
                out.rejected.append((e, f"scorer: {wrong}"))
                continue
            t: float | None
            if numeric:
                t = epoch(e[field])
            else:
                try:
                    t = float(_epoch(e[field]))
                except (TypeError, ValueError, OverflowError):
                    t = None
                if t is not None and not math.isfinite(t):
                    t = None
            if t is not None and t < MIN_EVENT_EPOCH:
                # (a subgroup is never opened before it: no hour bucket at a negative epoch)
                out.rejected.append((e, f"scorer: {field} {e[field]!r} is before {MIN_EVENT_TIME}"))
            elif t is None or t > horizon:
                out.rejected.append(
                    (e, f"scorer: {field} {e[field]!r} is invalid or in the future")
                )
            else:
                if numeric:
                    e[field] = t  # a float from here on (an integer time too)
                kept.append(e)
        return kept

    def _hold(
        self, st: QueueState, verdict_id: str, decision_id: str, rec: Record, batch_id: str
    ) -> None:
        """Keep a verdict whose decision has not arrived, up to ``pending_max`` a queue;
        ``rec``: [reviewed_at, outcome, error_type, sample_type]."""
        if self._pending.waiting(st.queue_id, verdict_id):
            return  # a duplicate of a verdict already waiting
        if self._counted.key_of(st.queue_id, verdict_id, st.alive_from) is not None:
            return  # counted already (its decision expired since): a duplicate
        if self._pending.count(st.queue_id) >= self.s.pending_max:
            st.expired_pending += 1  # the queue's decisions are missing: dropped, counted
            return
        self._pending.hold(st.queue_id, verdict_id, [rec[0], decision_id, *rec[1:]])

    def _add_decisions(
        self,
        st: QueueState,
        decisions: Columns,
        period: int,
        counted: dict[str, Record],
        revised: set[int],
        batch_id: str,
        out: Output,
        wall: float,
    ) -> None:
        records: dict[str, Record] = {}
        for decision_id, t, site, moderator, policy, severity, tenure in zip(
            *decisions, strict=True
        ):
            if decision_id in records:
                continue  # a duplicate inside the batch: the first copy wins, as across batches
            records[decision_id] = [
                t, site, moderator, policy, severity, causes.tenure_band(_tenure(tenure))
            ]  # fmt: skip
        wm = max(st.watermark, max(r[0] for r in records.values()))
        fresh = self._decisions.add(st.queue_id, wm, batch_id, records, st.alive_from)
        if not fresh:
            return
        st.decisions_total += len(fresh)
        buckets, limit = st.buckets, self.s.sites_per_queue
        waiting = self._pending.decisions_waited_for(st.queue_id)
        for decision_id, rec in fresh.items():
            t = rec[0]
            if t > st.watermark:
                st.watermark = t
            start = int(t // period) * period
            bucket = buckets.get(start)
            if bucket is None:  # (not setdefault: it would build a Bucket every time)
                bucket = buckets[start] = Bucket()
            bucket.decisions += 1
            site = str(rec[1])
            counts = bucket.sites.get(site)
            if counts is None:  # (a site new to the bucket: it may go under OTHER)
                sites.count(st, bucket, site, limit, decisions=1)
            else:
                counts[0] += 1
            if start <= st.closed_through and bucket.rev >= 0:
                revised.add(start)  # a late decision: the published subgroup is republished
            if decision_id not in waiting:
                continue
            for verdict_id, p in self._pending.release(st.queue_id, decision_id):
                self._count_verdict(
                    st, verdict_id, [p[0], *p[2:]], rec, counted, revised, out, wall
                )

    def _count_verdict(
        self,
        st: QueueState,
        verdict_id: str,
        verdict: Record,
        decision: Record,
        counted: dict[str, Record],
        revised: set[int],
        out: Output,
        wall: float,
    ) -> None:
        """Count a joined verdict. ``verdict`` is [reviewed_at, outcome, error_type,
        sample_type]; ``decision`` the decision's record."""
        if verdict_id in counted or (
            not self._counted.absent(st.queue_id, verdict_id)
            and self._counted.key_of(st.queue_id, verdict_id, st.alive_from)
        ):
            return  # a duplicate or a replay: already counted
        counted[verdict_id] = [verdict[0]]
        st.verdicts_total += 1
        period = self.s.subgroup_seconds
        start = int(decision[0] // period) * period
        bucket = st.buckets.get(start)
        if bucket is None:
            bucket = st.buckets[start] = Bucket()
        if start <= st.closed_through and bucket.rev >= 0:
            # late: after its subgroup was published (a subgroup first seen after a later one
            # closed is published with these verdicts as its first counts, not as late ones)
            bucket.late += 1
            st.late_total += 1
            revised.add(start)
        if verdict[3] != RANDOM:
            bucket.other += 1
            return
        bucket.n += 1
        incorrect = verdict[1] == "incorrect"
        if incorrect:
            bucket.e += 1
            et = verdict[2] or "unknown"
            bucket.errors_by_type[et] = bucket.errors_by_type.get(et, 0) + 1
        site = str(decision[1])
        counts = bucket.sites.get(site)
        if counts is None:  # (a site new to the bucket: it may go under OTHER)
            sites.count(st, bucket, site, self.s.sites_per_queue, n=1, errors=int(incorrect))
        else:
            counts[1] += 1
            counts[2] += incorrect
        if start + causes.KEEP_SECONDS > st.watermark:
            # (a decision record written before root cause has no tenure band)
            tenure = decision[5] if len(decision) > 5 else "unknown"
            keys = causes.keys_of(str(decision[1]), str(decision[3]), tenure, decision[4])
            causes.count(bucket.slices, keys, incorrect, verdict[2])
        # when, in event time: this verdict's review (or its decision's arrival, for a
        # verdict that waited for it), not the watermark, which a batch's decisions may
        # already have moved hours on: the same rate, signal, time and cause window,
        # however the events were batched
        at = max(verdict[0], decision[0])
        if st.rate_from is None:
            st.rate_from = at
        st.rate_n += 1
        st.rate_to = at if st.rate_to is None else max(st.rate_to, at)
        for chart in st.cusum.values():
            if chart.update(incorrect):
                self._cusum_breach(st, chart, out, wall, at)
        site_chart = st.site_cusum.get(site)
        if site_chart is not None and site_chart.update(incorrect):
            self._cusum_breach(st, site_chart, out, wall, at, site)

    # -- live CUSUM -----------------------------------------------------------------------
    def _design_cusums(self, st: QueueState) -> None:
        """Measure the queue's verdict rate (first after ``RATE_FIRST_SPAN_S`` of event time,
        then once a day, smoothed) and, when it changes or the baseline has just been
        frozen, design the CUSUMs for their share of the false-alarm budget (cusum.py)."""
        changed = False
        if st.rate_from is not None:
            # (a record from before rate_to: the watermark, as it was measured then)
            to = st.watermark if st.rate_to is None else st.rate_to
            span = to - st.rate_from
            if span >= live.RATE_SPAN_S or (st.rate is None and span >= live.RATE_FIRST_SPAN_S):
                measured = st.rate_n * 86400.0 / span
                st.rate = measured if st.rate is None else (st.rate + measured) / 2
                st.rate_from, st.rate_n = to, 0
                changed = True
        if st.baseline_p is None or st.rate is None or not (changed or not st.cusum):
            return
        if st.cusum and st.rate == 0:
            return  # no verdicts this day: keep the design in force
        budget, queues = self.s.false_alarms_per_day, self.s.expected_queues
        sites = bool(st.site_base)
        for side, ratio in (("upper", self.s.cusum_shift_up), ("lower", self.s.cusum_shift_down)):
            arl0 = live.design_arl0(
                live.arl0_for(st.rate, budget, queues, cast(live.Side, side), sites)
            )
            # an estimated baseline's charts hold their ARL0 on average over what its Phase I
            # says of the true rate; a configured one is a standard, known without error
            known = live.belief(st.baseline_e, st.baseline_n) if st.baseline_n else None
            _set_design(st.cusum, side, cast(live.Side, side), st.baseline_p, ratio, arl0, known)
        prior_n = live.site_prior_n(st.baseline_n)
        for site, (n, e) in st.site_base.items():
            rate = self._site_rate(st, site)
            assert rate is not None
            arl0 = live.design_arl0(live.site_arl0_for(rate, budget, queues, len(st.site_base)))
            p0 = live.site_p0(n, e, st.baseline_p)
            known = live.belief(e, n, st.baseline_p, prior_n)
            _set_design(st.site_cusum, site, "upper", p0, self.s.cusum_shift_up, arl0, known)

    def _site_rate(self, st: QueueState, site: str) -> float | None:
        """A site chart's verdicts a day: the queue's rate times the site's share of the
        charted sites' Phase I verdicts."""
        total = sum(c[0] for c in st.site_base.values())
        if st.rate is None or site not in st.site_base or not total:
            return None
        return st.rate * st.site_base[site][0] / total

    def _cusum_info(
        self, st: QueueState, chart: live.LiveCusum, site: str | None = None
    ) -> CusumInfo:
        d = chart.chart.design
        p0, p1 = live.observed_error_rate(chart.side, d)
        rate = st.rate if site is None else self._site_rate(st, site)
        return CusumInfo(
            side=chart.side, p0=p0, p1=p1, statistic=chart.chart.statistic, h=d.h,
            verdicts=chart.chart.t, errors=chart.errors, signals=chart.signals,
            run_verdicts=chart.run_n, run_errors=chart.run_errors, recovery=chart.recovery_b,
            arl0_verdicts=chart.arl0,
            arl0_days=chart.arl0 / rate if rate else None,
            rate_per_day=rate, design=d.to_dict(), site=site,
        )  # fmt: skip

    def _cusum_breach(
        self, st: QueueState, chart: live.LiveCusum, out: Output, wall: float, at: float,
        site: str | None = None,
    ) -> None:  # fmt: skip
        """A CUSUM signal at event time ``at``: a breach now (no subgroup to wait for), then
        the chart restarts. The queue is not quiet: the alerts' hysteresis (quiet subgroups
        in a row) starts again, so a drift the CUSUM keeps signalling holds its incident
        open. Its root cause is ranked over the subgroups of the hours up to ``at``. A
        ``site`` chart's breach names its site (rule ``cusum_site_upper``)."""
        info = self._cusum_info(st, chart, site)
        chart.reset()
        st.quiet_streak = 0
        period = self.s.subgroup_seconds
        start = int(at // period) * period
        # the rate since the statistic last left 0 (the chart's estimate of the change
        # point), not since it last restarted: after days in control that is the baseline
        n, e = (info.run_verdicts, info.run_errors) if info.run_verdicts else (
            info.verdicts, info.errors)  # fmt: skip
        observed = e / n if n else 0.0
        if site is not None:
            rule, what, of = "cusum_site_upper", f"up at site {site}", f" of site {site}"
        elif chart.side == "upper":
            rule, what, of = "cusum_upper", "up", ""
        else:
            rule, what, of = "cusum_lower", "down (is the QA feed broken?)", ""
        base = "the site's baseline" if site is not None else "the baseline"
        self._breach(
            st, out, BreachKind.SPC, rule, "warning", start, observed, info.p0, None,
            n, wall,
            f"queue {st.queue_id}: error rate {what}: {e} errors in the last {n} verdicts{of} "
            f"({observed:.1%} against {base} {info.p0:.1%}) took the per-verdict CUSUM "
            f"tuned to {info.p1:.1%} to h={info.h:.2f}; designed for one false alarm in "
            f"{info.arl0_verdicts:,.0f} verdicts",
            cusum=info, verdicts_total=st.verdicts_total,
            window=(start - (causes.SHORT_WINDOW - 1) * period, start), detected=at,
            site=site,
        )  # fmt: skip

    # -- SPC ------------------------------------------------------------------------------
    def _close_subgroups(self, st: QueueState, out: Output, wall: float) -> None:
        """Close the subgroups whose period and grace the watermark has passed, in order.
        A subgroup whose first events arrived after a later one had closed (its start is
        at or before ``closed_through``, never published) closes now as well: its status
        and limits as any other's, but it moves neither the EWMA nor the last point and
        raises no alert, for it is out of order (``_close_late``)."""
        period, grace = self.s.subgroup_seconds, self.s.grace_seconds
        todo = [s for s, b in st.buckets.items() if s > st.closed_through or b.rev < 0]
        for start in sorted(todo):
            b = st.buckets[start]
            late = start <= st.closed_through  # (sorted: all of these come first)
            if not late and start + period + grace > st.watermark:
                break
            if not late:
                st.closed_through = start
            st.closed_count += 1
            b.n0, b.e0 = b.n, b.e
            if st.baseline_p is None:
                if b.n < self.s.min_subgroup_n or not self._current(st, start):
                    if self._current(st, start):  # (too small: said in the snapshot)
                        st.phase1_small += 1
                        st.phase1_small_n = max(st.phase1_small_n, b.n)
                    self._point(st, start, b, SubgroupStatus.LEARNING_SKIPPED, out, wall)
                    continue
                st.phase1.append((b.n, b.e))
                self._point(st, start, b, SubgroupStatus.PHASE1, out, wall)
                if len(st.phase1) >= self.s.phase1_subgroups:
                    self._freeze_baseline(st, start, out, wall)
                continue
            if b.n < self.s.min_subgroup_n:
                self._point(st, start, b, SubgroupStatus.TOO_SMALL, out, wall)
            elif late:
                self._replot(st, start, SubgroupStatus.CHARTED, out, wall)
            else:
                self._chart(st, start, b, out, wall)

    def _freeze_baseline(self, st: QueueState, last: int, out: Output, wall: float) -> None:
        """End Phase I with the subgroup starting at ``last``, and publish the baseline."""
        n = sum(x[0] for x in st.phase1)
        e = sum(x[1] for x in st.phase1)
        # A Phase I with no errors would give limits of zero width; fall back to half an
        # error over the baseline's size, the usual continuity floor.
        st.baseline_p = max(e, 0.5) / n
        st.baseline_n = n
        st.baseline_e = e
        st.site_base = {
            site: [n_s, e_s]
            for site, (n_s, e_s) in live.site_bases(
                self._phase1_sites(st, last), sites.OTHER
            ).items()
        }
        self._publish_baseline(
            st, out, BaselineEvent(
                queue_id=st.queue_id, epoch=st.baseline_epoch, event="frozen",
                at=_dt(st.watermark), emitted_at=_dt(wall), baseline_p=st.baseline_p,
                baseline_n=n, baseline_errors=e, subgroups=len(st.phase1),
                last_subgroup=_dt(last),
            ),
        )  # fmt: skip

    def _phase1_sites(self, st: QueueState, last: int) -> dict[str, tuple[int, int]]:
        """Per site, the random verdicts and errors of the Phase I ending with the subgroup
        starting at ``last``: the ``len(st.phase1)`` latest subgroups of the baseline under
        way that were large enough to chart, as their counts stand now."""
        starts = sorted(
            (s for s, b in st.buckets.items()
             if s <= last and self._current(st, s) and b.n0 >= self.s.min_subgroup_n),
            reverse=True,
        )[: len(st.phase1)]  # fmt: skip
        total: dict[str, tuple[int, int]] = {}
        for start in starts:
            for site, (_, n, e) in st.buckets[start].sites.items():
                n0, e0 = total.get(site, (0, 0))
                total[site] = (n0 + n, e0 + e)
        return total

    def _current(self, st: QueueState, start: int) -> bool:
        """Does the subgroup starting at ``start`` belong to the baseline in force (or the
        Phase I under way)? Not when it starts before the last reset's ``phase1_from``."""
        return st.phase1_from is None or start >= st.phase1_from

    def _reset_baseline(
        self, st: QueueState, c: BaselineReset, horizon: float, out: Output, wall: float
    ) -> None:
        """A baseline reset (``shared/control.py``): a new Phase I from the first subgroup
        starting at or after ``effective_at`` (or the watermark), the estimated baseline and
        the charts that ran against it (EWMA, live CUSUMs, last point) cleared. Applied once
        per request id; the below-target rule, the counts and the windows go on as they
        were. An ``effective_at`` in the future is refused (dead-lettered, nothing reset)."""
        if c["request_id"] in st.reset_ids:
            return  # the same request again (a retry that was produced twice)
        effective = c["effective_at"]
        if effective is not None and effective > horizon:
            out.rejected.append((c, f"scorer: effective_at {effective!r} is in the future"))
            return
        period = self.s.subgroup_seconds
        at = st.watermark if effective is None else effective
        previous = st.baseline_p
        st.baseline_epoch += 1
        st.phase1_from = math.ceil(at / period) * period
        st.phase1 = []
        st.phase1_small = st.phase1_small_n = 0
        st.baseline_p = None
        st.baseline_n = st.baseline_e = 0
        st.ewma = None
        st.cusum = {}
        st.site_base = {}
        st.site_cusum = {}
        st.last_point = None
        st.quiet_streak = 0
        st.reset_ids = [*st.reset_ids, c["request_id"]][-RESET_IDS_KEPT:]
        event = BaselineEvent(
            queue_id=st.queue_id, epoch=st.baseline_epoch, event="reset",
            at=_dt(st.watermark), emitted_at=_dt(wall), request_id=c["request_id"],
            reason=c["reason"], actor=c["actor"], requested_at=_dt(c["requested_at"]),
            effective_at=None if effective is None else _dt(effective),
            phase1_from=_dt(st.phase1_from), previous_p=previous,
        )  # fmt: skip
        st.last_reset = event.model_dump(mode="json", exclude={"emitted_at"})
        self._publish_baseline(st, out, event)

    def _publish_baseline(self, st: QueueState, out: Output, event: BaselineEvent) -> None:
        out.baselines.append(event)
        key = baseline_key(st.queue_id, event.epoch, event.event)
        self._publish(st, "baseline", key, event.model_dump_json().encode())

    def _limits(self, st: QueueState, b: Bucket) -> tuple[float, float, list[str]]:
        """Probability limits for ``b.n`` and the p-chart's signal, if any.

        The limit is the count's own tail: exact in the skewed tail of small counts and,
        for an estimated baseline, widened by the baseline's estimation error. See
        shared/stats/problimits.py and docs/statistics.md."""
        assert st.baseline_p is not None
        alpha = self._pchart_alpha()
        k_lo, k_hi = _limit_counts(st.baseline_p, st.baseline_e, st.baseline_n, b.n, alpha)
        signals = []
        if b.e >= k_hi:
            signals.append("p_chart_ucl")
        elif b.e <= k_lo:
            signals.append("p_chart_lcl")
        return max(0.0, k_lo / b.n), min(1.0, k_hi / b.n), signals

    def _pchart_alpha(self) -> float:
        """The p-chart's one-sided tail per subgroup: ``sigma_limits`` when set, else its
        share of the false-alarm budget (cusum.py)."""
        if self.s.sigma_limits is not None:
            return alpha_for_sigmas(self.s.sigma_limits)
        return live.per_look_tail(
            "p_chart",
            self.s.false_alarms_per_day,
            self.s.expected_queues,
            86400 / self.s.subgroup_seconds,
        )

    def _chart(self, st: QueueState, start: int, b: Bucket, out: Output, wall: float) -> None:
        assert st.baseline_p is not None
        p0 = st.baseline_p
        lcl, ucl, signals = self._limits(st, b)
        ewma_value = ewma_ucl = None
        if not st.baseline_n or st.baseline_e >= MIN_PHASE1_ERRORS_FOR_EWMA:
            # (with fewer Phase I errors, p0 rests on too little for a normal-theory EWMA
            # limit, which would alarm on the first error; the beta-binomial p-chart covers
            # such a queue)
            var_p0 = p0 * (1 - p0) / st.baseline_n if st.baseline_n else 0.0
            ewma = (
                EwmaState.from_dict(st.ewma["state"])
                if st.ewma
                else EwmaState(p0, self.s.ewma_lambda, self.s.ewma_l)
            )
            point = ewma.update(b.e, b.n)
            ewma_ucl = min(1.0, p0 + self.s.ewma_l * math.sqrt(point.variance + var_p0))
            ewma_value = ewma.statistic
            st.ewma = {"state": ewma.to_dict(), "ucl": ewma_ucl}
            b.ewma = [ewma_value, ewma_ucl]  # its revisions carry the EWMA as it closed
            if ewma_value > ewma_ucl:
                signals.append("ewma_ucl")
        p = b.e / b.n
        st.last_point = ChartPoint(
            start=_dt(start), n=b.n, errors=b.e, p=p, center=p0, lcl=lcl, ucl=ucl, signals=signals
        )
        self._point(
            st, start, b, SubgroupStatus.CHARTED, out, wall,
            limits=(p0, lcl, ucl), ewma=(ewma_value, ewma_ucl), signals=signals,
        )  # fmt: skip
        upper = [r for r in signals if not r.endswith("_lcl")]
        alerting = [r for r in upper if r != "ewma_ucl" or self.s.ewma_alerts]
        # a CUSUM that signalled and has not shown the rate back at p0 holds the streak
        recovering = any(c.recovering for c in [*st.cusum.values(), *st.site_cusum.values()])
        st.quiet_streak = 0 if upper or recovering else st.quiet_streak + 1
        for rule in alerting:
            observed, limit = (p, ucl) if rule == "p_chart_ucl" else (ewma_value, ewma_ucl)
            assert observed is not None
            assert limit is not None
            self._breach(
                st, out, BreachKind.SPC, rule, "warning", start, observed, p0, limit, b.n, wall,
                f"queue {st.queue_id}: {rate_against_limit(observed, limit)} "
                f"(baseline {p0:.1%}, n={b.n}) for the subgroup starting "
                f"{_dt(start):%Y-%m-%d %H:%M} UTC",
                window=(start, start) if rule == "p_chart_ucl" else (
                    start - (causes.SHORT_WINDOW - 1) * self.s.subgroup_seconds, start),
            )  # fmt: skip

    def _point(
        self,
        st: QueueState,
        start: int,
        b: Bucket,
        status: SubgroupStatus,
        out: Output,
        wall: float,
        limits: tuple[float, float, float] | None = None,
        ewma: tuple[float | None, float | None] = (None, None),
        signals: list[str] | None = None,
    ) -> None:
        """Publish a closed subgroup (``b.rev`` 0) or its next revision."""
        b.rev += 1
        b.status = status.value
        center, lcl, ucl = limits if limits else (None, None, None)
        point = SubgroupPoint(
            queue_id=st.queue_id, start=_dt(start), end=_dt(start + self.s.subgroup_seconds),
            revision=b.rev, status=status, n=b.n, errors=b.e,
            p=b.e / b.n if b.n else None, decisions=b.decisions, other_verdicts=b.other,
            late=b.late, errors_by_type=dict(b.errors_by_type), center=center, lcl=lcl,
            ucl=ucl, ewma=ewma[0], ewma_ucl=ewma[1], signals=signals or [],
            baseline_p=st.baseline_p, baseline_n=st.baseline_n, original_n=b.n0,
            original_errors=b.e0, as_of=_dt(st.watermark), emitted_at=_dt(wall),
            sites={k: SiteCounts(decisions=d, n=n, errors=e) for k, (d, n, e) in b.sites.items()},
        )  # fmt: skip
        out.points.append(point)
        self._publish(
            st, "subgroup", subgroup_key(st.queue_id, start), point.model_dump_json().encode()
        )

    def _revise(self, st: QueueState, starts: set[int], out: Output, wall: float) -> None:
        """Republish closed subgroups that late verdicts or decisions changed, once per
        batch each. The status and limits are those of the final n (a ``too_small`` one
        that late verdicts bring to ``min_subgroup_n`` is charted); no alert fires on a
        revision. Phase I statuses stay: the baseline is frozen from the subgroups as they
        closed."""
        for start in sorted(starts):
            b = st.buckets.get(start)
            if b is None or b.rev < 0:
                continue
            status = SubgroupStatus(b.status)
            if (
                status is SubgroupStatus.TOO_SMALL
                and st.baseline_p is not None
                and b.n >= self.s.min_subgroup_n
                and self._current(st, start)
            ):
                status = SubgroupStatus.CHARTED
            self._replot(st, start, status, out, wall)

    def _replot(
        self, st: QueueState, start: int, status: SubgroupStatus, out: Output, w: float
    ) -> None:
        """Publish a subgroup out of order (a revision, or one closed after a later one):
        a charted one gets the p-chart limits of its n and shows its signals, but it does
        not step the EWMA (whose statistic runs in time order): a revision carries the EWMA
        as it stood when the subgroup closed, and its signal then. It is not the queue's
        last point, and raises no alert."""
        b = st.buckets[start]
        # (a subgroup charted before a reset keeps its status, but the baseline it was
        # charted against is gone: its revisions carry no limits)
        p0 = st.baseline_p if self._current(st, start) else None
        if status is SubgroupStatus.CHARTED and b.n and p0 is not None:
            lcl, ucl, signals = self._limits(st, b)
            ewma: tuple[float | None, float | None] = (None, None)
            if b.ewma is not None:
                ewma = (b.ewma[0], b.ewma[1])
                if b.ewma[0] > b.ewma[1]:
                    signals.append("ewma_ucl")
            self._point(st, start, b, status, out, w, (p0, lcl, ucl), ewma, signals)
        else:
            self._point(st, start, b, status, out, w)

    def _check_target(self, st: QueueState, out: Output, wall: float) -> None:
        """The below-target rule, one look (``target_rule``): a breach when the exact upper
        bound of the 24 h accuracy is under the target, at most once a UTC day."""
        day = int(st.watermark // 86400) * 86400
        if day == st.target_day:
            return  # already reported today
        n, e = self._window(st, WINDOWS["24h"])
        if n < self.s.quality.min_sample:  # the health's "too few to say" (QW_MIN_SAMPLE)
            return
        upper = exact_upper_bound(n - e, n, self.target_rule.tail_per_look)
        if upper >= self.s.quality.accuracy_target:
            return
        st.target_day = day
        self._breach(
            st, out, BreachKind.BELOW_TARGET, "accuracy_24h_below_target", "critical", day,
            e / n, 1 - self.s.quality.accuracy_target, None, n, wall,
            below_target_words(
                st.queue_id, n, e, self.s.quality.accuracy_target, upper,
                self.target_rule.confidence,
            ),
            window=(st.watermark - WINDOWS["24h"] - self.s.subgroup_seconds, int(st.watermark)),
        )  # fmt: skip

    def _breach(
        self,
        st: QueueState,
        out: Output,
        kind: BreachKind,
        rule: str,
        severity: Literal["info", "warning", "critical"],
        start: int,
        observed: float,
        expected: float,
        ucl: float | None,
        n: int,
        wall: float,
        message: str,
        cusum: CusumInfo | None = None,
        verdicts_total: int | None = None,
        window: tuple[float, int] | None = None,
        detected: float | None = None,
        site: str | None = None,
    ) -> None:
        """``window``: the bucket starts ``lo <= start <= hi`` whose slices explain it (root
        cause: the slices standing out from the rest of the queue, their shares of the
        excess over ``expected``); a lower CUSUM ranks the missing errors. ``detected``:
        the event time of the detection (default: the watermark). ``site``: the site a
        site chart signalled on (in its dedup key; the breach's site label is the cause
        ranking's, as for any breach: a site whose rise is the whole queue's is not named)."""
        dedup = f"{st.queue_id}:{rule}:{start}" + ("" if site is None else f":{site}")
        ranked: list[Cause] = []
        said = None
        site_label = None
        if window is not None:
            lo, hi = window
            lower = rule == "cusum_lower"
            slices = causes.total(b.slices for s, b in st.buckets.items() if lo <= s <= hi)
            p0_is = "the target allows" if kind is BreachKind.BELOW_TARGET else "baseline"
            ranked, said = causes.explain([slices], expected, lower=lower, p0_is=p0_is)
            site_label = causes.label(ranked, "site")
            if site is not None:
                # a site chart chose its site: named when it stands out from the rest of
                # the queue (not when its rise is the whole queue's), whatever the ranking
                # of all slices (which a drift just begun may not yet pass) says
                stands_out, words = causes.site_stands_out(slices, site, len(st.site_cusum))
                if not said:
                    said = words
                elif not stands_out:
                    said = f"{said}; {words}"
                elif site_label != site:  # (else the ranking says it, in more words)
                    said = f"{words}; {said}"
                site_label = site if stands_out else None
            if said:
                message = f"{message}. Cause: {said}"
        breach = Breach(
            breach_id=f"{dedup}:{int(wall * 1000)}",
            dedup_key=dedup,
            queue_id=st.queue_id,
            kind=kind,
            rule=rule,
            severity=severity,
            subgroup_start=_dt(start),
            observed_p=observed,
            expected_p=expected,
            ucl=ucl,
            n=n,
            message=message,
            detected_at=_dt(st.watermark if detected is None else detected),
            emitted_at=_dt(wall),
            cusum=cusum,
            verdicts_total=verdicts_total,
            causes=ranked,
            cause_summary=said,
            site=site_label,
            policy=causes.label(ranked, "policy"),
        )
        out.breaches.append(breach)
        self._publish(st, "breach", queue_key(st.queue_id), breach.model_dump_json().encode())

    # -- windows and housekeeping -------------------------------------------------------------
    def _window(self, st: QueueState, seconds: int) -> tuple[int, int]:
        n = e = 0
        for b in self._in_window(st, seconds):
            n += b.n
            e += b.e
        return n, e

    def _in_window(self, st: QueueState, seconds: int) -> list[Bucket]:
        """The buckets of the last ``seconds`` of event time (the accuracy windows)."""
        lo = st.watermark - seconds
        return [b for start, b in st.buckets.items() if start + self.s.subgroup_seconds > lo]

    def _site_windows(self, st: QueueState) -> dict[str, SiteWindows]:
        """Per site, the 24 h and 7 d counts (sites with none in 7 d are left out)."""
        day = sites.window(self._in_window(st, WINDOWS["24h"]))
        week = sites.window(self._in_window(st, WINDOWS["7d"]))
        out = {}
        for site, (d, n, e) in sorted(week.items()):
            if d or n:
                d1, n1, e1 = day.get(site, (0, 0, 0))
                out[site] = SiteWindows(
                    decisions_24h=d1, n_24h=n1, errors_24h=e1, decisions_7d=d, n_7d=n, errors_7d=e
                )
        return out

    def _expire(self, st: QueueState) -> None:
        keep_from = (
            st.watermark - max(WINDOWS["7d"], self.s.grace_seconds) - self.s.subgroup_seconds
        )
        for start in [s for s in st.buckets if s < keep_from and s <= st.closed_through]:
            del st.buckets[start]
            sites.forget_expired(st)
        slices_from = st.watermark - causes.KEEP_SECONDS - self.s.subgroup_seconds
        for start, b in st.buckets.items():
            if b.slices and start < slices_from:
                b.slices = {}  # root cause looks back a day at most: the record stays small
        # The stores expire by the hour they were written in (the queue's watermark then),
        # so a verdict id counted stays at least as long as its decision.
        st.alive_from = max(st.alive_from, st.watermark - self.s.decision_ttl_seconds)
        self._decisions.expire(st.queue_id, st.alive_from)
        self._counted.expire(st.queue_id, st.alive_from)
        st.pending_alive_from = max(
            st.pending_alive_from, st.watermark - self.s.pending_ttl_seconds
        )
        st.expired_pending += self._pending.expire(st.queue_id, st.pending_alive_from)

    def snapshot(self, st: QueueState, wall: float) -> QualitySnapshot:
        acc: dict[str, float | None] = {}
        ns: dict[str, int] = {}
        for name, seconds in WINDOWS.items():
            n, e = self._window(st, seconds)
            ns[name] = n
            acc[name] = None if n == 0 else 1 - e / n
        by_type: dict[str, int] = {}
        late_24h = 0
        lo = st.watermark - WINDOWS["24h"]
        for start, b in st.buckets.items():
            if start + self.s.subgroup_seconds > lo:
                late_24h += b.late
                for k, c in b.errors_by_type.items():
                    by_type[k] = by_type.get(k, 0) + c
        ewma = EwmaState.from_dict(st.ewma["state"]) if st.ewma else None
        return QualitySnapshot(
            queue_id=st.queue_id,
            as_of=_dt(st.watermark),
            emitted_at=_dt(wall),
            decisions_total=st.decisions_total,
            verdicts_total=st.verdicts_total,
            pending_verdicts=self._pending.count(st.queue_id),
            accuracy_1h=acc["1h"],
            accuracy_24h=acc["24h"],
            accuracy_7d=acc["7d"],
            n_1h=ns["1h"],
            n_24h=ns["24h"],
            n_7d=ns["7d"],
            errors_24h_by_type=by_type,
            baseline_p=st.baseline_p,
            baseline_state="phase1" if st.baseline_p is None else "frozen",
            ewma=ewma.statistic if ewma else None,
            ewma_ucl=float(st.ewma["ucl"]) if st.ewma else None,
            in_control_streak=st.quiet_streak,
            dropped_verdicts=st.expired_pending,
            late_verdicts_total=st.late_total,
            late_verdicts_24h=late_24h,
            subgroups_closed=st.closed_count,
            failed_batches=st.failed_batches,
            rejected_items=st.rejected_items,
            last_point=st.last_point,
            cusum_upper=self._cusum_info(st, st.cusum["upper"]) if "upper" in st.cusum else None,
            cusum_lower=self._cusum_info(st, st.cusum["lower"]) if "lower" in st.cusum else None,
            site_cusums={
                site: self._cusum_info(st, c, site) for site, c in sorted(st.site_cusum.items())
            },
            verdict_rate_per_day=st.rate,
            baseline_source=(
                None if st.baseline_p is None
                else "configured" if st.baseline_n == 0 else "estimated"
            ),
            baseline_epoch=st.baseline_epoch,
            phase1_subgroups=len(st.phase1),
            phase1_length=self.s.phase1_subgroups,
            phase1_too_small=st.phase1_small,
            phase1_too_small_max_n=st.phase1_small_n if st.phase1_small else None,
            min_subgroup_n=self.s.min_subgroup_n,
            last_reset=(
                BaselineEvent.model_validate({**st.last_reset, "emitted_at": _dt(wall)})
                if st.last_reset else None
            ),
            sites=self._site_windows(st),
            target_rule=self.target_rule,
        )  # fmt: skip


def target_rule(s: ScorerSettings) -> TargetRule:
    """The below-target rule's design: it looks once a subgroup closes (at most
    ``ceil(86400 / subgroup_seconds)`` closes a UTC day); its exact upper bound's one-sided
    confidence is ``QW_TARGET_RULE_CONFIDENCE`` when set, else the one whose tail spends the
    rule's share of the false-alarm budget over the looks (``cusum.py``). It breaches at most
    once a day, so at most one false breach a day however the tail is set."""
    looks = math.ceil(86400 / s.subgroup_seconds - 1e-9) if s.subgroup_seconds <= 86400 else (
        86400 / s.subgroup_seconds
    )  # fmt: skip
    configured = s.quality.target_rule_confidence
    if configured is not None:
        tail = float(f"{1 - configured:.12g}")  # 0.05, not 0.050000000000000044
        source: Literal["budget", "configured"] = "configured"
    else:
        tail = live.per_look_tail("below_target", s.false_alarms_per_day, s.expected_queues, looks)
        source = "budget"
    return TargetRule(
        confidence=1 - tail, tail_per_look=tail, looks_per_day=looks,
        false_alarms_per_day=min(1.0, tail * looks), source=source,
    )  # fmt: skip


def _set_design(
    charts: dict[str, live.LiveCusum], key: str, side: live.Side, p0: float, ratio: float,
    arl0: float, known: live.Belief | None,
) -> None:  # fmt: skip
    """Put the design for (side, p0, ratio, arl0, known) in force on ``charts[key]``: a new
    chart, or a new decision interval for the one running (its statistic carries over)."""
    d = live.design(side, p0, ratio, arl0, known)
    if d is None:
        return
    chart = charts.get(key)
    if chart is None:
        charts[key] = live.LiveCusum(side, BernoulliCusum(d), arl0)
    elif chart.chart.design != d:
        chart.redesign(d, arl0)


@functools.lru_cache(maxsize=4096)
def _limit_counts(p0: float, e0: int, n0: int, n: int, alpha: float) -> tuple[int, int]:
    """The p-chart's lower and upper alarm counts for a subgroup of ``n`` (cached: a queue
    sees the same few baselines and sizes again and again, and each costs a scipy call)."""
    model = CountModel(p0, e0, n0)
    return model.lower_count(n, alpha), model.upper_count(n, alpha)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _decision_fault(d: dict[str, Any]) -> str | None:
    """What is wrong with a decision's optional fields, if anything."""
    severity = d.get("severity", 2)
    if not (_is_int(severity) and 1 <= severity <= 4):
        return f"severity {str(severity)[:100]!r} must be an integer from 1 to 4"
    tenure = d.get("moderator_tenure_days")
    if tenure is not None and not (_is_int(tenure) and 0 <= tenure <= MAX_TENURE_DAYS):
        return (
            f"moderator_tenure_days {str(tenure)[:100]!r} must be an integer from 0 to "
            f"{MAX_TENURE_DAYS} or absent"
        )
    return None


def _verdict_fault(v: dict[str, Any]) -> str | None:
    """What is wrong with a verdict's outcome, error type or sample type, if anything
    (checked as strings first: a dict or a list would not even hash)."""
    if v["outcome"] not in _OUTCOMES:
        return f"outcome {v['outcome'][:100]!r} is not one of {sorted(_OUTCOMES)}"
    error_type = v.get("error_type")
    if error_type is not None and not (isinstance(error_type, str) and error_type in _ERROR_TYPES):
        return f"error_type {str(error_type)[:100]!r} is not one of {sorted(_ERROR_TYPES)}"
    sample = v.get("sample_type")
    if sample is not None and not (isinstance(sample, str) and sample in _SAMPLE_TYPES):
        return f"sample_type {str(sample)[:100]!r} is not one of {sorted(_SAMPLE_TYPES)}"
    return None


def _quick_decision(e: Any, horizon: float) -> bool:
    """True when ``e`` is a v2 decision that ``_admit`` keeps as it is (its time is then
    made a float, as ``_admit`` does); False leaves it to ``_admit``'s full checks, which
    decide and say why. Only exact ``str``/``int``/``float`` values pass (what a JSON
    decoder makes), so this accepts a subset of what they accept, with the same effect
    (tests/unit/test_scorer_core.py holds the two together)."""
    if e.__class__ is not dict or not e.keys() >= _DECISION_KEYS:
        return False
    t = e["decided_at"]
    if not ((t.__class__ is float or t.__class__ is int) and MIN_EVENT_EPOCH <= t <= horizon):
        return False
    a, b, c, d = e["decision_id"], e["site_id"], e["moderator_id"], e["policy_id"]
    if not (
        a.__class__ is str and b.__class__ is str and c.__class__ is str and d.__class__ is str
        and len(a) <= OPAQUE_ID_MAX and len(b) <= OPAQUE_ID_MAX
        and len(c) <= OPAQUE_ID_MAX and len(d) <= OPAQUE_ID_MAX
        and t <= MAX_EPOCH
    ):  # fmt: skip
        return False
    severity = e.get("severity", 2)
    if severity.__class__ is not int or not 1 <= severity <= 4:
        return False
    tenure = e.get("moderator_tenure_days")
    if tenure is not None and (tenure.__class__ is not int or not 0 <= tenure <= MAX_TENURE_DAYS):
        return False
    e["decided_at"] = float(t)
    return True


def _quick_verdict(e: Any, horizon: float) -> bool:
    """``_quick_decision`` for a v2 verdict."""
    if e.__class__ is not dict or not e.keys() >= _VERDICT_KEYS:
        return False
    t = e["reviewed_at"]
    if not ((t.__class__ is float or t.__class__ is int) and MIN_EVENT_EPOCH <= t <= horizon):
        return False
    a, b, outcome = e["verdict_id"], e["decision_id"], e["outcome"]
    if not (
        a.__class__ is str and b.__class__ is str and outcome.__class__ is str
        and len(a) <= OPAQUE_ID_MAX and len(b) <= OPAQUE_ID_MAX
        and outcome in _OUTCOMES and t <= MAX_EPOCH
    ):  # fmt: skip
        return False
    error_type = e.get("error_type")
    if error_type is not None and (
        error_type.__class__ is not str or error_type not in _ERROR_TYPES
    ):
        return False
    sample = e.get("sample_type")
    if sample is not None and (sample.__class__ is not str or sample not in _SAMPLE_TYPES):
        return False
    e["reviewed_at"] = float(t)
    return True


_QUICK: dict[str, Callable[[Any, float], bool]] = {
    "decided_at": _quick_decision,
    "reviewed_at": _quick_verdict,
}


def _tenure(days: Any) -> int | None:
    """A decision's tenure in days, or None when absent or not a whole number (ingest
    validated it; a replayed old event may lack it)."""
    return days if isinstance(days, int) and not isinstance(days, bool) else None


def _decision_columns(kept: list[dict[str, Any]]) -> Columns:
    """Admitted v1 or v2 decisions as ``Columns``."""
    return (
        [d["decision_id"] for d in kept],
        [_epoch(d["decided_at"]) for d in kept],
        [d["site_id"] for d in kept],
        [d["moderator_id"] for d in kept],
        [d["policy_id"] for d in kept],
        [d.get("severity", 2) for d in kept],
        [d.get("moderator_tenure_days") for d in kept],
    )


def _verdict_columns(kept: list[dict[str, Any]]) -> Columns:
    """Admitted v1 or v2 verdicts as ``Columns``."""
    return (
        [v["verdict_id"] for v in kept],
        [v["decision_id"] for v in kept],
        [_epoch(v["reviewed_at"]) for v in kept],
        [v["outcome"] for v in kept],
        [v.get("error_type") for v in kept],
        [v.get("sample_type") for v in kept],
    )


_NONE = type(None)
_STR = frozenset({str})
_NUMBER = frozenset({float, int})


def _texts(col: list[Any]) -> bool:
    """Every value an exact ``str`` of at most OPAQUE_ID_MAX characters (what ``_admit``
    asks of an id, exact as a JSON decoder makes it)."""
    return set(map(type, col)) <= _STR and max(map(len, col), default=0) <= OPAQUE_ID_MAX


def _times(col: list[Any], horizon: float) -> list[float] | None:
    """The column as floats when every value is an exact ``int`` or ``float`` from
    MIN_EVENT_EPOCH to the horizon (and MAX_EPOCH), else None."""
    types = set(map(type, col))
    if not types <= _NUMBER:
        return None
    try:
        if not math.isfinite(sum(col)):  # (a NaN would slip past min and max)
            return None
    except OverflowError:  # an integer too large for a float
        return None
    if col and not (min(col) >= MIN_EVENT_EPOCH and max(col) <= min(horizon, MAX_EPOCH)):
        return None
    return col if int not in types else [float(t) for t in col]


def _choices(col: list[Any], allowed: frozenset[str]) -> bool:
    """Every value None or an exact ``str`` among ``allowed``."""
    return set(map(type, col)) <= {str, _NONE} and set(col) - {None} <= allowed


def _quick_decisions(cols: dict[str, list[Any]], horizon: float) -> Columns | None:
    """A v3 batch's decisions as ``Columns`` when ``_admit`` would keep every one of them
    as it is (the same checks as ``_quick_decision``, a column at once); None leaves them
    to ``_admit``, event by event (tests/unit/test_batch_v3.py holds the two together)."""
    try:
        ids, at, site, moderator, policy = (
            cols["decision_id"], cols["decided_at"], cols["site_id"], cols["moderator_id"],
            cols["policy_id"],
        )  # fmt: skip
    except KeyError:
        return None
    times = _times(at, horizon)
    if times is None or not (_texts(ids) and _texts(site) and _texts(moderator) and _texts(policy)):
        return None
    n = len(ids)
    severity = cols.get("severity")
    if severity is None:
        severity = [2] * n
    elif n and not (set(map(type, severity)) <= {int} and 1 <= min(severity) <= max(severity) <= 4):
        return None
    tenure = cols.get("moderator_tenure_days")
    if tenure is None:
        tenure = [None] * n
    else:
        types = set(map(type, tenure))
        if not types <= {int, _NONE}:
            return None
        if int in types:
            days = [x for x in tenure if x is not None]
            if not 0 <= min(days) <= max(days) <= MAX_TENURE_DAYS:
                return None
    return ids, times, site, moderator, policy, severity, tenure


def _quick_verdicts(cols: dict[str, list[Any]], horizon: float) -> Columns | None:
    """``_quick_decisions`` for a v3 batch's verdicts."""
    try:
        ids, decision_ids, at, outcome = (
            cols["verdict_id"], cols["decision_id"], cols["reviewed_at"], cols["outcome"]
        )  # fmt: skip
    except KeyError:
        return None
    times = _times(at, horizon)
    if times is None or not (
        _texts(ids) and _texts(decision_ids) and set(map(type, outcome)) <= _STR
        and set(outcome) <= _OUTCOMES
    ):  # fmt: skip
        return None
    n = len(ids)
    error_type = cols.get("error_type", [None] * n)
    sample = cols.get("sample_type", [None] * n)
    if not (_choices(error_type, _ERROR_TYPES) and _choices(sample, _SAMPLE_TYPES)):
        return None
    return ids, decision_ids, times, outcome, error_type, sample
