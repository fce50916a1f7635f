"""Fleet benchmark: the scorer's detectors on a simulated wall of queues, in process.

    .venv/bin/python bench/fleet.py [--queues 40] [--days 7] [--seed 1] [--jobs 1]
    .venv/bin/python bench/fleet.py --queues 500 --days 30 --out fleet.jsonl   # the wall
    .venv/bin/python bench/fleet.py --summarise fleet.jsonl                    # its tables

Each queue runs through the same pure ``Scorer`` the stream runs (``services/scorer/core.py``,
on a dict, outputs acknowledged as the worker's producer would, as ``bench/recovery.py
--pure`` does), with the scorer settings of the environment (``QW_SCORER_*``; the defaults:
a budget of 1 false alarm a day over 500 expected queues).

**Traffic, per queue.** A random-sample verdict rate r drawn log-uniformly from
[``--rate-min``, ``--rate-max``] verdicts a day (200 to 5,000), with a daily cycle (x 0.5 at
night to x 1.5 in the afternoon) starting at a random phase; 10% more verdicts of targeted
samples (counted apart, not charted); the baseline error rate p0 (5%) configured as the
queue's standard (``QW_SCORER_BASELINE_P``), so the detectors run from the first hours.
Only decisions that get a QA verdict are sent (the others change no detector). QA lag:
log-normal, median 2 h, 10% beyond 5.6 h and 8.5% beyond the 6 h grace (late verdicts that
revise closed subgroups); 3% of decisions arrive 2-5 h late (their verdicts wait for them);
1% of decisions and 2% of verdicts arrive twice, up to 3 h apart. Events are delivered in
arrival order in one batch per queue and ``--batch-s`` seconds of arrival time (3600, as
``bench/recovery.py`` does; a batch costs the scorer a record write whatever its size), and
from a day before the drift every ``--drift-batch-s`` (900), so that an alert's time is
known within a quarter of an hour.

**In control, then a drift.** ``--days`` (7) days in control; then, on each queue, one of
the ``--shifts`` (5% -> 7.5%, 10%, 15% and 0%, assigned to the queues in a seeded random
order, in equal numbers) starts at a random hour of the next day, by decision time, and
lasts ``--drift-days`` (3) days.

**Measures.**

- *False alarms per day across the wall*: every breach before the drift starts, per
  queue-day in control, times ``QW_SCORER_EXPECTED_QUEUES`` (the wall the budget is split
  over; the simulated queues are a sample of it), by detector (rule), with a 95% Poisson
  interval; and the same for episodes (below).
- *Delay* from the first drifted decision (the drift's start) to the first alert after it,
  per shift: in **verdicts**, the random verdicts of drifted decisions that the scorer had
  counted when it alerted (from its own hourly buckets), and in **hours** of event time
  (the alert comes out of the batch that carried the deciding verdict; QA lag included).
  Median and p90 over the drifted queues, with a drift not caught within ``--drift-days``
  counted as longer than any (shown as ">").
- *Alert episodes per drift*: an operator sees breaches of one queue grouped: an episode
  opens with a breach and stays open until ``--episode-gap-h`` (12) hours of event time
  pass without another breach on that queue; every breach while it is open, of any
  detector, joins it. Counted per drifted queue from the drift's start to the end of its
  window (mean and max), with the breaches and the detectors behind them.

The queues are independent (the scorer's state is per queue and nothing crosses queues but
its design caches), so they run one after another, each on its own table, in ``--jobs``
processes. Everything follows from ``--seed`` (any ``--jobs``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import numpy as np

from services.alerts.db import recovered, recovered_kinds
from services.alerts.settings import AlertsSettings
from services.scorer.core import Scorer
from services.scorer.settings import ScorerSettings
from shared.batches import EventBatch
from shared.events import Breach, QualitySnapshot
from shared.settings import QualitySettings

DAY = 86400
HOUR = 3600
T0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
RULES = (
    "p_chart_ucl", "ewma_ucl", "cusum_upper", "cusum_site_upper", "cusum_lower",
    "accuracy_24h_below_target",
)  # fmt: skip
RULE_NAMES = {
    "p_chart_ucl": "p-chart",
    "ewma_ucl": "EWMA",
    "cusum_upper": "CUSUM upper",
    "cusum_site_upper": "CUSUM of a site",
    "cusum_lower": "CUSUM lower",
    "accuracy_24h_below_target": "below target",
}
DEFAULT_SHIFTS = (0.075, 0.10, 0.15, 0.0)


@dataclass(frozen=True, slots=True)
class FleetConfig:
    queues: int = 40
    days: float = 7.0
    seed: int = 1
    p0: float = 0.05
    shifts: tuple[float, ...] = DEFAULT_SHIFTS
    drift_days: float = 3.0
    rate_min: float = 200.0
    rate_max: float = 5000.0
    batch_s: int = 3600
    drift_batch_s: int = 900
    episode_gap_h: float = 12.0
    targeted_share: float = 0.1  # verdicts of non-random samples, over the random ones
    late_decision_share: float = 0.03
    dup_decision_share: float = 0.01
    dup_verdict_share: float = 0.02
    lag_median_h: float = 2.0
    lag_sigma: float = 0.8
    # --estimated: no configured baseline; each queue learns its own Phase I, from sites
    # of unequal sizes (shares ~ Dirichlet(site_alpha)) whose error rates spread about p0
    # as Beta(site_kappa p0, site_kappa (1 - p0)), so the per-site charts run
    estimated: bool = False
    sites: int = 3
    site_alpha: float = 3.0
    site_kappa: float = 100.0


@dataclass(slots=True)
class QueueResult:
    index: int
    rate: float
    shift: float | None
    control_days: float  # from the first charted hour (the baseline frozen) to the drift
    control_breaches: list[tuple[float, str]] = field(default_factory=list)
    drift_breaches: list[tuple[float, str]] = field(default_factory=list)
    drift_start: float = 0.0
    delay_verdicts: int | None = None  # None: not caught in the window
    delay_hours: float | None = None
    first_rule: str | None = None
    # when each incident opened (event time), by the alerts service's rules (Incidents)
    control_incidents: list[float] = field(default_factory=list)
    drift_incidents: list[float] = field(default_factory=list)
    events: int = 0
    random_verdicts: int = 0  # delivered, duplicates included
    # --estimated: the Phase I (verdicts, errors; None: still learning at the drift) and the
    # site charts it chose
    phase1: tuple[int, int] | None = None
    site_charts: int = 0


def _iso(t: np.ndarray) -> list[str]:
    """ISO 8601 UTC strings of epoch seconds, vectorised (microseconds)."""
    us = np.round(t * 1e6).astype("datetime64[us]")
    return [s + "+00:00" for s in np.datetime_as_string(us, unit="us").tolist()]


def queue_traffic(
    cfg: FleetConfig, index: int, shift: float | None
) -> tuple[float, float, float, list[tuple[float, EventBatch]]]:
    """(rate, drift start, end, batches): the queue's events in arrival order, one batch per
    ``batch_s`` of arrival time, each with the time it is processed (its window's end)."""
    rng = np.random.default_rng([cfg.seed, index])
    qid = f"q{index:04d}"
    rate = math.exp(rng.uniform(math.log(cfg.rate_min), math.log(cfg.rate_max)))
    control_end = T0 + cfg.days * DAY
    drift_start = control_end + int(rng.integers(0, 24)) * HOUR
    end = drift_start + cfg.drift_days * DAY if shift is not None else control_end
    # decisions that get a verdict: a Poisson process with a daily cycle, by thinning
    per_s = rate * (1 + cfg.targeted_share) / DAY
    phase = rng.uniform(0, 2 * math.pi)
    n = int(rng.poisson(1.5 * per_s * (end - T0)))
    t = np.sort(rng.uniform(T0, end, n))
    keep = rng.uniform(0, 1.5, n) < 1 + 0.5 * np.sin(2 * math.pi * (t - T0) / DAY + phase)
    t = t[keep]
    n = len(t)
    random_sample = rng.uniform(size=n) >= cfg.targeted_share / (1 + cfg.targeted_share)
    if cfg.estimated:  # sites of unequal sizes and error rates about p0; a drift scales them
        share, level = site_mix(cfg, index)
        site = rng.choice(cfg.sites, n, p=share)
        scale = 1.0 if shift is None else shift / cfg.p0
        p = np.minimum(np.where(t < drift_start, level[site], level[site] * scale), 1.0)
    else:
        site = np.arange(n) % 4
        p = np.where(t < drift_start, cfg.p0, cfg.p0 if shift is None else shift)
    incorrect = rng.uniform(size=n) < p
    site_l = site.tolist()
    lag = np.exp(rng.normal(math.log(cfg.lag_median_h * HOUR), cfg.lag_sigma, n))
    reviewed = t + np.clip(lag, 300, 48 * HOUR)
    late = rng.uniform(size=n) < cfg.late_decision_share
    d_arrival = t + np.where(late, rng.uniform(2 * HOUR, 5 * HOUR, n), rng.uniform(0, 120, n))
    dup_d = rng.uniform(size=n) < cfg.dup_decision_share
    dup_v = rng.uniform(size=n) < cfg.dup_verdict_share
    again = rng.uniform(0, 3 * HOUR, n)
    error_type = rng.choice(["over_enforcement", "under_enforcement", "wrong_policy"], n).tolist()
    decided_iso, reviewed_iso = _iso(t), _iso(reviewed)
    wrong_l, random_l = incorrect.tolist(), random_sample.tolist()
    # (arrival, kind, i): kind 0 decision, 1 verdict
    arrivals = [(float(d_arrival[i]), 0, i) for i in range(n)]
    arrivals += [(float(reviewed[i]), 1, i) for i in range(n)]
    arrivals += [(float(d_arrival[i] + again[i]), 0, int(i)) for i in np.flatnonzero(dup_d)]
    arrivals += [(float(reviewed[i] + again[i]), 1, int(i)) for i in np.flatnonzero(dup_v)]
    arrivals.sort()
    batches: list[tuple[float, EventBatch]] = []
    decisions: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    close = 0.0
    for at, kind, i in arrivals:
        if at >= end:
            break
        if at >= close:
            if decisions or verdicts:
                batches.append((close, _batch(qid, decisions, verdicts)))
            decisions, verdicts = [], []
            window = cfg.batch_s if at < drift_start - DAY else cfg.drift_batch_s
            close = T0 + (int((at - T0) // window) + 1) * window
            if at < drift_start - DAY:
                close = min(close, drift_start - DAY)
        did = f"{qid}-d{i}"
        if kind == 0:
            decisions.append(
                {
                    "decision_id": did,
                    "decided_at": decided_iso[i],
                    "site_id": f"s{site_l[i]}",
                    "moderator_id": f"m{i % 97}",
                    "policy_id": "p.v1",
                }
            )
        else:
            wrong = wrong_l[i]
            verdicts.append(
                {
                    "verdict_id": f"{qid}-v{i}",
                    "decision_id": did,
                    "reviewed_at": reviewed_iso[i],
                    "outcome": "incorrect" if wrong else "correct",
                    "error_type": error_type[i] if wrong else None,
                    "sample_type": "random" if random_l[i] else "targeted",
                }
            )
    if decisions or verdicts:
        batches.append((close, _batch(qid, decisions, verdicts)))
    return rate, drift_start, end, batches


def site_mix(cfg: FleetConfig, index: int) -> tuple[np.ndarray, np.ndarray]:
    """With ``--estimated``, a queue's sites: their shares of its traffic and their
    in-control error rates (a stream of their own, so the queue's true rate is known
    without simulating its traffic)."""
    rng = np.random.default_rng([cfg.seed, index, 7])
    share = rng.dirichlet([cfg.site_alpha] * cfg.sites)
    level = rng.beta(cfg.site_kappa * cfg.p0, cfg.site_kappa * (1 - cfg.p0), cfg.sites)
    return share, level


def true_rate(cfg: FleetConfig, index: int) -> float:
    """The queue's in-control error rate: p0, or with ``--estimated`` its sites' mix."""
    if not cfg.estimated:
        return cfg.p0
    share, level = site_mix(cfg, index)
    return float(share @ level)


@dataclass(slots=True)
class Incidents:
    """One queue's incidents by the alerts service's own rules (services/alerts/db.py): a
    breach whose dedup key is new opens an alert, and an incident if none is open; each
    snapshot resolves the alerts whose condition it shows over (``recovered_kinds``,
    ``recovered``), and the incident with the last of them. The snapshot before the
    breaches, as the alerts service's consumer applies one poll."""

    after_subgroups: int
    target: float
    min_sample: int
    seen: set[str] = field(default_factory=set)
    open: dict[str, tuple[str, datetime | None]] = field(default_factory=dict)

    @classmethod
    def of(cls, s: AlertsSettings) -> Incidents:
        return cls(s.resolve_after_subgroups, s.quality.accuracy_target, s.min_sample)

    def snapshot(self, snap: QualitySnapshot) -> None:
        kinds = recovered_kinds(
            snap, after_subgroups=self.after_subgroups, target=self.target,
            min_sample=self.min_sample,
        )  # fmt: skip
        for key, (kind, start) in list(self.open.items()):
            if kind in kinds and recovered(kind, start, snap):
                del self.open[key]

    def breach(self, b: Breach) -> bool:
        """Record a breach; True when it opens an incident."""
        if b.dedup_key in self.seen:
            return False
        self.seen.add(b.dedup_key)
        if b.kind.value == "below_target" and "below_target" in (k for k, _ in self.open.values()):
            return False  # the open below-target alert's (db.record_breach)
        opens = not self.open
        self.open[b.dedup_key] = (b.kind.value, b.subgroup_start)
        return opens


def _batch(qid: str, decisions: list[dict[str, Any]], verdicts: list[dict[str, Any]]) -> Any:
    return EventBatch(v=1, queue_id=qid, decisions=decisions, verdicts=verdicts)


def run_queue(
    cfg: FleetConfig,
    index: int,
    shift: float | None,
    settings: ScorerSettings | None = None,
    alerts: AlertsSettings | None = None,
) -> QueueResult:
    """One queue through a fresh pure Scorer; its breaches before and after the drift."""
    qid = f"q{index:04d}"
    s = settings or ScorerSettings()
    if not cfg.estimated:
        s = s.model_copy(update={"baseline_p": {**s.baseline_p, qid: cfg.p0}})
    rate, drift_start, end, batches = queue_traffic(cfg, index, shift)
    scorer = Scorer(s, {})
    incidents = Incidents.of(alerts or AlertsSettings())
    res = QueueResult(index, rate, shift, (min(drift_start, end) - T0) / DAY)
    res.drift_start = drift_start
    charted_from = None if cfg.estimated else T0
    for offset, (at, batch) in enumerate(batches):
        out = scorer.process(batch, at, (0, offset), ref_time=at)
        scorer.commit(qid)
        if charted_from is None and scorer.state(qid).baseline_p is not None:
            charted_from = min(at, min(drift_start, end))  # Phase I over: charts from here
            st = scorer.state(qid)
            res.phase1, res.site_charts = (st.baseline_n, st.baseline_e), len(st.site_base)
        for entry in scorer.unsent(qid):
            scorer.acked(qid, entry.seq)
        res.events += len(batch["decisions"]) + len(batch["verdicts"])
        res.random_verdicts += sum(v["sample_type"] == "random" for v in batch["verdicts"])
        # the worker publishes a snapshot of the queue after its batch (throttled to one a
        # second of wall time, far less than a batch of event time here)
        incidents.snapshot(scorer.snapshot(scorer.state(qid), at))
        for b in out.breaches:
            # when the alert is raised, in event time: the scorer's watermark then (the
            # latest event time it had seen), at most the batch's end
            when = min(at, b.detected_at.timestamp())
            if incidents.breach(b):
                (res.control_incidents if when < drift_start else res.drift_incidents).append(when)
            if when < drift_start:
                res.control_breaches.append((when, b.rule))
                continue
            res.drift_breaches.append((when, b.rule))
            if res.first_rule is None:
                res.first_rule = b.rule
                res.delay_hours = (when - drift_start) / HOUR
                res.delay_verdicts = sum(
                    bk.n for start, bk in scorer.state(qid).buckets.items() if start >= drift_start
                )
    res.control_days = 0.0 if charted_from is None else (min(drift_start, end) - charted_from) / DAY
    return res


def episodes(times: Sequence[float], gap_s: float) -> int:
    """Breaches grouped: a new episode when the previous breach is more than ``gap_s`` ago."""
    count, last = 0, -math.inf
    for t in sorted(times):
        if t - last > gap_s:
            count += 1
        last = t
    return count


def assign_shifts(cfg: FleetConfig) -> list[float | None]:
    """Each queue's drift: the shifts in equal numbers, in a seeded random order."""
    if not cfg.shifts:
        return [None] * cfg.queues
    order = np.random.default_rng([cfg.seed, 1 << 30]).permutation(cfg.queues)
    return [cfg.shifts[int(k) % len(cfg.shifts)] for k in order]


def _one(args: tuple[FleetConfig, int, float | None]) -> QueueResult:
    return run_queue(*args)


def run_fleet(
    cfg: FleetConfig,
    jobs: int = 1,
    settings: ScorerSettings | None = None,
    out: TextIO | None = None,
) -> list[QueueResult]:
    """Every queue's result, in queue order; each also as a JSON line to ``out`` as it
    comes (a long run can be summarised part-way with ``--summarise``)."""
    shifts = assign_shifts(cfg)
    work = [(cfg, i, shifts[i]) for i in range(cfg.queues)]
    results: list[QueueResult] = []

    def keep(r: QueueResult) -> None:
        results.append(r)
        if out is not None:
            out.write(json.dumps(asdict(r)) + "\n")
            out.flush()

    if jobs <= 1 or settings is not None:
        for c, i, shift in work:
            keep(run_queue(c, i, shift, settings))
    else:
        with ProcessPoolExecutor(jobs) as pool:
            for r in pool.map(_one, work):
                keep(r)
    return results


def load_results(path: str) -> list[QueueResult]:
    results = []
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            for k in ("control_breaches", "drift_breaches"):
                d[k] = [(float(t), str(rule)) for t, rule in d[k]]
            for k in ("control_incidents", "drift_incidents"):  # absent in older files
                d[k] = [float(t) for t in d.get(k, [])]
            if d.get("phase1") is not None:
                d["phase1"] = (int(d["phase1"][0]), int(d["phase1"][1]))
            results.append(QueueResult(**d))
    return results


# -- the report ---------------------------------------------------------------------------------
def poisson_interval(k: int) -> tuple[float, float]:
    """Exact (Garwood) 95% interval of a Poisson count."""
    from scipy.stats import chi2

    lo = 0.0 if k == 0 else float(chi2.ppf(0.025, 2 * k)) / 2
    return lo, float(chi2.ppf(0.975, 2 * k + 2)) / 2


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank, so inf stands for "not caught")."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(slots=True)
class Summary:
    queue_days: float
    wall: int
    by_rule: dict[str, int]
    alarms: int
    control_episodes: int
    control_incidents: int
    per_shift: dict[float, dict[str, Any]]
    true_below_target: int = 0  # below-target breaches of queues truly below the target


BELOW_TARGET = "accuracy_24h_below_target"


def false_alarms(cfg: FleetConfig, r: QueueResult, target: float) -> list[tuple[float, str]]:
    """The queue's breaches in control that are false: all but a below-target breach of a
    queue whose true accuracy is below the target (with ``--estimated`` a queue's sites may
    make it so: that breach is right)."""
    truly_below = 1 - true_rate(cfg, r.index) < target
    return [
        (t, rule) for t, rule in r.control_breaches if not (truly_below and rule == BELOW_TARGET)
    ]


def summarise(
    cfg: FleetConfig, results: Sequence[QueueResult], wall: int, target: float = 0.9
) -> Summary:
    gap = cfg.episode_gap_h * HOUR
    false = {r.index: false_alarms(cfg, r, target) for r in results}
    by_rule = Counter(rule for r in results for _, rule in false[r.index])
    per_shift: dict[float, dict[str, Any]] = {}
    for shift in sorted({r.shift for r in results if r.shift is not None}):
        rs = [r for r in results if r.shift == shift]
        v = [math.inf if r.delay_verdicts is None else r.delay_verdicts for r in rs]
        h = [math.inf if r.delay_hours is None else r.delay_hours for r in rs]
        eps = [episodes([t for t, _ in r.drift_breaches], gap) for r in rs]
        per_shift[shift] = {
            "queues": len(rs),
            "caught": sum(r.delay_verdicts is not None for r in rs),
            "v50": quantile(v, 0.5), "v90": quantile(v, 0.9),
            "h50": quantile(h, 0.5), "h90": quantile(h, 0.9),
            "first": Counter(r.first_rule for r in rs if r.first_rule),
            "episodes_mean": statistics.fmean(eps), "episodes_max": max(eps),
            "incidents_mean": statistics.fmean(len(r.drift_incidents) for r in rs),
            "incidents_max": max(len(r.drift_incidents) for r in rs),
            "incidents_over_1": sum(len(r.drift_incidents) > 1 for r in rs),
            "breaches_mean": statistics.fmean(len(r.drift_breaches) for r in rs),
            "rules": Counter(rule for r in rs for _, rule in r.drift_breaches),
        }  # fmt: skip
    return Summary(
        queue_days=sum(r.control_days for r in results),
        wall=wall,
        by_rule=dict(by_rule),
        alarms=sum(by_rule.values()),
        control_episodes=sum(episodes([t for t, _ in false[r.index]], gap) for r in results),
        # (a queue whose breaches in control were all right opened no false incident)
        control_incidents=sum(len(r.control_incidents) for r in results if false[r.index]),
        per_shift=per_shift,
        true_below_target=sum(len(r.control_breaches) - len(false[r.index]) for r in results),
    )


def _per_day(count: int, s: Summary) -> str:
    lo, hi = poisson_interval(count)
    k = s.wall / s.queue_days
    return f"{count * k:.2f} ({lo * k:.2f}-{hi * k:.2f})"


def _num(x: float, fmt: str) -> str:
    return ">window" if math.isinf(x) else format(x, fmt)


def report(cfg: FleetConfig, s: Summary, settings: ScorerSettings) -> str:
    lines = [
        f"false alarms in control: {s.alarms} in {s.queue_days:,.0f} queue-days; per day "
        f"across a wall of {s.wall} queues (95% interval), budget "
        f"{settings.false_alarms_per_day:g}:",
        "",
        "| detector | false alarms | per day across the wall |",
        "|---|---|---|",
    ]
    for rule in RULES:
        k = s.by_rule.get(rule, 0)
        lines.append(f"| {RULE_NAMES[rule]} | {k} | {_per_day(k, s)} |")
    lines.append(f"| **all** | {s.alarms} | **{_per_day(s.alarms, s)}** |")
    if s.true_below_target:
        lines.append(
            f"| (not counted: below target on queues whose true accuracy is below it) "
            f"| {s.true_below_target} | |"
        )
    lines.append(
        f"| episodes (gap {cfg.episode_gap_h:g} h) | {s.control_episodes} | "
        f"{_per_day(s.control_episodes, s)} |"
    )
    lines.append(
        f"| incidents (the alerts service's) | {s.control_incidents} | "
        f"{_per_day(s.control_incidents, s)} |"
    )
    lines += [
        "",
        f"drifts (from p0 {cfg.p0:.1%}, from the first drifted decision, window "
        f"{cfg.drift_days:g} days; delay in random verdicts of drifted decisions and in "
        "hours of event time):",
        "",
        "| shift | queues | caught | verdicts median | p90 | hours median | p90 "
        "| first alert by | incidents mean (max; queues with > 1) | episodes mean (max) "
        "| breaches mean |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for shift, d in s.per_shift.items():
        first = ", ".join(f"{RULE_NAMES[r]} {c}" for r, c in d["first"].most_common())
        lines.append(
            f"| {cfg.p0:.0%} -> {shift:.1%} | {d['queues']} | {d['caught']} "
            f"| {_num(d['v50'], ',.0f')} | {_num(d['v90'], ',.0f')} "
            f"| {_num(d['h50'], '.1f')} | {_num(d['h90'], '.1f')} | {first} "
            f"| {d['incidents_mean']:.2f} ({d['incidents_max']}; {d['incidents_over_1']}) "
            f"| {d['episodes_mean']:.2f} ({d['episodes_max']}) | {d['breaches_mean']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queues", type=int, default=40, help="queues simulated (the wall's sample)")
    ap.add_argument("--days", type=float, default=7.0, help="days in control")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="processes (the machine is shared)")
    ap.add_argument("--drift-days", type=float, default=3.0)
    ap.add_argument(
        "--shifts",
        default=",".join(f"{x:g}" for x in DEFAULT_SHIFTS),
        help="drifted error rates, comma-separated; 'none' for no drift",
    )
    ap.add_argument("--p0", type=float, default=0.05)
    ap.add_argument("--rate-min", type=float, default=200.0)
    ap.add_argument("--rate-max", type=float, default=5000.0)
    ap.add_argument("--batch-s", type=int, default=3600)
    ap.add_argument("--drift-batch-s", type=int, default=900)
    ap.add_argument("--episode-gap-h", type=float, default=12.0)
    ap.add_argument(
        "--estimated",
        action="store_true",
        help="no configured baseline: each queue learns its Phase I from its own traffic, "
        "over --sites sites of unequal sizes and error rates (per-site charts run)",
    )
    ap.add_argument("--sites", type=int, default=3, help="sites per queue with --estimated")
    ap.add_argument("--out", help="write each queue's result to this file (JSON lines)")
    ap.add_argument(
        "--summarise",
        metavar="FILE",
        help="print the report of the results in FILE (written by --out, possibly part-way) "
        "for the same options instead of running",
    )
    args = ap.parse_args(argv)
    for name in ("queues", "jobs", "batch_s", "drift_batch_s", "sites"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.days <= 0 or args.drift_days <= 0 or not 0 < args.p0 < 1:
        ap.error("--days and --drift-days must be > 0 and --p0 in (0, 1)")
    if not 0 < args.rate_min <= args.rate_max:
        ap.error("need 0 < --rate-min <= --rate-max")
    try:
        shifts = () if args.shifts == "none" else tuple(float(x) for x in args.shifts.split(","))
    except ValueError:
        ap.error("--shifts: comma-separated error rates in [0, 1), or 'none'")
    if any(not 0 <= x < 1 for x in shifts):
        ap.error("--shifts: error rates must be in [0, 1)")
    cfg = FleetConfig(
        queues=args.queues, days=args.days, seed=args.seed, p0=args.p0, shifts=shifts,
        drift_days=args.drift_days, rate_min=args.rate_min, rate_max=args.rate_max,
        batch_s=args.batch_s, drift_batch_s=args.drift_batch_s, episode_gap_h=args.episode_gap_h,
        estimated=args.estimated, sites=args.sites,
    )  # fmt: skip
    settings = ScorerSettings()
    t0 = time.perf_counter()
    if args.summarise:
        results = load_results(args.summarise)
    elif args.out:
        with open(args.out, "w") as out:
            results = run_fleet(cfg, args.jobs, out=out)
    else:
        results = run_fleet(cfg, args.jobs)
    took = time.perf_counter() - t0
    events = sum(r.events for r in results)
    verdicts = sum(r.random_verdicts for r in results)
    sigma = getattr(settings, "sigma_limits", None)
    pchart = f"{sigma:g} sigma" if sigma else "alpha from the budget"
    print(f"command: python bench/fleet.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    what = (
        f"results read from {args.summarise} (the run's options are not in it: pass the "
        "same --episode-gap-h, --p0 and --drift-days for the labels)"
        if args.summarise
        else f"{cfg.queues} queues, {cfg.days:g} days in control, seed {cfg.seed}"
    )
    print(
        f"{what}; scorer: budget "
        f"{settings.false_alarms_per_day:g}/day over {settings.expected_queues} queues, "
        f"p-chart {pchart}, EWMA lambda {settings.ewma_lambda:g} L {settings.ewma_l:g} "
        f"{'alerting' if settings.ewma_alerts else 'charted only'}, CUSUM "
        f"x{settings.cusum_shift_up:g} / x{settings.cusum_shift_down:g}"
    )
    if not args.summarise:
        print(
            f"{len(results)} queues run: {events:,} events ({verdicts:,} random verdicts) in "
            f"{took:,.0f} s; {platform.platform()}, {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.1f}"
        )
    else:
        print(f"{len(results)} queues: {events:,} events ({verdicts:,} random verdicts)")
    learned = [r.phase1 for r in results if r.phase1 is not None]
    if learned:
        sizes = sorted(n for n, _ in learned)
        print(
            f"estimated baselines: {len(learned)} of {len(results)} queues left Phase I before "
            f"the drift (Phase I verdicts: median {sizes[len(sizes) // 2]:,}, "
            f"{sizes[0]:,}-{sizes[-1]:,}); site charts: "
            f"{sum(r.site_charts for r in results)} on "
            f"{sum(r.site_charts > 0 for r in results)} queues; in control (charted) "
            f"{sum(r.control_days for r in results):,.0f} queue-days"
        )
    print()
    target = QualitySettings().accuracy_target
    print(report(cfg, summarise(cfg, results, settings.expected_queues, target), settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
