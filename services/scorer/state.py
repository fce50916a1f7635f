"""Per-queue scorer state: subgroup buckets, baseline, EWMA, pending verdicts. Pure data.

A ``QueueState`` is kept in a Faust table keyed by queue (one changelog write per batch, not
per event) and round-trips through ``to_dict``/``from_dict`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.events import ChartPoint

STATE_VERSION = 1


@dataclass(slots=True)
class Bucket:
    """Counts for one subgroup period, by decision time.

    ``n``/``e`` count only RANDOM-sample verdicts: the only unbiased estimate of accuracy.
    Verdicts of other sample types are counted in ``other`` for context.
    """

    n: int = 0
    e: int = 0
    decisions: int = 0
    other: int = 0
    late: int = 0
    errors_by_type: dict[str, int] = field(default_factory=dict)

    def to_list(self) -> list[Any]:
        return [self.n, self.e, self.decisions, self.other, self.late, self.errors_by_type]

    @classmethod
    def from_list(cls, v: list[Any]) -> Bucket:
        return cls(int(v[0]), int(v[1]), int(v[2]), int(v[3]), int(v[4]), dict(v[5]))


@dataclass(slots=True)
class QueueState:
    queue_id: str
    watermark: float = 0.0
    decisions_total: int = 0
    verdicts_total: int = 0
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
    # verdicts whose decision has not arrived yet: decision_id -> [verdict, ...]
    pending: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    expired_pending: int = 0
    # the day (epoch of its 00:00) a below-target breach was last emitted, to emit once a day
    target_day: int = -1

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "q": self.queue_id,
            "wm": self.watermark,
            "dt": self.decisions_total,
            "vt": self.verdicts_total,
            "b": {str(k): b.to_list() for k, b in self.buckets.items()},
            "ct": self.closed_through,
            "p1": [list(x) for x in self.phase1],
            "bp": self.baseline_p,
            "bn": self.baseline_n,
            "be": self.baseline_e,
            "ew": self.ewma,
            "lp": self.last_point.model_dump(mode="json") if self.last_point else None,
            "qs": self.quiet_streak,
            "pd": self.pending,
            "xp": self.expired_pending,
            "td": self.target_day,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QueueState:
        if d.get("v") != STATE_VERSION:
            raise ValueError(f"unknown queue state version {d.get('v')!r}")
        return cls(
            queue_id=d["q"],
            watermark=float(d["wm"]),
            decisions_total=int(d["dt"]),
            verdicts_total=int(d["vt"]),
            buckets={int(k): Bucket.from_list(v) for k, v in d["b"].items()},
            closed_through=int(d["ct"]),
            phase1=[(int(a), int(b)) for a, b in d["p1"]],
            baseline_p=None if d["bp"] is None else float(d["bp"]),
            baseline_n=int(d["bn"]),
            baseline_e=int(d["be"]),
            ewma=d["ew"],
            last_point=ChartPoint.model_validate(d["lp"]) if d["lp"] else None,
            quiet_streak=int(d["qs"]),
            pending={k: list(v) for k, v in d["pd"].items()},
            expired_pending=int(d["xp"]),
            target_day=int(d["td"]),
        )

    @property
    def pending_count(self) -> int:
        return sum(len(v) for v in self.pending.values())
