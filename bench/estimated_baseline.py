"""What an estimated baseline costs the false-alarm budget, and what the guard buys back.

    .venv/bin/python bench/estimated_baseline.py [--p 0.05] [--queues 500] [--budget 1]

A CUSUM designed on a baseline estimated from a Phase I of n random verdicts runs against
p0 = errors / n, not the true rate; an underestimate makes it alarm far more often than its
ARL0 says. For each case (the queue's upper chart, and a site's chart with its estimate
shrunk towards the queue's) this averages, exactly over the Phase I's sampling (errors ~
Binomial(n, p)), the false alarms a day the chart raises at the true rate (exact ARLs on
the lattice) and prints them as a multiple of the chart's share of the budget: unguarded
(ARL0 met at the estimate) and guarded (ARL0 met at ``services.scorer.cusum.guard``, the
GUARD_QUANTILE bound of the estimate), and how often no chart can be run (the bound past the
chart's reference value). Design defaults as the scorer's (doubling; site charts: 4 sites,
15% of the queue's share). No broker, a few seconds a case.
"""

from __future__ import annotations

import argparse
import math
import time

from scipy.stats import binom

from services.scorer import cusum as live
from shared.stats.cusum import bernoulli_cusum_arl

SITES = 4
CASES = (  # (site chart?, Phase I verdicts of the chart, its random verdicts a day)
    (False, 500, 500), (False, 1000, 1000), (False, 3000, 3000), (False, 10_000, 3000),
    (True, 300, 300), (True, 800, 800), (True, 2000, 1000), (True, 5000, 2000),
)  # fmt: skip


def spend(
    p: float, n: int, rate: float, site: bool, guarded: bool, queues: int, budget: float
) -> tuple[float, float, float]:
    """(false alarms a day / the chart's share, probability of no chart, of a chart tuned
    to a wider shift than a doubling)."""
    if site:
        arl0 = live.design_arl0(live.site_arl0_for(rate, budget, queues, SITES))
        share = live.detector_share(budget, queues, "cusum_site", sites=True) / SITES
    else:
        arl0 = live.design_arl0(live.arl0_for(rate, budget, queues, "upper", True))
        share = live.detector_share(budget, queues, "cusum_upper", sites=True)
    spent = none = wider = mass = 0.0
    sd = math.sqrt(n * p * (1 - p))
    for e in range(max(0, math.floor(n * p - 5 * sd)), math.ceil(n * p + 5 * sd) + 1):
        w = float(binom.pmf(e, n, p))
        mass += w
        if site:
            p0 = live.site_p0(n, e, p)
            at = live.guard("upper", e, n, p, live.SITE_PRIOR_N)
        else:
            p0, at = max(e, 0.5) / n, live.guard("upper", e, n)
        d = live.design("upper", p0, 2.0, arl0, at if guarded else None)
        if d is None:
            none += w
            continue
        wider += w * (d.p1 > 2.0 * d.p0 * 1.001)
        spent += w * rate / bernoulli_cusum_arl(d, p)
    return spent / mass / share, none / mass, wider / mass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p", type=float, default=0.05, help="the true error rate")
    ap.add_argument("--queues", type=int, default=500)
    ap.add_argument("--budget", type=float, default=1.0)
    args = ap.parse_args()
    print(f"true p = {args.p:.1%}, budget {args.budget:g} a day over {args.queues} queues, "
          f"guard quantile {live.GUARD_QUANTILE}")  # fmt: skip
    print("| chart | Phase I verdicts | verdicts a day | unguarded: x share | guarded: x share "
          "| guarded: tuned wider | guarded: no chart |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for site, n, rate in CASES:
        t = time.perf_counter()
        plain, _, _ = spend(args.p, n, rate, site, False, args.queues, args.budget)
        guarded, none, wider = spend(args.p, n, rate, site, True, args.queues, args.budget)
        print(f"| {'site' if site else 'queue'} | {n:,} | {rate:,} | {plain:.2f} | "
              f"{guarded:.2f} | {wider:.1%} | {none:.1%} |",
              f"({time.perf_counter() - t:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
