"""The live per-verdict Bernoulli CUSUMs and the wall's false-alarm budget. Pure.

Each queue with a baseline p0 runs two one-sided Bernoulli CUSUMs over its random-sample
verdicts, in the scorer's counting order:

- **upper**: the library's ``BernoulliCusum`` for p0 -> p1 = ``shift_up`` x p0 (errors up);
- **per site** (``site_bases``): a queue with an estimated baseline also runs an upper chart
  per site with enough verdicts in its Phase I, against the site's own baseline
  (``site_p0``), over the site's verdicts: a drift at one site is diluted in the queue's rate.
- **lower**: errors down to p1 = ``shift_down`` x p0 (often a broken QA feed). The library's
  chart detects increases only; a drop of the error rate is a rise of the *correct* rate, so
  the lower CUSUM is the library's chart for 1 - p0 -> 1 - p1 fed with "the verdict was
  correct". That is the log-likelihood-ratio CUSUM for p0 -> p1 < p0, on the same exact
  integer lattice, with the same exact ARL.

**The budget.** ``false_alarms_per_day`` is shared equally by ``expected_queues`` queues and,
within a queue, by its alerting detectors in the proportions ``SHARES``: CUSUM up 60%, CUSUM
down 20%, hourly p-chart 10%, the below-target rule 10% (``SHARES_WITH_SITES`` with site
charts: up 45%, the sites 15% split equally between them, ``site_arl0_for``). The per-verdict CUSUM up is the fastest detector of a rise at
any false-alarm rate, so it gets most of the budget; the hourly EWMA, whose normal-theory
limits on small binomial subgroups alarm several times more often than designed, stays on
the chart but raises no breach by default. Measured on a simulated wall by
``bench/fleet.py``; the reasoning is in docs/statistics.md. A detector's share is
``budget w / N`` false alarms a day; a CUSUM seeing ``r`` random verdicts a day meets it
with an in-control ARL of ``r N / (budget w)`` verdicts, the p-chart with a one-sided tail
of ``budget w / (N s)`` per subgroup (``s`` subgroups a day), and the below-target rule,
which looks at the 24 h accuracy once a subgroup closes, with an exact (Clopper-Pearson)
upper bound whose one-sided tail is ``budget w / (N s)`` per look (``per_look_tail``: Bonferroni over the
day's looks, at most one breach a day, so a queue exactly at its target breaches on at most
``budget w / N`` days a day; a queue above it on fewer). So a busy queue and a quiet
one raise the same expected number of false alarms a day, and the shares add up to the
budget. ``choose_h`` turns a CUSUM's ARL0 into the smallest decision interval that meets it.

Designs cost exact ARLs of a Markov chain (one C pass gives a rate's ARL at every limit,
``shared/stats/_lattice.c``; a design on an estimated baseline, averaged over its belief,
asks some tens of rates at a few limits each: the 240 designs of a 2M-event
``bench/pipeline.py`` run take a median of 8 ms, at most 23 ms, where a banded LU per rate
and limit took 38 ms, at most 0.1 s: ``bench/designs.py``), so they are cached by (p0, p1,
ARL0 rounded *up* to 1/20 of a decade: at most 12% more ARL0 than asked, i.e. a little under
budget) and recomputed only when the queue's measured verdict rate is updated
(``RATE_FIRST_SPAN_S`` after its first verdict, then once a day of event time). The design
in force lives in the queue's record, so a replay uses it exactly.
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
import threading
from typing import Any, Literal

from shared.stats.cusum import (
    BernoulliCusum,
    BernoulliCusumDesign,
    bernoulli_cusum_arl,
    choose_h,
    lattice_arl,
    llr_gamma,
    max_lattice_limit,
)
from shared.stats.errors import StatsError

log = logging.getLogger(__name__)

Side = Literal["upper", "lower"]
SIDES: tuple[Side, Side] = ("upper", "lower")
Detector = Literal["cusum_upper", "cusum_site", "cusum_lower", "p_chart", "below_target"]
Belief = tuple[float, float]  # Beta(a, b): what a Phase I says of the true error rate
# a queue's share of the budget, split by detector (adds up to 1)
# (the EWMA raises no breach by default and has no share: see ScorerSettings.ewma_alerts)
SHARES: dict[Detector, float] = {
    "cusum_upper": 0.6, "cusum_lower": 0.2, "p_chart": 0.1, "below_target": 0.1,
}  # fmt: skip
# ... and for a queue that runs per-site charts (``site_bases``): the sites' charts share 15%,
# taken from the queue's upper CUSUM
SHARES_WITH_SITES: dict[Detector, float] = {
    "cusum_upper": 0.45, "cusum_site": 0.15, "cusum_lower": 0.2, "p_chart": 0.1,
    "below_target": 0.1,
}  # fmt: skip
SITE_MIN_N = 300  # random verdicts of a site in Phase I for it to get its own chart
SITE_PRIOR_N = 100  # a site's baseline is shrunk towards the queue's by this many verdicts
# an estimated baseline's belief is cut at these probabilities on the alarm side (from the
# median to 1 - 1e-12, four cuts a decade in the tail) for its expected false-alarm rate
BELIEF_EDGES: tuple[float, ...] = (
    0.5, 0.75, 0.9, *(1.0 - 10.0 ** (-k / 4) for k in range(5, 49)),
)  # fmt: skip
WIDER = (1.0, 1.25, 1.5, 2.0, 3.0)  # ... its chart may be tuned to a shift this much wider
SEARCH_H_MAX = 8.0  # ... and its h is searched up to this many times the h at p0 alone
ALPHA_MIN = 1e-9  # the p-chart's tail per subgroup: at most 6 sigma ...
ALPHA_MAX = 0.0228  # ... and at least 2 sigma
ARL0_MIN = 100.0  # verdicts: below, a chart would alarm on a handful of errors
ARL0_MAX = 1e8  # verdicts: beyond, the design's cost grows and no wall needs more
MAX_LATTICE = 400  # m beyond this (p0 under ~0.5%): the exact design costs too much
RATE_FIRST_SPAN_S = 3 * 3600  # event time measured before the first rate (and design)
RATE_SPAN_S = 86400  # then the rate is re-measured once a day of event time
ARL0_STEPS_PER_DECADE = 20


def detector_share(
    budget_per_day: float, queues: int, detector: Detector, sites: bool = False
) -> float:
    """Expected false alarms a day allowed to one detector of one queue (``sites``: of a
    queue that runs per-site charts; ``cusum_site`` is then all its sites' charts)."""
    if budget_per_day <= 0 or queues < 1:
        raise ValueError("budget must be > 0 and queues >= 1")
    return budget_per_day * (SHARES_WITH_SITES if sites else SHARES).get(detector, 0.0) / queues


def arl0_for(
    rate_per_day: float, budget_per_day: float, queues: int, side: Side = "upper",
    sites: bool = False,
) -> float:  # fmt: skip
    """The in-control ARL, in verdicts, that spends the ``side`` CUSUM's share of the budget
    at ``rate_per_day`` verdicts a day: r N / (budget w) (unclamped)."""
    if rate_per_day < 0:
        raise ValueError("rate must be >= 0")
    detector: Detector = "cusum_upper" if side == "upper" else "cusum_lower"
    return rate_per_day / detector_share(budget_per_day, queues, detector, sites)


def site_bases(counts: dict[str, tuple[int, int]], exclude: str) -> dict[str, tuple[int, int]]:
    """The sites of a Phase I's counts ``{site: (n, errors)}`` that get their own chart: at
    least ``SITE_MIN_N`` random verdicts, not ``exclude`` (the sites summed as "other"),
    and at least two of them (one site's chart would repeat the queue's)."""
    chosen = {s: c for s, c in counts.items() if s != exclude and c[0] >= SITE_MIN_N}
    return chosen if len(chosen) >= 2 else {}


def site_p0(n: int, errors: int, queue_p0: float) -> float:
    """A site's baseline error rate from its Phase I counts, shrunk towards the queue's by
    ``SITE_PRIOR_N`` verdicts (a small site's estimate is noisy, and a chart run against an
    underestimate alarms more often than designed)."""
    return (errors + SITE_PRIOR_N * queue_p0) / (n + SITE_PRIOR_N)


def site_arl0_for(
    site_rate_per_day: float, budget_per_day: float, queues: int, sites: int
) -> float:
    """The in-control ARL, in the site's verdicts, of one of a queue's ``sites`` site charts:
    the sites' share split equally between them, r_s N S / (budget w_site)."""
    if site_rate_per_day < 0 or sites < 1:
        raise ValueError("rate must be >= 0 and sites >= 1")
    share = detector_share(budget_per_day, queues, "cusum_site", sites=True) / sites
    return site_rate_per_day / share


def per_look_tail(
    detector: Literal["p_chart", "below_target"], budget_per_day: float, queues: int,
    looks_per_day: float,
) -> float:  # fmt: skip
    """The one-sided tail per look that spends a detector's share of the budget over its
    looks a day (Bonferroni), within [ALPHA_MIN, ALPHA_MAX] (6 and 2 sigma: a generous budget
    for few queues does not make every look alarm, nor a tiny one a test that cannot).

    ``p_chart``: per closed subgroup. ``below_target``: per look of the rule, which asks
    whether the exact upper bound of the 24 h accuracy is under the target (a queue exactly
    at it is, with this probability at most); its looks are of overlapping windows, so it
    spends less than its share. Either is the same for a queue with site charts or without."""
    alpha = detector_share(budget_per_day, queues, detector) / looks_per_day
    return min(max(alpha, ALPHA_MIN), ALPHA_MAX)


def design_arl0(arl0: float) -> float:
    """The ARL0 a design is made for: clamped to [ARL0_MIN, ARL0_MAX] and rounded up to a
    step of 1/20 decade, so nearby rates share one cached design."""
    a = min(max(arl0, ARL0_MIN), ARL0_MAX)
    step = math.ceil(math.log10(a) * ARL0_STEPS_PER_DECADE - 1e-9) / ARL0_STEPS_PER_DECADE
    return float(round(10**step, 6))


def _p1(side: Side, p0: float, ratio: float) -> float:
    if side == "upper":
        return min(p0 * ratio, (1.0 + p0) / 2)  # a shift past 100% means "most of the gap"
    return p0 * ratio


def _lower_resolution(p0: float, p1: float) -> int | None:
    """g of the correct-rate chart 1-p0 -> 1-p1 whose lattice represents its reference value
    within 1%, as the library's default does for the upper chart (whose search stops at
    g = 100, too coarse for a reference value near 1)."""
    gamma = 1.0 - llr_gamma(1.0 - p0, 1.0 - p1)[1]  # reference value on the error scale
    for g in range(1, 101):
        m = max(g + 1, round(g / gamma))
        if g / m < p0 and abs(g / m - gamma) <= 0.01 * gamma:
            return m - g
    return None


def belief(errors: int, n: int, prior_p: float | None = None, prior_n: float = 0.0) -> Belief:
    """What a Phase I of ``errors`` in ``n`` random verdicts says of the true error rate: the
    Beta posterior (a, b), from Jeffreys' prior, or from ``prior_n`` verdicts at ``prior_p``
    for a site shrunk towards its queue (``site_prior_n``). A chart on an *estimated*
    baseline is designed for its expected false-alarm rate over it (:func:`design`)."""
    if prior_p is None:
        return (errors + 0.5, n - errors + 0.5)
    return (errors + prior_n * prior_p, n - errors + prior_n * (1.0 - prior_p))


def site_prior_n(queue_n: int) -> float:
    """The weight, in verdicts, of a site's prior at its queue's *estimated* rate: the sites'
    spread about the queue's rate (``SITE_PRIOR_N`` verdicts, a Beta of variance
    p(1-p)/(SITE_PRIOR_N + 1)) plus the queue estimate's own sampling variance, p(1-p)/N
    over the queue's ``queue_n`` Phase I verdicts, matched by moments. A prior that took the
    queue's estimate for its true rate would be surer of the site than the data allow."""
    if queue_n <= 0:
        return float(SITE_PRIOR_N)
    return 1.0 / (1.0 / (SITE_PRIOR_N + 1) + 1.0 / queue_n) - 1.0


def import_in_background() -> threading.Thread:
    """Import ``scipy.stats`` (the first design's ~1.3 s of CPU: ``_nodes``, and
    ``causes``' hypergeom) on a thread of its own, while the worker starts: it is imported
    lazily so that a restarted worker serves sooner, but the first design then paid it on
    the agent's thread, in the middle of the input. Started before the worker joins its
    group, the import runs while the worker waits for its partitions; a design that needs
    it sooner waits for it (the import lock), as it would have imported it itself."""

    def run() -> None:
        try:
            importlib.import_module("scipy.stats")
        except Exception:  # (the design's own import raises it again, where it is handled)
            log.debug("scipy.stats could not be imported ahead", exc_info=True)

    thread = threading.Thread(target=run, name="qw-import-scipy", daemon=True)
    thread.start()
    return thread


@functools.lru_cache(maxsize=1024)
def _nodes(a: float, b: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The belief Beta(a, b) cut at ``BELIEF_EDGES`` (probabilities below, on the alarm
    side): (the rate at each edge, the mass between it and the edge below it), top first."""
    from scipy.stats import beta as beta_dist  # (lazy: scipy.stats costs ~1 s of CPU to import)

    ps = beta_dist.ppf(BELIEF_EDGES, a, b)
    lower = (0.0, *BELIEF_EDGES[:-1])
    masses = [hi - lo for lo, hi in zip(lower, BELIEF_EDGES, strict=True)]
    return tuple(float(p) for p in ps[::-1]), tuple(masses[::-1])


def expected_alarm_rate(up: int, g: int, limit: int, a: float, b: float, target: float) -> float:
    """An upper bound, within 1%, of the false alarms a verdict (1 / ARL0, exact on the
    lattice at each rate) of the chart (up, g, limit) averaged over the belief Beta(a, b) of
    its in-control rate (on the chart's own scale): each slice of the belief between two of
    ``BELIEF_EDGES`` counted at its upper end (the alarm rate grows with the in-control
    rate); a slice too light to add 0.1% of ``target`` at the rate of the slice above it is
    counted at that rate, without a solve (the top one at the most any rate can give: a
    signal needs at least limit / up verdicts). Summed from the top down; stops once the
    rest of the belief cannot add 1% to the sum."""
    ps, masses = _nodes(a, b)
    bound = up / limit  # the alarm rate at any higher rate: at first 1 / the shortest run
    total = (1.0 - BELIEF_EDGES[-1]) * bound
    below = BELIEF_EDGES[-1]
    for p, mass in zip(ps, masses, strict=True):
        if mass * bound * 1e3 > target:  # (a slice that can add 0.1% of it is solved)
            bound = 1.0 / lattice_arl(up, g, limit, p) if p > 0 else 0.0
            if bound * below <= 1e-2 * total:
                break  # the rest of the belief, all at this rate at most, adds < 1%
        total += mass * bound
        below -= mass
    return total


def _averaged(
    p0: float, p1: float, arl0: float, resolution: int | None, known: Belief,
    goal: float, beat: float,
) -> BernoulliCusumDesign | None:  # fmt: skip
    """The chart p0 -> p1 (on one scale: the error rate's, or the lower side's correct rate)
    with the smallest decision interval (within 1%) whose false alarms a verdict, averaged
    over the belief ``known`` of its in-control rate (``expected_alarm_rate``), are at most
    1 / arl0; None if it cannot detect ``goal`` in fewer than ``beat`` verdicts on average
    (a chart already found does better), or needs more than ``SEARCH_H_MAX`` times the h it
    needs at p0."""
    plain = choose_h(p0, p1, arl0, resolution=resolution)
    m, g, up = plain.m, plain.g, plain.up
    target = 1.0 / arl0
    top = min(max_lattice_limit(up, g), math.ceil(SEARCH_H_MAX * plain.limit))

    def excess(limit: int) -> float:  # log of the averaged alarm rate over the target's
        return math.log(expected_alarm_rate(up, g, limit, *known, target) / target)

    # bracket the answer by doubling from the h at p0, then regula falsi on the log rate,
    # nearly linear in the limit (Illinois: the end that stays has its value halved)
    lo, hi = plain.limit - 1, plain.limit
    f_hi = excess(hi)
    f_lo = math.inf
    while f_hi > 0:  # the answer is past hi, and slower than hi at the goal
        if hi >= top or lattice_arl(up, g, hi, goal) >= beat:
            return None
        lo, f_lo = hi, f_hi
        hi = min(2 * hi, top)
        f_hi = excess(hi)
    if lo < plain.limit:
        f_lo = math.inf
    side = 0
    while hi - lo > max(1, hi // 100):
        if math.isinf(f_lo):
            mid = (lo + hi) // 2
        else:
            mid = round(hi - f_hi * (hi - lo) / (f_hi - f_lo))
            mid = min(max(mid, lo + 1), hi - 1)
        f_mid = excess(mid)
        if f_mid <= 0:
            hi, f_hi = mid, f_mid
            if side == -1:
                f_lo /= 2
            side = -1
        else:
            lo, f_lo = mid, f_mid
            if side == 1:
                f_hi /= 2
            side = 1
    return BernoulliCusumDesign(p0, p1, m, g, hi)


@functools.lru_cache(maxsize=2048)
def design(
    side: Side, p0: float, ratio: float, arl0: float, known: Belief | None = None
) -> BernoulliCusumDesign | None:
    """The side's chart for the queue's baseline ``p0`` and ``arl0`` (from
    :func:`design_arl0`), or None where no chart is run (the lattice would be too fine: p0
    too small for the shift to be represented at a bounded cost).

    ``known`` None: p0 is a standard (a configured baseline), and the chart meets its ARL0
    at p0. Else p0 was *estimated*, and ``known`` is the Phase I's :func:`belief` of the
    true rate: a chart run against an underestimate alarms far more often than designed,
    so its false alarms a verdict *averaged over that belief* are held to 1 / arl0
    (``expected_alarm_rate``), and the budget, an expected number of false alarms, holds
    in expectation over the Phase I. Of the tunings to the configured shift and the wider
    ones of ``WIDER`` (a wider one needs a smaller h where the belief is broad), the one
    that detects the configured shift (``ratio`` x p0) in the fewest verdicts on average
    is chosen: its p1 says which. docs/statistics.md, "Estimated baselines"."""
    if known is None:
        return _design(side, p0, ratio, arl0)
    best: BernoulliCusumDesign | None = None
    best_delay = math.inf
    # widest first: its h is the smallest, the quickest to find; a narrower tuning's search
    # stops as soon as it cannot detect the configured shift sooner than the best so far
    for wider in reversed(WIDER):
        r = ratio * wider if side == "upper" else ratio / wider
        d = _design(side, p0, r, arl0, known, ratio, best_delay)
        if d is None:
            continue  # (or no faster than the best so far)
        delay = bernoulli_cusum_arl(d, _goal(side, p0, ratio))
        if delay < best_delay:
            best, best_delay = d, delay
    return best


def _goal(side: Side, p0: float, ratio: float) -> float:
    """The configured shift's rate on the side's chart scale."""
    p1 = _p1(side, p0, ratio)
    return p1 if side == "upper" else 1.0 - p1


def _design(
    side: Side, p0: float, ratio: float, arl0: float, known: Belief | None = None,
    goal_ratio: float = 0.0, beat: float = math.inf,
) -> BernoulliCusumDesign | None:  # fmt: skip
    """The chart p0 -> p1 = ``ratio`` x p0: met at p0, or (``known``) averaged over the
    belief (error scale), for the configured shift ``goal_ratio`` unless it cannot detect it
    in fewer than ``beat`` verdicts (``_averaged``)."""
    p1 = _p1(side, p0, ratio)
    try:
        if side == "upper":
            m, _ = BernoulliCusumDesign.lattice(p0, p1)
            if m > MAX_LATTICE:
                return None
            if known is None:
                return choose_h(p0, p1, arl0)
            goal = _goal(side, p0, goal_ratio)
            return _averaged(p0, p1, arl0, None, known, goal, beat)
        resolution = _lower_resolution(p0, p1)
        if resolution is None or resolution + 1 > MAX_LATTICE:
            return None
        if known is None:
            return choose_h(1.0 - p0, 1.0 - p1, arl0, resolution=resolution)
        goal = _goal(side, p0, goal_ratio)
        flipped = (known[1], known[0])  # the correct rate's belief
        return _averaged(1.0 - p0, 1.0 - p1, arl0, resolution, flipped, goal, beat)
    except StatsError:
        return None


@functools.lru_cache(maxsize=2048)
def recovery_design(side: Side, chart: BernoulliCusumDesign) -> BernoulliCusumDesign:
    """The recovery test of a side's chart (``LiveCusum``): the chart for p0 against half
    the shift, p_r = p0 + (p1 - p0) / 2 (on the side's own scale: the lower side's is the
    correct rate), with the chart's decision interval h in B units. Where that lattice
    would be too fine (``MAX_LATTICE``), the chart's own design: its mirror."""
    p_r = chart.p0 + (chart.p1 - chart.p0) / 2
    try:
        if side == "upper":
            m, _ = BernoulliCusumDesign.lattice(chart.p0, p_r)
            if m <= MAX_LATTICE:
                return BernoulliCusumDesign.create(chart.p0, p_r, chart.h)
        else:
            resolution = _lower_resolution(1.0 - chart.p0, 1.0 - p_r)
            if resolution is not None and resolution + 1 <= MAX_LATTICE:
                return BernoulliCusumDesign.create(chart.p0, p_r, chart.h, resolution=resolution)
    except StatsError:
        pass
    return chart


def observed_error_rate(side: Side, chart_design: BernoulliCusumDesign) -> tuple[float, float]:
    """(p0, p1) on the error scale for a side's design."""
    if side == "upper":
        return chart_design.p0, chart_design.p1
    return 1.0 - chart_design.p0, 1.0 - chart_design.p1


class LiveCusum:
    """One side of a queue's live CUSUM: the library's chart, the errors and verdicts since
    its last reset (for the breach's observed rate), its signal count and the ARL0 it was
    designed for, and its recovery test. Serialises to a plain dict inside the queue record.

    **Recovery.** A signal says "the rate is p1, not p0"; the chart then restarts, and a
    drift that persists signals again every few hundred verdicts. Whether the drift is
    *over* is the mirror question, so after a signal the side runs a recovery CUSUM: the
    log-likelihood ratio of p0 against half the shift (``recovery_design``), the steps of
    that chart reversed, ``R = max(0, R - up)`` on an error and ``R + g`` on a correct
    verdict, recovered when ``R >= limit``: the same evidence, h, that the signal needed,
    that the rate is nearer p0 than half the shift. Under a drift of half the shift or more
    R falls, so a drift that persists holds one incident open; back at p0 it rises and
    passes in about limit / (g - p0 m) verdicts. Each new signal restarts R at 0.
    ``recovery`` is R in the recovery design's lattice units, or None when the side is not
    recovering."""

    __slots__ = ("arl0", "chart", "errors", "recovery", "run_errors", "run_n", "side", "signals")

    def __init__(
        self,
        side: Side,
        chart: BernoulliCusum,
        arl0: float,
        errors: int = 0,
        signals: int = 0,
        recovery: int | None = None,
        run_n: int = 0,
        run_errors: int = 0,
    ) -> None:
        self.side = side
        self.chart = chart
        self.arl0 = arl0
        self.errors = errors
        self.signals = signals
        self.recovery = recovery
        # the verdicts (and errors) since the statistic last stood at 0: the CUSUM's own
        # estimate of when the change began, and so the rate a signal reports
        self.run_n = run_n
        self.run_errors = run_errors

    @property
    def recovery_b(self) -> float | None:
        """R in B units (its h is the chart's), or None when not recovering."""
        if self.recovery is None:
            return None
        return self.recovery / recovery_design(self.side, self.chart.design).m

    @property
    def recovering(self) -> bool:
        """Signalled, and not yet shown back at p0 (``recovery``)."""
        return self.recovery is not None

    def update(self, incorrect: bool) -> bool:
        """Count one verdict; True on a signal, after which the chart restarts at 0 and the
        recovery test starts (again) at 0."""
        self.errors += incorrect
        x = incorrect if self.side == "upper" else not incorrect
        chart = self.chart
        signal = chart.add(x)
        if chart.s == 0:
            self.run_n = self.run_errors = 0
        else:
            self.run_n += 1
            self.run_errors += incorrect
        if self.recovery is not None:
            d = recovery_design(self.side, self.chart.design)
            r = max(0, self.recovery - d.up) if x else self.recovery + d.g
            self.recovery = None if r >= d.limit else r
        if signal:
            self.signals += 1
            self.recovery = 0
        return signal

    def reset(self) -> None:
        self.chart.reset()
        self.errors = 0
        self.run_n = self.run_errors = 0

    def redesign(self, chart_design: BernoulliCusumDesign, arl0: float) -> None:
        """A new decision interval for the same shift: the statistic carries over (same
        lattice); a different lattice (it cannot happen for a fixed p0) restarts it."""
        old = self.chart.design
        self.arl0 = arl0
        if (old.m, old.g, old.p0, old.p1) == (
            chart_design.m,
            chart_design.g,
            chart_design.p0,
            chart_design.p1,
        ):
            self.chart = BernoulliCusum(chart_design, s=self.chart.s, t=self.chart.t)
        else:
            self.chart = BernoulliCusum(chart_design)
            self.errors = 0
            self.run_n = self.run_errors = 0
            if self.recovery is not None:
                self.recovery = 0  # its lattice may have changed: the evidence starts again

    def to_dict(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "chart": self.chart.to_dict(),
            "arl0": self.arl0,
            "errors": self.errors,
            "signals": self.signals,
            "recovery": self.recovery,
            "run_n": self.run_n,
            "run_errors": self.run_errors,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LiveCusum):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LiveCusum:
        side: Side = "upper" if d["side"] == "upper" else "lower"
        return cls(
            side,
            BernoulliCusum.from_dict(d["chart"]),
            float(d["arl0"]),
            int(d["errors"]),
            int(d["signals"]),
            # absent in a record written before the recovery test: not recovering
            None if d.get("recovery") is None else int(d["recovery"]),
            # absent in a record written before: no run known (the next 0 starts one)
            int(d.get("run_n", 0)),
            int(d.get("run_errors", 0)),
        )
