"""Per-queue scorer state: subgroup buckets, baseline, EWMA, and the bookkeeping that makes
replays exact. Pure data.

A ``QueueState`` is one entry of the scorer's table (key ``q|<queue>``), written once per
batch, after that batch's chunks (see ``chunks.py``), and round-trips through
``to_dict``/``from_dict`` exactly. It stays small whatever happens upstream: ids live in
chunks, the buckets cover the retention window, and the outbox holds only what has not been
acknowledged by the broker yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.scorer.cusum import LiveCusum
from services.scorer.sites import OTHER
from shared.events import ChartPoint

STATE_VERSION = 3  # 3: chunk keys with zero-padded hours, in RocksDB


@dataclass(slots=True)
class Bucket:
    """Counts for one subgroup period, by decision time.

    ``n``/``e`` count only RANDOM-sample verdicts: the only unbiased estimate of accuracy.
    Verdicts of other sample types are counted in ``other`` for context. Once the subgroup
    is closed and published, ``rev`` is its last published revision (-1: never published)
    and ``n0``/``e0`` its counts when it closed; ``ewma`` is ``[statistic, ucl]`` as the
    EWMA stood when it closed (charted past Phase I), which its revisions carry on.
    """

    n: int = 0
    e: int = 0
    decisions: int = 0
    other: int = 0
    late: int = 0
    errors_by_type: dict[str, int] = field(default_factory=dict)
    rev: int = -1
    n0: int = 0
    e0: int = 0
    status: str = ""
    # the random verdicts by slice, for root cause (services/scorer/causes.py): kept for
    # the last day's buckets only
    slices: dict[str, list[Any]] = field(default_factory=dict)
    # per site: [decisions, n, errors], adding up to the bucket's (services/scorer/sites.py)
    sites: dict[str, list[int]] = field(default_factory=dict)
    ewma: list[float] | None = None

    def to_list(self) -> list[Any]:
        # copies of the mutable parts: the record written must not change with the live
        # bucket (an in-memory table keeps the object; a failed batch must leave it as was)
        slices = {k: [n, e, dict(t)] for k, (n, e, t) in self.slices.items()}
        return [
            self.n, self.e, self.decisions, self.other, self.late, dict(self.errors_by_type),
            self.rev, self.n0, self.e0, self.status, slices,
            {k: list(c) for k, c in self.sites.items()},
            None if self.ewma is None else list(self.ewma),
        ]  # fmt: skip

    @classmethod
    def from_list(cls, v: list[Any]) -> Bucket:
        # a bucket written before root cause has no slices
        slices = (
            {k: [int(x[0]), int(x[1]), dict(x[2])] for k, x in v[10].items()} if len(v) > 10 else {}
        )
        if len(v) > 11:
            sites = {k: [int(x[0]), int(x[1]), int(x[2])] for k, x in v[11].items()}
        elif v[0] or v[2]:  # written before per-site counts: its totals are "other" sites
            sites = {OTHER: [int(v[2]), int(v[0]), int(v[1])]}
        else:
            sites = {}
        # a bucket written before its closing EWMA was kept has none
        ewma = [float(v[12][0]), float(v[12][1])] if len(v) > 12 and v[12] is not None else None
        return cls(
            int(v[0]), int(v[1]), int(v[2]), int(v[3]), int(v[4]), dict(v[5]),
            int(v[6]), int(v[7]), int(v[8]), str(v[9]), slices, sites, ewma,
        )  # fmt: skip


@dataclass(slots=True)
class QueueState:
    queue_id: str
    watermark: float = 0.0
    decisions_total: int = 0
    verdicts_total: int = 0
    late_total: int = 0
    closed_count: int = 0
    buckets: dict[int, Bucket] = field(default_factory=dict)
    closed_through: int = -1
    phase1: list[tuple[int, int]] = field(default_factory=list)
    baseline_p: float | None = None
    # verdicts behind an estimated baseline (0: configured, known without estimation error)
    baseline_n: int = 0
    baseline_e: int = 0
    ewma: dict[str, Any] | None = None
    last_point: ChartPoint | None = None
    # consecutive charted subgroups without an upper signal (alerts resolve on a streak)
    quiet_streak: int = 0
    # verdicts dropped: their decision never arrived in time, or the queue held too many
    expired_pending: int = 0
    # the day (epoch of its 00:00) a below-target breach was last emitted, to emit once a day
    target_day: int = -1
    # the input message this record was last written from: (partition, offset). A replayed
    # message at or before it was applied already and is skipped.
    applied: tuple[int, int] = (-1, -1)
    # chunks of hours ending by these times are expired, whether or not their deletion
    # reached the table (decisions and counted ids; verdicts waiting for their decision)
    alive_from: float = float("-inf")
    pending_alive_from: float = float("-inf")
    # outputs not yet acknowledged by the broker: [seq, kind, key, json]; re-sent after a
    # restart. ``out_seq`` numbers them.
    outbox: list[list[Any]] = field(default_factory=list)
    out_seq: int = 0
    # batches dead-lettered whole because scoring them raised
    failed_batches: int = 0
    # events of the queue's batches the scorer refused one by one (dead-lettered, reason each)
    rejected_items: int = 0
    # the live Bernoulli CUSUMs ("upper", "lower"), once the queue has a baseline and a
    # measured verdict rate (see cusum.py); optional in the record (absent: none yet)
    cusum: dict[str, LiveCusum] = field(default_factory=dict)
    # per-site upper CUSUMs (cusum.py, ``site_bases``): each chosen site's Phase I counts
    # [n, errors] (its baseline and its share of the queue's verdicts), set when an
    # estimated baseline is frozen, and its chart once the queue's rate is measured
    site_base: dict[str, list[int]] = field(default_factory=dict)
    site_cusum: dict[str, LiveCusum] = field(default_factory=dict)
    # random verdicts a day (event time) the designs in force were made for, and the
    # measurement under way: ``rate_n`` random verdicts counted from the event time
    # ``rate_from`` to ``rate_to`` (each verdict's own time: its review, or its decision's
    # arrival, as the CUSUM signal is timed; not the watermark, which a batch's decisions
    # move before its verdicts are counted)
    rate: float | None = None
    rate_from: float | None = None
    rate_n: int = 0
    rate_to: float | None = None
    # baseline resets (control records, shared/control.py): the queue's baseline epoch (0:
    # its first baseline; +1 each reset), the first subgroup start the Phase I under way may
    # take (a reset's effective_at; None: any), the last reset as published (who, when,
    # why), and the request ids of recent resets (a request is applied once)
    baseline_epoch: int = 0
    phase1_from: int | None = None
    last_reset: dict[str, Any] | None = None
    reset_ids: list[str] = field(default_factory=list)
    # subgroups of the Phase I under way (or the last one) skipped for having fewer random
    # verdicts than QW_SCORER_MIN_SUBGROUP_N, and the most one of them had: why a quiet
    # queue is still learning (optional in the record: absent, 0)
    phase1_small: int = 0
    phase1_small_n: int = 0
    # not stored: the sites named in the buckets, rebuilt from them (services/scorer/sites.py)
    site_names: set[str] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "queue_id": self.queue_id,
            "watermark": self.watermark,
            "decisions_total": self.decisions_total,
            "verdicts_total": self.verdicts_total,
            "late_total": self.late_total,
            "closed_count": self.closed_count,
            "buckets": {str(k): b.to_list() for k, b in self.buckets.items()},
            "closed_through": self.closed_through,
            "phase1": [list(x) for x in self.phase1],
            "baseline_p": self.baseline_p,
            "baseline_n": self.baseline_n,
            "baseline_e": self.baseline_e,
            "ewma": self.ewma,
            "last_point": self.last_point.model_dump(mode="json") if self.last_point else None,
            "quiet_streak": self.quiet_streak,
            "expired_pending": self.expired_pending,
            "target_day": self.target_day,
            "applied": list(self.applied),
            "alive_from": _finite(self.alive_from),
            "pending_alive_from": _finite(self.pending_alive_from),
            "outbox": self.outbox,
            "out_seq": self.out_seq,
            "failed_batches": self.failed_batches,
            "rejected_items": self.rejected_items,
            "cusum": {side: c.to_dict() for side, c in self.cusum.items()},
            "site_base": {site: list(c) for site, c in self.site_base.items()},
            "site_cusum": {site: c.to_dict() for site, c in self.site_cusum.items()},
            "rate": self.rate,
            "rate_from": self.rate_from,
            "rate_n": self.rate_n,
            "rate_to": self.rate_to,
            "baseline_epoch": self.baseline_epoch,
            "phase1_from": self.phase1_from,
            "last_reset": dict(self.last_reset) if self.last_reset else None,
            "reset_ids": list(self.reset_ids),
            "phase1_small": self.phase1_small,
            "phase1_small_n": self.phase1_small_n,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QueueState:
        if d.get("v") != STATE_VERSION:
            raise ValueError(
                f"queue state version {d.get('v')!r}, this scorer reads {STATE_VERSION}: "
                "see 'Upgrading the scorer's state' in docs/operations.md"
            )
        return cls(
            queue_id=d["queue_id"],
            watermark=float(d["watermark"]),
            decisions_total=int(d["decisions_total"]),
            verdicts_total=int(d["verdicts_total"]),
            late_total=int(d["late_total"]),
            closed_count=int(d["closed_count"]),
            buckets={int(k): Bucket.from_list(v) for k, v in d["buckets"].items()},
            closed_through=int(d["closed_through"]),
            phase1=[(int(a), int(b)) for a, b in d["phase1"]],
            baseline_p=None if d["baseline_p"] is None else float(d["baseline_p"]),
            baseline_n=int(d["baseline_n"]),
            baseline_e=int(d["baseline_e"]),
            ewma=d["ewma"],
            last_point=ChartPoint.model_validate(d["last_point"]) if d["last_point"] else None,
            quiet_streak=int(d["quiet_streak"]),
            expired_pending=int(d["expired_pending"]),
            target_day=int(d["target_day"]),
            applied=(int(d["applied"][0]), int(d["applied"][1])),
            alive_from=_infinite(d["alive_from"]),
            pending_alive_from=_infinite(d["pending_alive_from"]),
            outbox=[list(x) for x in d["outbox"]],
            out_seq=int(d["out_seq"]),
            failed_batches=int(d.get("failed_batches", 0)),
            rejected_items=int(d.get("rejected_items", 0)),
            cusum={side: LiveCusum.from_dict(c) for side, c in (d.get("cusum") or {}).items()},
            # (optional: a record written before per-site charts has none)
            site_base={
                str(s): [int(c[0]), int(c[1])] for s, c in (d.get("site_base") or {}).items()
            },
            site_cusum={
                str(s): LiveCusum.from_dict(c) for s, c in (d.get("site_cusum") or {}).items()
            },
            rate=None if d.get("rate") is None else float(d["rate"]),
            rate_from=None if d.get("rate_from") is None else float(d["rate_from"]),
            rate_n=int(d.get("rate_n", 0)),
            # (optional: a record written before it measured by verdict times has none)
            rate_to=None if d.get("rate_to") is None else float(d["rate_to"]),
            # (optional: a record written before baseline resets has none)
            baseline_epoch=int(d.get("baseline_epoch", 0)),
            phase1_from=None if d.get("phase1_from") is None else int(d["phase1_from"]),
            phase1_small=int(d.get("phase1_small", 0)),
            phase1_small_n=int(d.get("phase1_small_n", 0)),
            last_reset=d.get("last_reset"),
            reset_ids=[str(x) for x in d.get("reset_ids") or []],
        )


def _finite(x: float) -> float | None:
    return None if x == float("-inf") else x


def _infinite(x: float | None) -> float:
    return float("-inf") if x is None else float(x)
