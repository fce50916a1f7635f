"""Would a CUSUM that orders verdicts by their decision's time detect a drift sooner than the
scorer's, which takes them as they arrive?

    .venv/bin/python bench/lag_order.py [--rate 1000] [--arl0 833000] [--trials 200]

QA verdicts arrive hours after their decisions (log-normal lag, median 2 h, 8.5% past 6 h,
as in ``bench/fleet.py``), so when a queue's error rate doubles at a decision time T, the
verdicts the scorer counts after T are a mix: drifted ones, and late verdicts of decisions
made before T, at the old rate. The live CUSUM (``services/scorer/cusum.py``) counts them in
arrival order, so the late in-control verdicts pull its statistic down while it climbs.

The alternative, exact for a change point in decision time, is the largest sum of the
log-likelihood-ratio scores over the verdicts received so far of decisions at or after
each hour τ (the CUSUM of the decision-ordered sequence, restarted at hour boundaries):
late verdicts of decisions before τ do not enter it. It needs the per-hour sums the scorer
already keeps. Both use the same lattice scores and decision interval (the library's
``choose_h`` for p0 → 2 p0 at ``--arl0`` verdicts: the upper CUSUM of the median queue of
the fleet at the default budget).

For ``--trials`` seeded queues of ``--rate`` random verdicts a day (Poisson times), p0 = 5%
for 3 days of decisions and 2 p0 after, it prints the median and mean delay of each, in
drifted verdicts received when the statistic reaches the interval (as ``bench/fleet.py``
counts them). Measured 2026-12-03 (docs/statistics.md, "The goal of a median of 330"): no
gain worth a second detector.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence

import numpy as np

from shared.stats.cusum import choose_h

HOUR = 3600.0
DAY = 86400.0
LAG_MEDIAN_H = 2.0
LAG_SIGMA = 0.80  # log-normal: P(lag > 6 h) = 8.5%
DRIFT_DAY = 3.0
DAYS = 9.0
WINDOW_H = 168  # the decision-time statistic looks back at most 7 days (the scorer's horizon)


def delays(seed: int, rate: float, p0: float, arl0: float) -> tuple[float, float]:
    """(arrival order, decision order): drifted verdicts received at the signal (inf: none)."""
    d = choose_h(p0, 2 * p0, arl0)
    up, down, limit = d.m - d.g, d.g, d.limit
    rng = np.random.default_rng(seed)
    n = int(rng.poisson(rate * DAYS))
    t = np.sort(rng.uniform(0.0, DAYS * DAY, n))
    drift = DRIFT_DAY * DAY
    err = rng.random(n) < np.where(t >= drift, 2 * p0, p0)
    arrival = t + HOUR * LAG_MEDIAN_H * np.exp(LAG_SIGMA * rng.standard_normal(n))
    score = np.where(err, up, -down)
    hour = (t // HOUR).astype(np.int64)
    order = np.argsort(arrival, kind="stable")

    arrival_delay = math.inf
    s = drifted = 0
    for i in order:
        drifted += bool(t[i] >= drift)
        s = max(0, s + int(score[i]))
        if s >= limit:
            arrival_delay = drifted
            break

    decision_delay = math.inf
    sums = np.zeros(int(DAYS * 24) + 24, dtype=np.int64)
    drifted = 0
    for i in order:
        drifted += bool(t[i] >= drift)
        sums[hour[i]] += score[i]
        now = int(arrival[i] // HOUR) + 1
        suffix = np.cumsum(sums[max(0, now - WINDOW_H) : now][::-1])
        if suffix.max() >= limit:
            decision_delay = drifted
            break
    return arrival_delay, decision_delay


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=1000.0, help="random verdicts a day")
    p.add_argument("--arl0", type=float, default=833_000.0, help="in-control ARL, verdicts")
    p.add_argument("--p0", type=float, default=0.05)
    p.add_argument("--trials", type=int, default=200)
    args = p.parse_args(argv)
    if not (50 <= args.rate <= 20_000 and 100 <= args.arl0 <= 1e8 and 0.001 <= args.p0 <= 0.25):
        p.error("--rate 50-20,000, --arl0 100-1e8, --p0 0.001-0.25")
    if not 1 <= args.trials <= 10_000:
        p.error("--trials: 1 to 10,000")
    runs = [delays(1000 + k, args.rate, args.p0, args.arl0) for k in range(args.trials)]
    print(
        f"{args.trials} queues, {args.rate:,.0f} random verdicts a day, p0 {args.p0:.1%} -> "
        f"{2 * args.p0:.1%} at day {DRIFT_DAY:g}, ARL0 {args.arl0:,.0f} verdicts; QA lag "
        f"log-normal, median {LAG_MEDIAN_H:g} h"
    )
    print("| verdicts taken | median delay | mean delay (caught) | caught |")
    print("|---|---|---|---|")
    for name, col in (("as they arrive (the scorer)", 0), ("by decision time", 1)):
        got = [r[col] for r in runs]
        caught = [x for x in got if x < math.inf]
        mean = statistics.fmean(caught) if caught else math.nan
        print(
            f"| {name} | {statistics.median(got):,.0f} | {mean:,.0f} | {len(caught)}/{len(got)} |"
        )
    print(f"command: python {' '.join(sys.argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
