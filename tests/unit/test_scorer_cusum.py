"""The live per-verdict Bernoulli CUSUMs and the false-alarm budget (services/scorer/cusum.py):
the stream detector against the library's chart, the budget split, and the scorer signalling
on a doubling without waiting for a subgroup while staying quiet in control."""

from __future__ import annotations

import math
import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scorer import cusum as live
from services.scorer.core import Scorer
from services.scorer.state import QueueState
from shared.events import Breach
from shared.stats.cusum import BernoulliCusum, bernoulli_cusum_arl
from tests.factories import T0, decision, verdict
from tests.unit.test_scorer_core import feed
from tests.unit.test_scorer_core import settings as scorer_settings

H = timedelta(hours=1)
WALL = T0.timestamp() + 30 * 86400  # after all the traffic: no event is in the future


def _verdicts(n: int, p: float, seed: int) -> list[bool]:
    rng = random.Random(seed)
    return [rng.random() < p for _ in range(n)]


@pytest.mark.parametrize("p0", [0.02, 0.05, 0.2])
def test_the_upper_stream_chart_is_the_librarys_chart(p0: float) -> None:
    d = live.design("upper", p0, 2.0, live.design_arl0(5_000))
    assert d is not None
    mine = live.LiveCusum("upper", BernoulliCusum(d), 5_000)
    ref = BernoulliCusum(d)
    signals = 0
    for x in _verdicts(20_000, 2 * p0, seed=7):  # drifted: signals often
        signal = mine.update(x)
        point = ref.update(x)
        assert signal == point.signal
        assert mine.chart.statistic == point.statistic
        if signal:
            signals += 1
            mine.reset()
            ref.reset()
    assert signals >= 5
    assert mine.signals == signals


@pytest.mark.parametrize("p0", [0.01, 0.05, 0.2])
def test_the_lower_stream_chart_is_the_llr_cusum_for_a_drop(p0: float) -> None:
    """The lower chart is the library's chart on "the verdict was correct", which is the
    log-likelihood-ratio CUSUM for p0 -> p0/4: its steps have the LLR's ratio, it meets its
    in-control ARL exactly, and a dead QA feed (no errors at all) signals on schedule."""
    arl0 = live.design_arl0(20_000)
    d = live.design("lower", p0, 0.25, arl0)
    assert d is not None
    p1 = p0 / 4
    assert live.observed_error_rate("lower", d) == pytest.approx((p0, p1))
    llr_correct = math.log((1 - p1) / (1 - p0))
    llr_error = math.log(p1 / p0)
    assert d.g / d.up == pytest.approx(-llr_error / llr_correct, rel=0.03)
    in_control = bernoulli_cusum_arl(d, 1 - p0)  # the chart sees P(correct) = 1 - p0
    assert arl0 <= in_control < 1.5 * arl0
    mine = live.LiveCusum("lower", BernoulliCusum(d), arl0)
    ref = BernoulliCusum(d)
    for x in _verdicts(5_000, p0, seed=3):
        assert mine.update(x) == ref.update(not x).signal
        assert mine.chart.s == ref.s
        if ref.s >= d.limit:
            mine.reset()
            ref.reset()
    dead = live.LiveCusum("lower", BernoulliCusum(d), arl0)
    first = next(i for i in range(1, 100_000) if dead.update(False))
    assert first == math.ceil(d.limit / d.up)


@given(
    rates=st.lists(st.floats(1.0, 1e6), min_size=1, max_size=50),
    budget=st.floats(0.01, 1000.0),
)
def test_the_budget_split_adds_up_to_the_budget(rates: list[float], budget: float) -> None:
    """Each of N queues' CUSUMs, at the queue's own rate, spends rate / ARL0 false alarms a
    day, its p-chart alpha per subgroup times its subgroups a day; together they spend the
    budget, whatever the rates. (The split across detectors is by ``SHARES`` since the fleet
    benchmark, no longer equal: the sum is what must hold.)"""
    n = len(rates)
    subgroups_per_day = 24.0
    spent = sum(r / live.arl0_for(r, budget, n, side) for r in rates for side in live.SIDES)
    spent += n * live.detector_share(budget, n, "p_chart")
    # the below-target rule: at most one breach a look, at its tail per look, at the target
    spent += n * live.detector_share(budget, n, "below_target")
    assert spent == pytest.approx(budget, rel=1e-9)
    for detector in ("p_chart", "below_target"):
        tail = live.per_look_tail(detector, budget, n, subgroups_per_day)
        share = live.detector_share(budget, n, detector) / subgroups_per_day
        assert tail == min(max(share, live.ALPHA_MIN), live.ALPHA_MAX)
    assert sum(live.SHARES.values()) == pytest.approx(1.0)
    for side in live.SIDES:
        shares = {r / live.arl0_for(r, budget, n, side) for r in rates}
        assert max(shares) == pytest.approx(min(shares), rel=1e-9)  # busy and quiet alike


@given(
    r1=st.floats(0.0, 1e6),
    r2=st.floats(0.0, 1e6),
    b1=st.floats(0.01, 1000.0),
    b2=st.floats(0.01, 1000.0),
    n=st.integers(1, 100_000),
)
def test_arl0_grows_with_the_rate_and_shrinks_with_the_budget(
    r1: float, r2: float, b1: float, b2: float, n: int
) -> None:
    lo, hi = sorted((r1, r2))
    blo, bhi = sorted((b1, b2))
    assert live.arl0_for(lo, blo, n) <= live.arl0_for(hi, blo, n)
    assert live.arl0_for(lo, bhi, n) <= live.arl0_for(lo, blo, n)
    assert live.design_arl0(live.arl0_for(lo, blo, n)) <= live.design_arl0(
        live.arl0_for(hi, blo, n)
    )


@settings(max_examples=200)
@given(arl0=st.floats(1.0, 1e10))
def test_the_design_arl0_is_rounded_up_within_an_eighth(arl0: float) -> None:
    a = live.design_arl0(arl0)
    clamped = min(max(arl0, live.ARL0_MIN), live.ARL0_MAX)
    assert clamped * (1 - 1e-9) <= a <= clamped * 10 ** (1 / live.ARL0_STEPS_PER_DECADE) * 1.0001


def test_tiny_error_rates_get_no_chart_rather_than_a_costly_one() -> None:
    assert live.design("upper", 0.0005, 2.0, 1e6) is None
    assert live.design("lower", 0.002, 0.25, 1e6) is None
    assert live.design("lower", 0.01, 0.25, 1e6) is not None


# -- through the scorer ------------------------------------------------------------------------


def _traffic(
    queue: str, hours: range, per_hour: int, rate_of: Any, rng: random.Random
) -> list[list[dict[str, Any]]]:
    """Per hour: ``per_hour`` decisions, each QA-reviewed (random sample) 30 minutes later."""
    out = []
    for h in hours:
        items: list[dict[str, Any]] = []
        for i in range(per_hour):
            k = f"{queue}-{h}-{i}"
            at = T0 + h * H + timedelta(seconds=rng.uniform(0, 1799))
            items.append(decision(k, queue, at))
            items.append(verdict(k, queue, at + H / 2, correct=rng.random() >= rate_of(h)))
        out.append(items)
    return out


def _run(sc: Scorer, hours: list[list[dict[str, Any]]]) -> list[Breach]:
    breaches: list[Breach] = []
    for items in hours:
        breaches += feed(sc, items, wall=WALL).breaches
    return breaches


def test_a_doubling_signals_within_bounded_verdicts_and_in_control_stays_quiet() -> None:
    """Defaults (1 false alarm a day over 500 queues, 70% of it to the upper CUSUMs): a queue
    of 960 random verdicts a day gets an upper CUSUM with an in-control ARL of ~0.7 million
    verdicts (two years at that rate).
    Two days in control raise nothing; a doubling signals mid-subgroup, within the few
    hundred verdicts the design's ARL1 promises."""
    rng = random.Random(11)
    sc = Scorer(scorer_settings(baseline_p={"q": 0.05}), {})
    quiet = _run(sc, _traffic("q", range(48), 40, lambda h: 0.05, rng))
    assert quiet == []
    st = sc.state("q")
    # measured from the verdicts' own times
    rate = st.rate
    assert rate is not None
    assert rate == pytest.approx(960, rel=0.2)
    up = st.cusum["upper"]
    assert up.arl0 >= live.arl0_for(rate, 1.0, 500)
    assert up.chart.design.p1 == pytest.approx(0.10)
    snap = sc.snapshot(st, T0.timestamp())
    assert snap.cusum_upper is not None
    assert snap.cusum_lower is not None
    assert snap.cusum_upper.arl0_days is not None
    assert snap.cusum_upper.arl0_days == pytest.approx(up.arl0 / rate)
    # N / (budget w) days, rounded up: the upper CUSUM's share w of the budget (SHARES)
    assert snap.cusum_upper.arl0_days >= 500 / live.SHARES["cusum_upper"]
    assert snap.cusum_lower.arl0_days is not None
    assert snap.cusum_lower.arl0_days >= 500 / live.SHARES["cusum_lower"]
    assert snap.cusum_upper.h == up.chart.design.h
    assert snap.verdict_rate_per_day == st.rate
    arl1 = bernoulli_cusum_arl(up.chart.design, 0.10)

    before = st.verdicts_total
    drift = _run(sc, _traffic("q", range(48, 120), 40, lambda h: 0.10, rng))
    cusum = [b for b in drift if b.rule == "cusum_upper"]
    assert cusum, "a doubling must signal"
    first = cusum[0]
    assert first.cusum is not None
    assert first.verdicts_total is not None
    delay = first.verdicts_total - before
    assert delay <= 4 * arl1, (delay, arl1)
    assert first.cusum.statistic >= first.cusum.h
    # its rate is the run since the statistic last left 0 (the change point's estimate),
    # not every verdict since the chart last restarted (days in control: the baseline)
    assert first.n == first.cusum.run_verdicts
    assert 0 < first.cusum.run_verdicts < first.cusum.verdicts
    assert first.observed_p == first.cusum.run_errors / first.cusum.run_verdicts
    assert first.observed_p > 0.08
    assert first.cusum.errors / first.cusum.verdicts < first.observed_p
    # the design in force then: the one for its ARL0 (redesigned daily as the rate moves)
    in_force = live.design("upper", 0.05, 2.0, first.cusum.arl0_verdicts)
    assert in_force is not None
    assert first.cusum.design == in_force.to_dict()
    assert first.expected_p == 0.05
    assert first.observed_p > 0.05
    # the CUSUM alerts before the p-chart or EWMA on that hour could (it closes later)
    spc = [b for b in drift if b.rule in ("p_chart_ucl", "ewma_ucl")]
    if spc:
        assert first.detected_at < spc[0].detected_at
    assert st.cusum["upper"].signals == len(cusum)
    assert not [b for b in drift if b.rule == "cusum_lower"]


def test_a_dead_qa_feed_signals_on_the_lower_chart() -> None:
    rng = random.Random(5)
    sc = Scorer(scorer_settings(baseline_p={"q": 0.05}), {})
    assert _run(sc, _traffic("q", range(24), 40, lambda h: 0.05, rng)) == []
    d = sc.state("q").cusum["lower"].chart.design
    before = sc.state("q").verdicts_total
    out = _run(sc, _traffic("q", range(24, 96), 40, lambda h: 0.0, rng))
    lower = [b for b in out if b.rule == "cusum_lower"]
    assert lower
    assert lower[0].cusum is not None
    assert lower[0].verdicts_total is not None
    # from wherever the statistic stood, a run of correct verdicts this long reaches h
    assert lower[0].verdicts_total - before <= math.ceil(d.limit / d.up)
    assert lower[0].observed_p < 0.05
    assert "QA feed" in lower[0].message
    assert not [b for b in out if b.rule == "cusum_upper"]


def test_the_budget_is_what_an_in_control_queue_spends() -> None:
    """A generous budget (400 a day for one queue: 100 per detector) and 480 random
    verdicts a day: each CUSUM is designed for one false alarm in 4.8 -> ARL0_MIN = 100
    verdicts (clamped), so over ~4,800 in-control verdicts each side raises about
    48 false alarms; the count observed is within its Poisson spread of that."""
    rng = random.Random(3)
    sc = Scorer(
        scorer_settings(baseline_p={"q": 0.2}, false_alarms_per_day=400.0, expected_queues=1),
        {},
    )
    out = _run(sc, _traffic("q", range(240), 20, lambda h: 0.2, rng))
    st = sc.state("q")
    for side in live.SIDES:
        chart = st.cusum[side]
        counted = sum(1 for b in out if b.rule == f"cusum_{side}")
        assert counted == chart.signals
        verdicts = st.verdicts_total - 3 * 20  # the first design comes after 3 hours
        exact = bernoulli_cusum_arl(chart.chart.design, 0.2 if side == "upper" else 0.8)
        assert exact >= 100
        expected = verdicts / exact
        assert abs(counted - expected) < 4 * math.sqrt(expected) + 2, (side, counted, expected)


def test_the_cusum_record_round_trips_and_an_old_record_reads_without_it() -> None:
    rng = random.Random(2)
    sc = Scorer(scorer_settings(baseline_p={"q": 0.05}), {})
    _run(sc, _traffic("q", range(6), 40, lambda h: 0.05, rng))
    st = sc.state("q")
    assert set(st.cusum) == {"upper", "lower"}
    d = st.to_dict()
    back = QueueState.from_dict(d)
    assert back.to_dict() == d
    for key in ("cusum", "rate", "rate_from", "rate_n"):
        del d[key]
    old = QueueState.from_dict(d)  # a record written before the live CUSUM
    assert old.cusum == {}
    assert old.rate is None


# -- recovery: the mirror CUSUM after a signal ---------------------------------------------------


def _signalled(p0: float = 0.05, arl0: float = 2000.0) -> live.LiveCusum:
    d = live.design("upper", p0, 2.0, arl0)
    assert d is not None
    chart = live.LiveCusum("upper", BernoulliCusum(d), arl0)
    while not chart.update(True):
        pass
    chart.reset()  # as the scorer does on a signal (core: _cusum_breach)
    return chart


@pytest.mark.parametrize("side", live.SIDES)
@pytest.mark.parametrize("p0", [0.02, 0.05, 0.1, 0.3])
def test_the_recovery_design_tests_p0_against_half_the_shift_with_the_charts_h(
    side: live.Side, p0: float
) -> None:
    ratio = 2.0 if side == "upper" else 0.25
    chart = live.design(side, p0, ratio, 1e5)
    assert chart is not None
    r = live.recovery_design(side, chart)
    assert r.p0 == chart.p0
    assert r.p1 == pytest.approx(chart.p0 + (chart.p1 - chart.p0) / 2)
    assert r.h == pytest.approx(chart.h, abs=1 / r.m)
    # its reference value lies between p0 and half the shift (on the side's own scale)
    assert r.p0 < r.g / r.m < r.p1


def test_after_a_signal_the_recovery_test_needs_the_same_evidence_reversed() -> None:
    chart = _signalled()
    d = live.recovery_design("upper", chart.chart.design)
    assert chart.recovering
    assert chart.recovery == 0
    # errors keep it at its floor (and re-signal): a drift that persists never recovers
    for _ in range(50):
        if chart.update(True):
            chart.reset()
        assert chart.recovery == 0
    chart = _signalled()
    steps = math.ceil(d.limit / d.g)  # correct verdicts, g lattice units each
    for i in range(steps - 1):
        chart.update(False)
        assert chart.recovery == (i + 1) * d.g
    chart.update(False)
    assert chart.recovery is None
    assert not chart.recovering


@given(st.lists(st.booleans(), max_size=400), st.floats(0.02, 0.3))
@settings(max_examples=60, deadline=None)
def test_recovery_is_the_upper_charts_steps_reversed(xs: list[bool], p0: float) -> None:
    """R = max(0, R - up) on an error, R + g on a correct verdict; None at limit; a signal
    restarts it at 0; the record round-trips it."""
    chart = _signalled(p0)
    d = live.recovery_design("upper", chart.chart.design)
    r: int | None = 0
    for x in xs:
        signal = chart.update(x)
        if signal:
            chart.reset()
        if r is not None:
            r = max(0, r - d.up) if x else r + d.g
            r = None if r >= d.limit else r
        if signal:
            r = 0
        assert chart.recovery == r
        back = live.LiveCusum.from_dict(chart.to_dict())
        assert back == chart
        assert back.recovery == r


def test_a_persisting_drift_holds_the_streak_and_the_end_of_it_releases_it() -> None:
    """5% -> 10% on 960 verdicts a day: from the first upper signal the queue's in-control
    streak stays 0 while the drift lasts (the recovery test falls, the chart re-signals),
    so its incident stays one; back at 5% the recovery test passes and the streak grows."""
    rng = random.Random(7)
    sc = Scorer(scorer_settings(baseline_p={"q": 0.05}), {})
    _run(sc, _traffic("q", range(24), 40, lambda h: 0.05, rng))
    signalled = False
    for items in _traffic("q", range(24, 24 + 96), 40, lambda h: 0.10, rng):
        out = feed(sc, items, wall=WALL)
        signalled = signalled or any(b.rule == "cusum_upper" for b in out.breaches)
        if signalled:
            assert sc.state("q").quiet_streak == 0
            assert sc.state("q").cusum["upper"].recovering
    assert signalled
    snap = sc.snapshot(sc.state("q"), WALL)
    assert snap.cusum_upper is not None
    assert snap.cusum_upper.recovery is not None
    streaks = []
    for items in _traffic("q", range(120, 120 + 48), 40, lambda h: 0.05, rng):
        feed(sc, items, wall=WALL)
        streaks.append(sc.state("q").quiet_streak)
    d = live.recovery_design("upper", sc.state("q").cusum["upper"].chart.design)
    assert not sc.state("q").cusum["upper"].recovering
    # recovered within a few times the verdicts that the evidence needs at p0 (40 an hour)
    drift_at_p0 = d.g - 0.05 * d.m  # lattice units a verdict, on average, at p0
    assert streaks.index(1) <= 4 * d.limit / drift_at_p0 / 40 + 8
    assert streaks[-1] >= 3


def test_a_signal_is_timed_by_its_verdict_however_the_events_are_batched() -> None:
    """A batch adds its decisions (moving the watermark) before it counts its verdicts, so a
    CUSUM signal in a batch of twelve hours was stamped with the batch's end and ranked the
    causes of hours with nothing counted yet. It is timed by the verdict that signalled."""
    rng = random.Random(11)
    quiet = _traffic("q", range(48), 40, lambda h: 0.05, rng)
    drift = _traffic("q", range(48, 96), 40, lambda h: 0.12, rng)
    hourly = Scorer(scorer_settings(baseline_p={"q": 0.05}), {})
    bulk = Scorer(scorer_settings(baseline_p={"q": 0.05}), {})
    assert _run(hourly, quiet) == _run(bulk, quiet) == []
    by_hour = [b for b in _run(hourly, drift) if b.rule == "cusum_upper"]
    chunks = [[e for h in drift[i : i + 12] for e in h] for i in range(0, len(drift), 12)]
    in_bulk = [b for b in _run(bulk, chunks) if b.rule == "cusum_upper"]
    assert by_hour
    assert in_bulk
    first, first_bulk = by_hour[0], in_bulk[0]
    # the same verdicts, the same time; the watermark of its batch was hours later
    assert first_bulk.verdicts_total == first.verdicts_total
    assert first_bulk.detected_at == first.detected_at
    assert first_bulk.subgroup_start == first.subgroup_start
    chunk_end = T0 + 48 * H + 12 * H * (1 + (first.detected_at - T0 - 48 * H) // (12 * H))
    assert chunk_end - first_bulk.detected_at > 2 * H


def test_the_verdict_rate_is_measured_by_the_verdicts_own_times() -> None:
    """960 random verdicts a day, sent hourly or in twelve-hour batches: the same rate (the
    watermark, which a batch's decisions move first, made the bulk measure ~40% high)."""
    rng = random.Random(3)
    traffic = _traffic("q", range(72), 40, lambda h: 0.05, rng)
    hourly = Scorer(scorer_settings(baseline_p={"q": 0.05}), {})
    bulk = Scorer(scorer_settings(baseline_p={"q": 0.05}), {})
    _run(hourly, traffic)
    _run(bulk, [[e for h in traffic[i : i + 12] for e in h] for i in range(0, 72, 12)])
    rates = [sc.state("q").rate for sc in (hourly, bulk)]
    assert None not in rates
    for rate in rates:
        assert rate == pytest.approx(960, rel=0.05)


@pytest.mark.parametrize("p0", [1e-300, 1e-12, 1e-9])
@pytest.mark.parametrize("side", ["upper", "lower"])
def test_a_baseline_too_small_for_a_chart_runs_none_instead_of_raising(
    side: live.Side, p0: float
) -> None:
    """QW_SCORER_BASELINE_P takes any rate in (0, 1): 1e-300 made the upper design divide
    by zero, which would have failed every batch of that queue."""
    ratio = 2.0 if side == "upper" else 0.5
    assert live.design(side, p0, ratio, live.design_arl0(1e5)) is None


def test_scipy_is_imported_ahead_on_a_thread_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import_in_background`` imports scipy.stats (the first design's import) off the
    agent's thread; an import that fails there is left to the design's own import."""
    import importlib
    import sys
    import threading

    from services.scorer import cusum as live_cusum

    thread = live_cusum.import_in_background()
    assert thread is not threading.current_thread()
    assert thread.daemon
    thread.join(60)
    assert "scipy.stats" in sys.modules

    def refuse(name: str) -> None:
        raise ImportError(f"no {name} here")

    raised: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))
    monkeypatch.setattr(importlib, "import_module", refuse)
    failed = live_cusum.import_in_background()
    failed.join(10)
    assert not failed.is_alive()
    assert raised == []  # ended quietly: nothing raised on the thread
