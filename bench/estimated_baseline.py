"""What an estimated baseline costs the false-alarm budget, and what its design buys back.

    .venv/bin/python bench/estimated_baseline.py [--p 0.05] [--queues 500] [--budget 1]

A CUSUM designed on a baseline estimated from a Phase I of n random verdicts runs against
p0 = errors / n, not the true rate; an underestimate makes it alarm far more often than its
ARL0 says. For each case (the queue's upper chart, and a site's chart with its estimate
shrunk towards the queue's) this averages, exactly over the Phase I's sampling (errors ~
Binomial(n, p)), the false alarms a day the chart raises at the true rate (exact ARLs on
the lattice) and prints them as a multiple of the chart's share of the budget: designed at
the estimate (its ARL0 met at p0), and as the scorer designs it (``services.scorer.cusum
.design`` with the Phase I's ``belief``: its false alarms averaged over what the Phase I
says of the true rate held to its share), how often that chart is tuned to a wider shift
than a doubling or not run at all, and what it costs in detection: the median and p90, over
the Phase I's sampling, of the chart's mean verdicts to signal a doubling of the true rate
(its exact zero-state ARL at 2p). Design defaults as the scorer's (doubling; site charts:
4 sites of equal size, 15% of the queue's share; a site's prior is centred on the queue's
rate, here the true one, weighted by ``site_prior_n`` of the 4 sites' Phase I). No broker;
up to a minute a case (each Phase I outcome is a design search).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy.stats import binom

from services.scorer import cusum as live
from shared.stats.cusum import bernoulli_cusum_arl

SITES = 4
CASES = (  # (site chart?, Phase I verdicts of the chart, its random verdicts a day)
    (False, 500, 500), (False, 1000, 1000), (False, 3000, 3000), (False, 10_000, 3000),
    (True, 300, 300), (True, 800, 800), (True, 2000, 1000), (True, 5000, 2000),
)  # fmt: skip


def spend(
    p: float, n: int, rate: float, site: bool, estimated: bool, queues: int, budget: float
) -> tuple[float, float, float, float, float]:
    """(false alarms a day / the chart's share, probability of no chart, of a chart tuned
    to a wider shift than a doubling, median and p90 of its verdicts to detect 2p)."""
    if site:
        arl0 = live.design_arl0(live.site_arl0_for(rate, budget, queues, SITES))
        share = live.detector_share(budget, queues, "cusum_site", sites=True) / SITES
    else:
        arl0 = live.design_arl0(live.arl0_for(rate, budget, queues, "upper", True))
        share = live.detector_share(budget, queues, "cusum_upper", sites=True)
    spent = none = wider = mass = 0.0
    delays: list[tuple[float, float]] = []
    sd = math.sqrt(n * p * (1 - p))
    for e in range(max(0, math.floor(n * p - 5 * sd)), math.ceil(n * p + 5 * sd) + 1):
        w = float(binom.pmf(e, n, p))
        mass += w
        if site:
            p0 = live.site_p0(n, e, p)
            known = live.belief(e, n, p, live.site_prior_n(SITES * n))
        else:
            p0, known = max(e, 0.5) / n, live.belief(e, n)
        d = live.design("upper", p0, 2.0, arl0, known if estimated else None)
        if d is None:
            none += w
            delays.append((math.inf, w))
            continue
        wider += w * (d.p1 > 2.0 * d.p0 * 1.001)
        spent += w * rate / bernoulli_cusum_arl(d, p)
        delays.append((bernoulli_cusum_arl(d, 2 * p), w))
    delays.sort()
    cum = np.cumsum([w for _, w in delays]) / mass
    median = delays[int(np.searchsorted(cum, 0.5))][0]
    p90 = delays[min(int(np.searchsorted(cum, 0.9)), len(delays) - 1)][0]
    return spent / mass / share, none / mass, wider / mass, median, p90


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p", type=float, default=0.05, help="the true error rate")
    ap.add_argument("--queues", type=int, default=500)
    ap.add_argument("--budget", type=float, default=1.0)
    args = ap.parse_args()
    print(f"true p = {args.p:.1%}, budget {args.budget:g} a day over {args.queues} queues")
    print("| chart | Phase I verdicts | verdicts a day | at the estimate: x share "
          "| averaged over the belief: x share | tuned wider | no chart "
          "| verdicts to detect 2p: median | p90 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for site, n, rate in CASES:
        t = time.perf_counter()
        plain, *_ = spend(args.p, n, rate, site, False, args.queues, args.budget)
        held, none, wider, median, p90 = spend(
            args.p, n, rate, site, True, args.queues, args.budget
        )
        print(f"| {'site' if site else 'queue'} | {n:,} | {rate:,} | {plain:.2f} | "
              f"{held:.2f} | {wider:.1%} | {none:.1%} | {median:,.0f} | {p90:,.0f} |",
              f"({time.perf_counter() - t:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
