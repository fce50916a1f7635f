"""The per-site upper CUSUMs (services/scorer/cusum.py, core.py): which sites get a chart, its
baseline from the Phase I, its share of the false-alarm budget, and a drift on one site of a
queue alerting on that site's chart, named, before the queue's own chart."""

from __future__ import annotations

import itertools
import math
import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import beta, binom

from services.scorer import causes
from services.scorer import cusum as live
from services.scorer.core import Scorer
from services.scorer.state import QueueState
from shared import control
from shared.stats.cusum import (
    BernoulliCusum,
    BernoulliCusumDesign,
    bernoulli_cusum_arl,
    choose_h,
    lattice_arl,
    max_lattice_limit,
)
from shared.stats.errors import StatsError
from tests.factories import T0, decision, verdict
from tests.unit.test_scorer_core import feed
from tests.unit.test_scorer_core import settings as scorer_settings
from tests.unit.test_scorer_cusum import WALL, _run

H = timedelta(hours=1)
SITES = ("dublin", "manila", "austin", "lisbon")


def _hours(
    hours: range, per_hour: int, rate_of: Any, rng: random.Random, queue: str = "q"
) -> list[list[dict[str, Any]]]:
    """Per hour, ``per_hour`` decisions spread over the four sites, each reviewed (random
    sample) 30 minutes later; ``rate_of(hour, site)`` its error rate."""
    out = []
    for h in hours:
        items: list[dict[str, Any]] = []
        times = sorted(rng.uniform(0, 1799) for _ in range(per_hour))  # counted in time order
        for i, t in enumerate(times):
            site = SITES[i % len(SITES)]
            k = f"{queue}-{h}-{i}"
            at = T0 + h * H + timedelta(seconds=t)
            items.append(decision(k, queue, at, site_id=site))
            correct = rng.random() >= rate_of(h, site)
            items.append(verdict(k, queue, at + H / 2, correct=correct))
        out.append(items)
    return out


def _learned(seed: int = 1) -> tuple[Scorer, random.Random]:
    """A queue through a Phase I of 10 hours of 320 verdicts (80 a site) at 6%, then more
    hours: baseline frozen, the rate measured, the site charts designed."""
    rng = random.Random(seed)
    sc = Scorer(scorer_settings(phase1_subgroups=10), {})
    assert _run(sc, _hours(range(16), 320, lambda h, s: 0.06, rng)) == []
    return sc, rng


def test_site_choice_needs_enough_verdicts_and_two_sites() -> None:
    counts = {"a": (400, 20), "b": (299, 10), "(other)": (900, 50), "c": (300, 30)}
    assert live.site_bases(counts, "(other)") == {"a": (400, 20), "c": (300, 30)}
    assert live.site_bases({"a": (5000, 20), "b": (10, 1)}, "(other)") == {}
    # shrunk towards the queue's baseline by SITE_PRIOR_N verdicts
    assert live.site_p0(400, 40, 0.05) == pytest.approx((40 + 5) / 500)
    assert live.site_p0(0, 0, 0.05) == pytest.approx(0.05)


@given(
    rate=st.floats(1.0, 1e6),
    budget=st.floats(0.01, 1000.0),
    queues=st.integers(1, 100_000),
    sizes=st.lists(st.integers(live.SITE_MIN_N, 100_000), min_size=2, max_size=32),
)
def test_with_site_charts_the_queue_still_spends_its_share_of_the_budget(
    rate: float, budget: float, queues: int, sizes: list[int]
) -> None:
    """A queue running site charts: its upper and lower CUSUMs, its p-chart and every site's
    chart (at the site's share of the queue's verdicts) spend budget / N a day together, and
    the sites' charts a share equal between them."""
    total = sum(sizes)
    spent = sum(rate / live.arl0_for(rate, budget, queues, side, True) for side in live.SIDES)
    spent += live.detector_share(budget, queues, "p_chart", sites=True)
    spent += live.detector_share(budget, queues, "below_target", sites=True)
    per_site = []
    for n in sizes:
        r = rate * n / total
        per_site.append(r / live.site_arl0_for(r, budget, queues, len(sizes)))
    spent += sum(per_site)
    assert spent == pytest.approx(budget / queues, rel=1e-9)
    assert max(per_site) == pytest.approx(min(per_site), rel=1e-9)
    assert sum(live.SHARES_WITH_SITES.values()) == pytest.approx(1.0)


def test_an_estimated_baseline_gives_each_site_its_own_chart_from_its_phase1() -> None:
    sc, _ = _learned()
    q = sc.state("q")
    assert q.baseline_p is not None
    assert set(q.site_base) == set(SITES)
    # the Phase I's counts of each site: its 10 subgroups of 80 verdicts
    assert all(n == 800 for n, _ in q.site_base.values())
    assert sum(n for n, _ in q.site_base.values()) == q.baseline_n
    assert sum(e for _, e in q.site_base.values()) == q.baseline_e
    assert set(q.site_cusum) == set(SITES)
    rate = q.rate
    assert rate is not None
    for site, (n, e) in q.site_base.items():
        chart = q.site_cusum[site]
        assert chart.chart.design.p0 == pytest.approx(live.site_p0(n, e, q.baseline_p))
        want = live.site_arl0_for(rate * n / q.baseline_n, 1.0, 500, len(SITES))
        assert chart.arl0 == live.design_arl0(want)
        # held over the site's belief: its counts, and the queue's rate as its prior
        known = live.belief(e, n, q.baseline_p, live.site_prior_n(q.baseline_n))
        p0 = live.site_p0(n, e, q.baseline_p)
        assert chart.chart.design == live.design("upper", p0, 2.0, chart.arl0, known)
        assert chart.chart.design.p1 >= 2 * p0 * (1 - 1e-9)  # a doubling, or wider
    # the queue's upper CUSUM gave the sites their share
    up = q.cusum["upper"]
    assert up.arl0 == live.design_arl0(live.arl0_for(rate, 1.0, 500, "upper", True))
    snap = sc.snapshot(q, WALL)
    assert set(snap.site_cusums) == set(SITES)
    info = snap.site_cusums["dublin"]
    assert info.site == "dublin"
    assert info.rate_per_day == pytest.approx(rate * q.site_base["dublin"][0] / q.baseline_n)
    assert info.rate_per_day is not None
    assert info.arl0_days == pytest.approx(info.arl0_verdicts / info.rate_per_day)


def test_a_configured_baseline_runs_no_site_charts() -> None:
    rng = random.Random(4)
    sc = Scorer(scorer_settings(baseline_p={"q": 0.06}), {})
    _run(sc, _hours(range(8), 320, lambda h, s: 0.06, rng))
    q = sc.state("q")
    assert q.site_base == {}
    assert q.site_cusum == {}
    assert q.cusum["upper"].arl0 == live.design_arl0(live.arl0_for(q.rate or 0, 1.0, 500))


def test_the_site_chart_is_the_librarys_chart_on_the_sites_verdicts() -> None:
    """The scorer's site chart sees exactly the site's random verdicts in counting order:
    the library's chart fed with them stands where it stands."""
    sc, rng = _learned(2)
    q = sc.state("q")
    was = q.site_cusum["manila"].chart
    ref = BernoulliCusum(was.design, s=was.s, t=was.t)
    hours = _hours(range(16, 20), 320, lambda h, s: 0.06, rng)
    for items in hours:
        feed(sc, items, wall=WALL)
    xs = [
        v["outcome"] == "incorrect"
        for items in hours
        for d, v in zip(items[::2], items[1::2], strict=True)
        if d["site_id"] == "manila"
    ]
    for x in xs:
        ref.update(x)
    assert q.site_cusum["manila"].chart.s == ref.s
    assert q.site_cusum["manila"].chart.t == ref.t


def test_a_drift_at_one_site_signals_on_its_chart_and_names_it() -> None:
    """Manila's error rate goes from 6% to 30% (the queue's from 6% to 12%): its own chart
    signals, the breach names the site (label, chart and message), no other site's chart
    signals, and the first alert of any chart names manila."""
    sc, rng = _learned(3)
    drift = _run(sc, _hours(range(16, 44), 320, lambda h, s: 0.30 if s == "manila" else 0.06, rng))
    cusums = [b for b in drift if b.rule.startswith("cusum")]
    assert cusums, "a drift of one site must signal"
    assert cusums[0].site == "manila"
    on_site = [b for b in cusums if b.rule == "cusum_site_upper"]
    assert on_site, "the site's own chart must signal"
    first = on_site[0]
    assert first.site == "manila"
    assert "site manila" in first.message
    assert first.cusum is not None
    assert first.cusum.site == "manila"
    assert first.cusum.statistic >= first.cusum.h
    assert first.causes
    assert first.causes[0].value.startswith("manila")
    assert all(b.site == "manila" for b in on_site)
    # one incident's worth: the dedup keys of a site's signals name the site
    assert all(b.dedup_key.endswith(":manila") for b in on_site)
    # the site chart's recovery holds the queue's quiet streak at 0 while the drift lasts
    assert sc.state("q").quiet_streak == 0


def test_site_charts_round_trip_in_the_record_and_a_reset_clears_them() -> None:
    sc, _ = _learned(5)
    q = sc.state("q")
    d = q.to_dict()
    back = QueueState.from_dict(d)
    assert back.site_cusum == q.site_cusum
    assert back.site_base == q.site_base
    assert back.to_dict() == d
    del d["site_base"], d["site_cusum"]
    old = QueueState.from_dict(d)  # a record written before site charts
    assert old.site_cusum == {}
    assert old.site_base == {}
    # a baseline reset starts a new Phase I: the site charts go with the queue's
    record = control.baseline_reset(
        "q", request_id="r1", reason="policy spam.v4", actor="key 3f9c0a1b (ops lead)",
        requested_at=T0.timestamp(),
    )  # fmt: skip
    sc.process(record, WALL, (0, 10**9))  # after every batch fed
    q = sc.state("q")
    assert q.baseline_p is None
    assert q.site_base == {}
    assert q.site_cusum == {}
    assert sc.snapshot(q, WALL).site_cusums == {}


def test_a_site_stands_out_only_against_the_rest_of_the_queue() -> None:
    """The site a chart chose is named when its window's error rate is above the rest of
    the queue's (one-sided Fisher, 95%), not when the whole queue rose with it."""
    alone = {"site=manila": [400, 120, {}], "site=dublin": [1200, 72, {}]}
    named, words = causes.site_stands_out(alone, "manila")
    assert named
    assert words == "site manila stands out (30.0% errors, n=400, against 6.0% elsewhere)"
    everywhere = {"site=manila": [400, 48, {}], "site=dublin": [1200, 144, {}]}
    named, words = causes.site_stands_out(everywhere, "manila")
    assert not named
    assert "rise is the queue's too" in words
    assert not causes.site_stands_out({"site=manila": [400, 48, {}]}, "manila")[0]
    # the charts, not the operator, chose the site: corrected over the queue's site charts
    # (a whole-queue drift from 4% to 12% once named austin at Fisher p = 0.040)
    chance = {"site=austin": [279, 41, {}], "site=dublin": [836, 88, {}]}
    assert causes.site_stands_out(chance, "austin", charted=1)[0]
    named, words = causes.site_stands_out(chance, "austin", charted=4)
    assert not named
    assert "rise is the queue's too" in words


def test_choose_h_meets_its_arl0_at_the_in_control_rate_it_is_given() -> None:
    plain = choose_h(0.05, 0.10, 1e5)
    guarded = choose_h(0.05, 0.10, 1e5, in_control=0.06)
    assert (guarded.p0, guarded.p1, guarded.m, guarded.g) == (plain.p0, plain.p1, plain.m, plain.g)
    assert bernoulli_cusum_arl(guarded, 0.06) >= 1e5
    assert guarded.h > plain.h
    smaller = BernoulliCusumDesign(0.05, 0.10, guarded.m, guarded.g, guarded.limit - 1)
    assert bernoulli_cusum_arl(smaller, 0.06) < 1e5  # the smallest that does
    with pytest.raises(StatsError, match="reference value"):
        choose_h(0.05, 0.10, 1e5, in_control=0.08)


def test_the_belief_is_the_phase1s_beta_posterior() -> None:
    assert live.belief(50, 1000) == (50.5, 950.5)  # Jeffreys' prior
    # a site's: its counts with prior_n verdicts at the queue's rate
    assert live.belief(50, 1000, 0.04, 100) == pytest.approx((54, 1046))
    # the site's prior weighs less than SITE_PRIOR_N: the queue's rate is an estimate too
    # (variances add: 1 / (k' + 1) = 1 / (k + 1) + 1 / N)
    for queue_n in (600, 3200, 10**6):
        k = live.site_prior_n(queue_n)
        assert k < live.SITE_PRIOR_N
        assert 1 / (k + 1) == pytest.approx(1 / (live.SITE_PRIOR_N + 1) + 1 / queue_n)
    assert live.site_prior_n(10**9) == pytest.approx(live.SITE_PRIOR_N, rel=1e-6)


def _alarm_rate_integral(up: int, g: int, limit: int, a: float, b: float) -> float:
    """The belief-averaged alarm rate by brute force: the rate at the midpoint (in
    probability) of 4,000 slices of the belief, equal in mass up to 0.999, then finer in
    the tail (60 slices a decade of the tail's mass down to 1e-13)."""
    us = [(i + 0.5) / 4000 * 0.999 for i in range(4000)]
    masses = [0.999 / 4000] * 4000
    edges = [10 ** (-3 - k / 60) for k in range(601)]
    for hi, lo in itertools.pairwise(edges):
        us.append(1 - (hi + lo) / 2)
        masses.append(hi - lo)
    ps = beta.ppf(us, a, b)
    return sum(w / lattice_arl(up, g, limit, float(p)) for p, w in zip(ps, masses, strict=True))


@settings(max_examples=6, deadline=None)
@given(
    n=st.integers(300, 3000),
    z=st.floats(-2.5, 2.5),
    ratio=st.sampled_from([2.0, 2.5, 3.0]),
    h=st.floats(4.0, 20.0),
)
def test_the_averaged_alarm_rate_bounds_the_integral_from_above(
    n: int, z: float, ratio: float, h: float
) -> None:
    """expected_alarm_rate is an upper bound of the belief-averaged alarm rate (within the
    1% it may leave out of the bulk), and not a loose one."""
    e = max(1, round(n * 0.05 + z * math.sqrt(n * 0.05)))
    p0 = e / n
    d = BernoulliCusumDesign.create(p0, ratio * p0, h)
    a, b = live.belief(e, n)
    exact = _alarm_rate_integral(d.up, d.g, d.limit, a, b)
    bound = live.expected_alarm_rate(d.up, d.g, d.limit, a, b, exact)
    assert 0.99 * exact <= bound <= 4 * exact


@settings(max_examples=8, deadline=None)
@given(
    n=st.integers(300, 5000),
    z=st.floats(-3.0, 3.0),
    side=st.sampled_from(["upper", "lower"]),
    arl0=st.sampled_from([1e5, 1e6, 1.1e7]),
    site=st.booleans(),
)
def test_a_design_on_an_estimate_holds_its_arl0_averaged_over_the_belief(
    n: int, z: float, side: live.Side, arl0: float, site: bool
) -> None:
    """The design's false alarms a verdict, averaged over the Phase I's belief, are at most
    1 / ARL0, and a 2% smaller decision interval would not hold them: the smallest (within
    the search's 1%). Its tuning is a doubling or one of WIDER's, and detects the
    configured shift no slower than the other tunings held to the same criterion."""
    e = max(1, round(n * 0.05 + z * math.sqrt(n * 0.05)))
    known = live.belief(e, n, 0.05, live.site_prior_n(4 * n)) if site else live.belief(e, n)
    p0 = live.site_p0(n, e, 0.05) if site else e / n
    ratio = 2.0 if side == "upper" else 0.25
    d = live.design(side, p0, ratio, arl0, known)
    a, b = known if side == "upper" else (known[1], known[0])  # the chart's scale
    if d is None:
        # no chart: a Phase I this small says too little of the rate (3 errors in 300, p0
        # 1%): every tuning would need more than SEARCH_H_MAX times its h at p0 alone
        for wider in live.WIDER:
            plain = live.design(side, p0, ratio * wider if side == "upper" else ratio / wider, arl0)
            assert plain is not None
            top = min(
                max_lattice_limit(plain.up, plain.g),
                math.ceil(live.SEARCH_H_MAX * plain.limit),
            )
            assert live.expected_alarm_rate(plain.up, plain.g, top, a, b, 1 / arl0) > 1 / arl0
        return
    assert live.expected_alarm_rate(d.up, d.g, d.limit, a, b, 1 / arl0) <= 1 / arl0
    smaller = math.floor(d.limit * 0.98)
    if smaller >= 1:
        assert live.expected_alarm_rate(d.up, d.g, smaller, a, b, 1 / arl0) > 1 / arl0
    p1_error = d.p1 if side == "upper" else 1 - d.p1
    tuned = p1_error / p0 if side == "upper" else p0 / p1_error
    base = ratio if side == "upper" else 1 / ratio
    assert any(math.isclose(tuned, base * w, rel_tol=1e-9) for w in live.WIDER) or (
        side == "upper" and math.isclose(d.p1, (1 + d.p0) / 2)
    )
    goal = 2 * p0 if side == "upper" else 1 - p0 / 4
    delay = bernoulli_cusum_arl(d, goal)
    for w in live.WIDER:
        other = live._design(
            side, p0, ratio * w if side == "upper" else ratio / w, arl0, known, ratio
        )
        if other is not None:
            assert delay <= bernoulli_cusum_arl(other, goal) * (1 + 1e-9)


@pytest.mark.parametrize(
    ("site", "n", "rate"), [(False, 3000, 3000), (True, 800, 800)], ids=["queue-3000", "site-800"]
)
def test_a_chart_on_an_estimated_baseline_spends_no_more_than_its_share(
    site: bool, n: int, rate: float
) -> None:
    """Averaged exactly over the Phase I's sampling (errors ~ Binomial(n, 5%)), the false
    alarms a day of an upper chart designed on the estimate: designed at p0, many times its
    share; averaged over the belief, within it. A site chart from 800 verdicts spent 1.98
    times its share under the 97.5% guard (docs/statistics.md, "Estimated baselines")."""
    p = 0.05
    if site:
        arl0 = live.design_arl0(live.site_arl0_for(rate, 1.0, 500, 4))
        share = live.detector_share(1.0, 500, "cusum_site", sites=True) / 4
    else:
        arl0 = live.design_arl0(live.arl0_for(rate, 1.0, 500, "upper", True))
        share = live.detector_share(1.0, 500, "cusum_upper", sites=True)
    spent = {False: 0.0, True: 0.0}
    sd = math.sqrt(n * p)
    for e in range(int(n * p - 4 * sd), int(n * p + 4 * sd) + 1):
        w = float(binom.pmf(e, n, p))
        if site:
            p0, known = live.site_p0(n, e, p), live.belief(e, n, p, live.site_prior_n(4 * n))
        else:
            p0, known = e / n, live.belief(e, n)
        for estimated in (False, True):
            d = live.design("upper", p0, 2.0, arl0, known if estimated else None)
            assert d is not None
            spent[estimated] += w * rate / bernoulli_cusum_arl(d, p)
    assert spent[False] > 4 * share
    assert spent[True] <= share


def test_a_new_users_small_site_is_tuned_wider_and_detects_sooner_than_under_the_guard() -> None:
    """A new user's site: 16 errors in 320 Phase I verdicts, queue at 4.5%. The 97.5% guard
    held a doubling chart there at h = 951 (a signal after tens of thousands of verdicts).
    Averaged over the belief, the tuning that detects a doubling soonest is a wider one."""
    q = 58 / 1280
    known = live.belief(16, 320, q, live.site_prior_n(1280))
    p0 = live.site_p0(320, 16, q)
    d = live.design("upper", p0, 2.0, 1.41e7, known)
    assert d is not None
    assert d.p1 > 2 * p0
    at = float(beta.ppf(0.975, 16 + 100 * q, 304 + 100 * (1 - q)))  # the guard it replaced
    guarded = choose_h(p0, 2 * p0, 1.41e7, in_control=at)
    assert guarded.h > 900
    assert bernoulli_cusum_arl(d, 2 * p0) < bernoulli_cusum_arl(guarded, 2 * p0) / 2
