"""A reproducible model of a moderation operation: decisions, QA verdicts, lag and drift.

Pure: yields events in the order the real systems would emit them (a verdict hours after
its decision, sometimes duplicated, sometimes before its decision reaches us). The same
seed gives the same events.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

POLICY_AREAS = [
    ("hate", 2), ("spam", 4), ("violence", 1), ("child_safety", 1), ("harassment", 2),
    ("misinfo", 3), ("self_harm", 1), ("scam", 3), ("nudity", 2), ("ip", 4),
]  # fmt: skip
MARKETS = ["en", "es", "de", "pt", "fr", "ja", "ar", "hi"]
SITES = ["manila", "dublin", "austin", "hyderabad", "bogota"]
ERROR_TYPES = [
    ("over_enforcement", 0.40), ("under_enforcement", 0.35), ("wrong_policy", 0.20),
    ("technical", 0.05),
]  # fmt: skip
ACTIONS = ["approve", "remove", "restrict", "label", "escalate"]
ACTION_WEIGHTS = [0.55, 0.30, 0.07, 0.06, 0.02]


@dataclass(frozen=True, slots=True)
class Drift:
    """From ``at_s`` seconds of simulated time on, ``queue_id``'s accuracy changes by
    ``delta`` (e.g. -0.06 is six points worse), optionally only at one site."""

    queue_id: str
    at_s: float
    delta: float
    site_id: str | None = None


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int = 7
    queues: int = 20
    sites: int = 4
    moderators_per_site: int = 40
    decisions_per_hour: float = 1000.0  # per queue
    random_qa_rate: float = 0.05
    targeted_qa_rate: float = 0.01
    accuracy_range: tuple[float, float] = (0.92, 0.975)
    qa_lag_median_s: float = 2 * 3600.0
    qa_lag_sigma: float = 0.5  # lognormal shape
    decision_delay_max_s: float = 120.0  # decisions reach Kafka up to this late
    duplicate_rate: float = 0.005
    start: datetime = field(default_factory=lambda: datetime(2026, 11, 2, tzinfo=UTC))
    drifts: tuple[Drift, ...] = ()
    tick_s: float = 60.0


@dataclass(frozen=True, slots=True)
class QueueProfile:
    queue_id: str
    policy_id: str
    market: str
    severity: int
    accuracy: float


def queue_profiles(cfg: SimConfig) -> list[QueueProfile]:
    rng = random.Random(cfg.seed)
    out: list[QueueProfile] = []
    i = 0
    while len(out) < cfg.queues:
        area, severity = POLICY_AREAS[i % len(POLICY_AREAS)]
        market = MARKETS[(i // len(POLICY_AREAS) + i) % len(MARKETS)]
        qid = f"{area}-{market}"
        if all(q.queue_id != qid for q in out):
            lo, hi = cfg.accuracy_range
            out.append(
                QueueProfile(qid, f"{area}.v3", market, severity, round(rng.uniform(lo, hi), 3))
            )
        i += 1
    return out


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


class Simulation:
    """Iterate ``(emit_time, event_dict)`` in non-decreasing emit time (epoch seconds)."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed + 1)
        self.queues = queue_profiles(cfg)
        self.sites = SITES[: cfg.sites]
        site_rng = random.Random(cfg.seed + 2)
        self.site_offset = {s: site_rng.uniform(-0.015, 0.015) for s in self.sites}
        self.t0 = cfg.start.timestamp()
        self._heap: list[tuple[float, int, dict[str, Any]]] = []
        self._seq = 0

    def accuracy(self, q: QueueProfile, site: str, sim_s: float) -> float:
        acc = q.accuracy + self.site_offset[site]
        for d in self.cfg.drifts:
            if d.queue_id == q.queue_id and sim_s >= d.at_s and d.site_id in (None, site):
                acc += d.delta
        return min(0.999, max(0.5, acc))

    def _push(self, t: float, event: dict[str, Any]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, event))

    def _poisson(self, lam: float) -> int:
        # Knuth for small means, normal approximation for large ones.
        if lam > 50:
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    def _tick(self, tick_start: float) -> None:
        cfg, rng = self.cfg, self.rng
        per_tick = cfg.decisions_per_hour * cfg.tick_s / 3600.0
        for q in self.queues:
            for _ in range(self._poisson(per_tick)):
                decided = tick_start + rng.random() * cfg.tick_s
                site = rng.choice(self.sites)
                mod = f"{site}-m{rng.randrange(cfg.moderators_per_site):03d}"
                self._seq += 1
                did = f"d{cfg.seed}-{self._seq}"
                decision = {
                    "kind": "decision", "v": 1, "decision_id": did, "content_id": f"c{self._seq}",
                    "queue_id": q.queue_id, "moderator_id": mod, "site_id": site,
                    "policy_id": q.policy_id, "action": rng.choices(ACTIONS, ACTION_WEIGHTS)[0],
                    "decided_at": _iso(decided), "market": q.market, "severity": q.severity,
                }  # fmt: skip
                self._push(decided + rng.random() * cfg.decision_delay_max_s, decision)
                if rng.random() < cfg.duplicate_rate:
                    self._push(decided + rng.random() * 3 * cfg.decision_delay_max_s, decision)
                u = rng.random()
                if u < cfg.random_qa_rate:
                    sample = "random"
                elif u < cfg.random_qa_rate + cfg.targeted_qa_rate:
                    sample = "targeted"
                else:
                    continue
                acc = self.accuracy(q, site, decided - self.t0)
                if sample == "targeted":
                    acc -= 0.10  # risk-based samples find more errors: biased by design
                correct = rng.random() < acc
                lag = cfg.qa_lag_median_s * math.exp(rng.gauss(0.0, cfg.qa_lag_sigma))
                reviewed = decided + lag
                verdict = {
                    "kind": "verdict", "v": 1, "verdict_id": f"v-{did}", "decision_id": did,
                    "queue_id": q.queue_id, "auditor_id": f"qa{rng.randrange(25):02d}",
                    "reviewed_at": _iso(reviewed),
                    "outcome": "correct" if correct else "incorrect",
                    "error_type": None if correct else rng.choices(
                        [e for e, _ in ERROR_TYPES], [w for _, w in ERROR_TYPES])[0],
                    "sample_type": sample,
                }  # fmt: skip
                self._push(reviewed, verdict)
                if rng.random() < cfg.duplicate_rate:
                    self._push(reviewed + rng.random() * 600, verdict)

    def events(self, duration_s: float) -> Iterator[tuple[float, dict[str, Any]]]:
        """Events emitted in ``[start, start + duration_s)``, in emit-time order."""
        end = self.t0 + duration_s
        t = self.t0
        while t < end:
            self._tick(t)
            t += self.cfg.tick_s
            while self._heap and self._heap[0][0] < min(t, end):
                emit, _, ev = heapq.heappop(self._heap)
                yield emit, ev
