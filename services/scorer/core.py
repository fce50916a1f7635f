"""The scorer's logic: a batch of a queue's events in, snapshots and breaches out. No I/O.

State is handed in (two mutable mappings, which the Faust worker backs by changelogged
tables and tests back by dicts), so the same code runs in the stream, in tests and in the
benchmark.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from services.scorer.chunks import ChunkStore
from services.scorer.settings import ScorerSettings
from services.scorer.state import Bucket, QueueState
from shared.batches import EventBatch
from shared.events import Breach, BreachKind, ChartPoint, QualitySnapshot
from shared.stats.ewma import EwmaState
from shared.stats.intervals import wilson_interval
from shared.stats.problimits import CountModel, alpha_for_sigmas

_DECISION_KEYS = frozenset({"decision_id", "decided_at", "site_id", "moderator_id", "policy_id"})
_VERDICT_KEYS = frozenset({"verdict_id", "decision_id", "reviewed_at", "outcome"})
MIN_PHASE1_ERRORS_FOR_EWMA = 2
MAX_FUTURE_S = 900.0  # as ingest: event times this far ahead of the clock are refused
WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}
RANDOM = "random"


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(slots=True)
class Output:
    snapshots: list[QualitySnapshot] = field(default_factory=list)
    breaches: list[Breach] = field(default_factory=list)
    rejected: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # to dead letter


@dataclass(slots=True)
class _QueueCache:
    state: QueueState
    last_snapshot_wall: float = 0.0


class Scorer:
    def __init__(
        self,
        settings: ScorerSettings,
        queues: MutableMapping[str, Any],
        chunks: MutableMapping[str, Any],
    ) -> None:
        self.s = settings
        self._queues = queues
        # decision records [decided_at, site, moderator, policy, severity] for the join
        self._decisions = ChunkStore(chunks, "d")
        # verdicts already counted [reviewed_at]: a replayed or duplicated verdict is not
        # counted twice
        self._counted = ChunkStore(chunks, "v")
        self._cache: dict[str, _QueueCache] = {}

    # -- state ------------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Partitions moved: drop derived in-memory state; it is rebuilt from the tables."""
        self._cache.clear()
        self._decisions.invalidate()
        self._counted.invalidate()

    def _load(self, queue_id: str) -> _QueueCache:
        cached = self._cache.get(queue_id)
        if cached is None:
            raw = self._queues.get(queue_id)
            state = QueueState.from_dict(raw) if raw is not None else QueueState(queue_id)
            if state.baseline_p is None and queue_id in self.s.baseline_p:
                state.baseline_p = self.s.baseline_p[queue_id]
            cached = self._cache[queue_id] = _QueueCache(state)
        return cached

    def state(self, queue_id: str) -> QueueState:
        return self._load(queue_id).state

    # -- processing -------------------------------------------------------------------------
    def process(self, batch: EventBatch, wall: float, batch_id: str) -> Output:
        """Score one batch. ``batch_id`` identifies the message (partition-offset): a
        replayed message writes to the same chunks instead of new ones."""
        cache = self._load(batch["queue_id"])
        st = cache.state
        out = Output()
        period = self.s.subgroup_seconds
        # Event times drive the watermark; one far in the future would close every open
        # subgroup. Ingest refuses them; a replay of older data must not slip one through.
        horizon = wall + MAX_FUTURE_S
        decisions = self._admit(batch["decisions"], _DECISION_KEYS, "decided_at", horizon, out)
        verdicts = self._admit(batch["verdicts"], _VERDICT_KEYS, "reviewed_at", horizon, out)

        counted: dict[str, list[Any]] = {}
        if decisions:
            self._add_decisions(st, decisions, period, counted, batch_id)
        for v in verdicts:
            st.watermark = max(st.watermark, _epoch(v["reviewed_at"]))
            record = self._decisions.get(v["decision_id"])
            if record is None:
                self._hold(st, v)
                continue
            self._count_verdict(st, v, record, period, counted)
        if counted:
            self._counted.add(st.queue_id, st.watermark, batch_id, counted)

        closed_any = self._close_subgroups(st, out, wall)
        self._check_target(st, out, wall)
        self._expire(st)
        self._queues[st.queue_id] = st.to_dict()

        if (
            closed_any
            or out.breaches
            or wall - cache.last_snapshot_wall >= self.s.snapshot_interval_s
        ):
            out.snapshots.append(self.snapshot(st, wall))
            cache.last_snapshot_wall = wall
        return out

    @staticmethod
    def _admit(
        events: list[Any], keys: frozenset[str], field: str, horizon: float, out: Output
    ) -> list[dict[str, Any]]:
        """The events the scorer can use; the others go to the dead-letter topic. Ingest
        validated them, so this is a cheap guard against a bad producer or a replay."""
        kept = []
        for e in events:
            if not isinstance(e, dict) or not keys <= e.keys():
                out.rejected.append((e, f"scorer: missing fields {sorted(keys - set(e or ()))}"))
                continue
            try:
                ok = _epoch(e[field]) <= horizon
            except (TypeError, ValueError, OverflowError):
                ok = False
            if ok:
                kept.append(e)
            else:
                out.rejected.append(
                    (e, f"scorer: {field} {e[field]!r} is invalid or in the future")
                )
        return kept

    def _hold(self, st: QueueState, v: dict[str, Any]) -> None:
        """Keep a verdict whose decision has not arrived, up to ``pending_max`` a queue."""
        pend = st.pending.get(v["decision_id"], [])
        if any(p["verdict_id"] == v["verdict_id"] for p in pend):
            return
        if st.pending_count >= self.s.pending_max:
            st.expired_pending += 1  # the queue's decisions are missing: dropped, counted
            return
        st.pending.setdefault(v["decision_id"], []).append(v)

    def _add_decisions(
        self,
        st: QueueState,
        decisions: list[dict[str, Any]],
        period: int,
        counted: dict[str, list[Any]],
        batch_id: str,
    ) -> None:
        records: dict[str, list[Any]] = {}
        for d in decisions:
            if d["decision_id"] in records:
                continue  # a duplicate inside the batch: the first copy wins, as across batches
            t = _epoch(d["decided_at"])
            records[d["decision_id"]] = [
                t, d["site_id"], d["moderator_id"], d["policy_id"], d.get("severity", 2),
            ]  # fmt: skip
        wm = max(st.watermark, max(r[0] for r in records.values()))
        fresh = self._decisions.add(st.queue_id, wm, batch_id, records)
        if not fresh:
            return
        st.decisions_total += len(fresh)
        for decision_id, rec in fresh.items():
            t = rec[0]
            st.watermark = max(st.watermark, t)
            st.buckets.setdefault(int(t // period) * period, Bucket()).decisions += 1
            for v in st.pending.pop(decision_id, ()):
                self._count_verdict(st, v, rec, period, counted)

    def _count_verdict(
        self,
        st: QueueState,
        v: dict[str, Any],
        record: list[Any],
        period: int,
        counted: dict[str, list[Any]],
    ) -> None:
        verdict_id = v["verdict_id"]
        if verdict_id in counted or verdict_id in self._counted:
            return  # a duplicate or a replay: already counted
        counted[verdict_id] = [_epoch(v["reviewed_at"])]
        st.verdicts_total += 1
        start = int(record[0] // period) * period
        bucket = st.buckets.setdefault(start, Bucket())
        if start <= st.closed_through:
            bucket.late += 1
        if v.get("sample_type", RANDOM) != RANDOM:
            bucket.other += 1
            return
        bucket.n += 1
        if v["outcome"] == "incorrect":
            bucket.e += 1
            et = v.get("error_type") or "unknown"
            bucket.errors_by_type[et] = bucket.errors_by_type.get(et, 0) + 1

    # -- SPC --------------------------------------------------------------------------------
    def _close_subgroups(self, st: QueueState, out: Output, wall: float) -> bool:
        period, grace = self.s.subgroup_seconds, self.s.grace_seconds
        closed = False
        for start in sorted(b for b in st.buckets if b > st.closed_through):
            if start + period + grace > st.watermark:
                break
            st.closed_through = start
            closed = True
            b = st.buckets[start]
            if b.n < self.s.min_subgroup_n:
                continue
            if st.baseline_p is None:
                st.phase1.append((b.n, b.e))
                if len(st.phase1) >= self.s.phase1_subgroups:
                    self._freeze_baseline(st)
                continue
            self._chart(st, start, b, out, wall)
        return closed

    def _freeze_baseline(self, st: QueueState) -> None:
        n = sum(x[0] for x in st.phase1)
        e = sum(x[1] for x in st.phase1)
        # A Phase I with no errors would give limits of zero width; fall back to half an
        # error over the baseline's size, the usual continuity floor.
        st.baseline_p = max(e, 0.5) / n
        st.baseline_n = n
        st.baseline_e = e

    def _chart(self, st: QueueState, start: int, b: Bucket, out: Output, wall: float) -> None:
        assert st.baseline_p is not None
        p0 = st.baseline_p
        p = b.e / b.n
        # Probability limits from the count's own distribution: exact in the skewed tail of
        # small counts, and (for an estimated baseline) widened by the baseline's estimation
        # error. See shared/stats/problimits.py and docs/statistics.md.
        model = CountModel(p0, st.baseline_e, st.baseline_n)
        alpha = alpha_for_sigmas(self.s.sigma_limits)
        k_hi = model.upper_count(b.n, alpha)
        k_lo = model.lower_count(b.n, alpha)
        ucl, lcl = min(1.0, k_hi / b.n), max(0.0, k_lo / b.n)
        signals: list[str] = []
        if b.e >= k_hi:
            signals.append("p_chart_ucl")
        elif b.e <= k_lo:
            signals.append("p_chart_lcl")
        var_p0 = p0 * (1 - p0) / st.baseline_n if st.baseline_n else 0.0
        if st.baseline_n and st.baseline_e < MIN_PHASE1_ERRORS_FOR_EWMA:
            # p0 rests on too few errors for a normal-theory EWMA limit (it would alarm on
            # the first error); the beta-binomial p-chart above covers such a queue.
            self._emit_point(st, start, b, p, p0, lcl, ucl, signals, None, None, out, wall)
            return
        ewma = (
            EwmaState.from_dict(st.ewma["state"])
            if st.ewma
            else EwmaState(p0, self.s.ewma_lambda, self.s.ewma_l)
        )
        point = ewma.update(b.e, b.n)
        ewma_ucl = min(1.0, p0 + self.s.ewma_l * math.sqrt(point.variance + var_p0))
        st.ewma = {"state": ewma.to_dict(), "ucl": ewma_ucl}
        if ewma.statistic > ewma_ucl:
            signals.append("ewma_ucl")
        self._emit_point(
            st, start, b, p, p0, lcl, ucl, signals, ewma.statistic, ewma_ucl, out, wall
        )

    def _emit_point(
        self,
        st: QueueState,
        start: int,
        b: Bucket,
        p: float,
        p0: float,
        lcl: float,
        ucl: float,
        signals: list[str],
        ewma: float | None,
        ewma_ucl: float | None,
        out: Output,
        wall: float,
    ) -> None:
        st.last_point = ChartPoint(
            start=_dt(start), n=b.n, errors=b.e, p=p, center=p0, lcl=lcl, ucl=ucl, signals=signals
        )
        upper = [r for r in signals if not r.endswith("_lcl")]
        st.quiet_streak = 0 if upper else st.quiet_streak + 1
        for rule in upper:
            observed, limit = (p, ucl) if rule == "p_chart_ucl" else (ewma, ewma_ucl)
            assert observed is not None
            assert limit is not None
            out.breaches.append(
                self._breach(
                    st, BreachKind.SPC, rule, "warning", start, observed, p0, limit, b.n, wall,
                    f"queue {st.queue_id}: error rate {observed:.1%} above the control limit "
                    f"{limit:.1%} (baseline {p0:.1%}, n={b.n}) for the subgroup starting "
                    f"{_dt(start):%Y-%m-%d %H:%M} UTC",
                )
            )  # fmt: skip

    def _check_target(self, st: QueueState, out: Output, wall: float) -> None:
        day = int(st.watermark // 86400) * 86400
        if day == st.target_day:
            return  # already reported today
        n, e = self._window(st, WINDOWS["24h"])
        if n < self.s.min_subgroup_n:
            return
        ci = wilson_interval(n - e, n, self.s.target_confidence)
        if ci.upper >= self.s.quality.accuracy_target:
            return
        st.target_day = day
        out.breaches.append(
            self._breach(
                st, BreachKind.BELOW_TARGET, "accuracy_24h_below_target", "critical", day,
                e / n, 1 - self.s.quality.accuracy_target, None, n, wall,
                f"queue {st.queue_id}: 24h accuracy {1 - e / n:.1%} (upper "
                f"{self.s.target_confidence:.0%} bound {ci.upper:.1%}) is under the target "
                f"{self.s.quality.accuracy_target:.1%}, n={n}",
            )
        )  # fmt: skip

    def _breach(
        self,
        st: QueueState,
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
    ) -> Breach:
        dedup = f"{st.queue_id}:{rule}:{start}"
        return Breach(
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
            detected_at=_dt(st.watermark),
            emitted_at=_dt(wall),
        )

    # -- windows and housekeeping -------------------------------------------------------------
    def _window(self, st: QueueState, seconds: int) -> tuple[int, int]:
        lo = st.watermark - seconds
        n = e = 0
        for start, b in st.buckets.items():
            if start + self.s.subgroup_seconds > lo:
                n += b.n
                e += b.e
        return n, e

    def _expire(self, st: QueueState) -> None:
        keep_from = (
            st.watermark - max(WINDOWS["7d"], self.s.grace_seconds) - self.s.subgroup_seconds
        )
        for start in [s for s in st.buckets if s < keep_from and s <= st.closed_through]:
            del st.buckets[start]
        # Both stores expire by the hour they were written in (the queue's watermark then),
        # so a verdict id counted stays at least as long as its decision.
        ttl_from = st.watermark - self.s.decision_ttl_seconds
        self._decisions.expire(st.queue_id, ttl_from)
        self._counted.expire(st.queue_id, ttl_from)
        pend_from = st.watermark - self.s.pending_ttl_seconds
        for decision_id in list(st.pending):
            alive = [v for v in st.pending[decision_id] if _epoch(v["reviewed_at"]) >= pend_from]
            st.expired_pending += len(st.pending[decision_id]) - len(alive)
            if alive:
                st.pending[decision_id] = alive
            else:
                del st.pending[decision_id]

    def snapshot(self, st: QueueState, wall: float) -> QualitySnapshot:
        acc: dict[str, float | None] = {}
        ns: dict[str, int] = {}
        for name, seconds in WINDOWS.items():
            n, e = self._window(st, seconds)
            ns[name] = n
            acc[name] = None if n == 0 else 1 - e / n
        by_type: dict[str, int] = {}
        lo = st.watermark - WINDOWS["24h"]
        for start, b in st.buckets.items():
            if start + self.s.subgroup_seconds > lo:
                for k, c in b.errors_by_type.items():
                    by_type[k] = by_type.get(k, 0) + c
        ewma = EwmaState.from_dict(st.ewma["state"]) if st.ewma else None
        return QualitySnapshot(
            queue_id=st.queue_id,
            as_of=_dt(st.watermark),
            emitted_at=_dt(wall),
            decisions_total=st.decisions_total,
            verdicts_total=st.verdicts_total,
            pending_verdicts=st.pending_count,
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
            last_point=st.last_point,
        )
