from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.alerts.health import (
    SCORE_CAP,
    WEIGHTS,
    band_for,
    health,
    staleness_step,
    staleness_step_starts,
)
from services.scorer.core import target_rule
from services.scorer.settings import ScorerSettings
from shared.events import ChartPoint, CusumInfo, QualitySnapshot

NOW = datetime(2026, 11, 2, tzinfo=UTC)


def snap(acc: float | None, n: int, signals: list[str] | None = None, **kw: Any) -> QualitySnapshot:
    lp = None
    if signals is not None:
        lp = ChartPoint(
            start=NOW, n=100, errors=5, p=0.05, center=0.05, lcl=0.0, ucl=0.12, signals=signals
        )
    base: dict[str, Any] = dict(
        queue_id="q", as_of=NOW, emitted_at=NOW, decisions_total=1000, verdicts_total=n,
        pending_verdicts=0, accuracy_1h=acc, accuracy_24h=acc, accuracy_7d=acc, n_1h=n,
        n_24h=n, n_7d=n, baseline_p=0.05, baseline_state="frozen", last_point=lp,
    )  # fmt: skip
    base.update(kw)
    return QualitySnapshot(**base)


def h(s: QualitySnapshot, age: float = 0.0) -> Any:
    return health(s, target=0.9, min_sample=30, age_s=age, stale_after_s=300, firing=[])


def test_healthy_queue_is_green_100() -> None:
    r = h(snap(0.95, 500, []))
    assert r.score == 100.0
    assert r.band == "green"
    assert "meets" in r.explanation


def test_insufficient_data() -> None:
    r = h(snap(0.5, 10))
    assert r.score is None
    assert r.band == "insufficient_data"
    assert "too few" in r.explanation


def test_below_target_and_out_of_control_is_red() -> None:
    r = h(snap(0.85, 500, ["p_chart_ucl"]))
    assert r.components["accuracy"] == pytest.approx(50.0)
    assert r.components["stability"] == 20.0
    assert r.band == "red"
    assert "control limit" in r.explanation


def test_stale_data_lowers_freshness() -> None:
    assert h(snap(0.95, 500, []), age=600).components["freshness"] < 100
    assert h(snap(0.95, 500, []), age=10_000).components["freshness"] == 0


def test_staleness_counts_in_steps_not_seconds() -> None:
    """Fresh up to stale_after_s (300), then four steps of 225 s: 75, 50, 25, 0. Within a
    step the health is the same, words and all, so its bytes and an ETag do not age."""
    assert [staleness_step(a, 300) for a in (0, 300, 301, 525, 526, 750, 751, 975, 976, 1e9)] == [
        0, 0, 1, 1, 2, 2, 3, 3, 4, 4
    ]  # fmt: skip
    assert [staleness_step_starts(k, 300) for k in range(6)] == [0, 300, 525, 750, 975, math.inf]
    fresh = [h(snap(0.95, 500, []), age=a) for a in (301, 400, 525)]
    assert all(r == fresh[0] for r in fresh)
    assert fresh[0].components["freshness"] == 75
    assert "no new data for over 5 min" in fresh[0].explanation
    assert h(snap(0.95, 500, []), age=526).components["freshness"] == 50
    assert "no new data for over 9 min" in h(snap(0.95, 500, []), age=526).explanation


def test_score_monotone_in_accuracy() -> None:
    scores = [h(snap(a, 500, [])).score for a in (0.80, 0.85, 0.88, 0.9, 0.95)]
    assert scores == sorted(scores)


@pytest.mark.parametrize(
    ("score", "band"), [(100, "green"), (80, "green"), (79.9, "amber"), (60, "amber"), (10, "red")]
)
def test_bands(score: float, band: str) -> None:
    assert band_for(score) == band


def test_a_firing_alert_keeps_stability_down_after_a_quiet_point() -> None:
    s = snap(0.95, 500, [])
    r = health(s, target=0.9, min_sample=30, age_s=0, stale_after_s=300, firing=["ewma_ucl"])
    assert r.components["stability"] == 50.0
    assert r.score is not None
    assert r.score < 100


def test_band_is_not_green_while_an_alert_fires() -> None:
    s = snap(0.99, 500, [])
    r = health(
        s,
        target=0.9,
        min_sample=30,
        age_s=0,
        stale_after_s=300,
        firing=["accuracy_24h_below_target"],
    )
    assert r.components == {"accuracy": 100.0, "stability": 100.0, "freshness": 100.0}
    assert (r.score, r.band) == (79.0, "amber")  # capped: the score never reads green
    assert r.band_reason == "alert firing: accuracy_24h_below_target"
    assert "firing" in r.explanation
    assert "score capped at 79 (amber): alert firing" in r.explanation


def test_below_target_rule_is_legible() -> None:
    """891 of 1,000 against 90%: under the target, but the upper 95% Wilson bound (90.88%,
    worked by hand: centre 0.88950, half-width 0.01934) is not, nor the rule's exact one
    (90.68%), so the rule has not fired and the explanation says why."""
    r = h(snap(0.891, 1_000, []))
    assert not r.below_target_with_confidence
    assert r.accuracy_24h_interval is not None
    lo, hi = r.accuracy_24h_interval
    assert lo < 0.891 < hi
    assert hi == pytest.approx(0.90884, abs=5e-5)
    # (a snapshot from before the scorer published its rule: the rule's bound one-sided at
    # the interval's confidence)
    assert r.target_rule is None
    assert "89.1%, the rule's upper 95% bound 90.7%: not yet below the 90.0% target" in (
        r.explanation
    )
    # the same accuracy over 40,000 verdicts is below with confidence (bound 89.4%)
    r = h(snap(0.891, 40_000, []))
    assert r.below_target_with_confidence
    assert "below the 90.0% target with confidence" in r.explanation


@pytest.mark.parametrize("n", [30, 100, 1_000, 10_000])
def test_below_with_confidence_agrees_with_the_scorers_rule(n: int) -> None:
    """The health API's flag is the scorer's below-target condition on the same counts: the
    exact binomial test of "accuracy >= 90%" rejects at the rule's tail."""
    from scipy.stats import binom

    rule = target_rule(ScorerSettings())  # what the scorer publishes in its snapshots
    for correct in range(0, n + 1, max(1, n // 97)):
        r = h(snap(correct / n, n, [], target_rule=rule))
        below = binom.cdf(correct, n, 0.9) < rule.tail_per_look
        assert r.below_target_with_confidence == below
        assert r.target_rule == rule


def test_the_rule_at_the_budgets_confidence_is_legible() -> None:
    """88.0% of 2,000 against 90%: the 95% interval (86.5%-89.4%) is under the target, but
    the rule's exact bound is at the confidence its share of the false-alarm budget allows
    (one-sided 99.9992%, a tail of 8.3e-6: upper 90.9%), so no alert, and the explanation
    says both."""
    rule = target_rule(ScorerSettings())
    r = h(snap(0.88, 2_000, [], target_rule=rule))
    assert r.accuracy_24h_interval is not None
    assert r.accuracy_24h_interval[1] == pytest.approx(0.8935, abs=5e-4)
    assert not r.below_target_with_confidence
    assert (
        "24h accuracy 88.0%, the rule's upper 99.9992% bound 90.9%: not yet below the 90.0% "
        "target with confidence, so no below-target alert (n=2,000)"
    ) in r.explanation, r.explanation
    # under the target is not green (a score of 88 would be): amber, and the tile says why
    assert (r.band, r.score) == ("amber", 79.0)
    assert r.band_reason == (
        "24h accuracy 88.0% under target 90.0%, not yet below it with the rule's confidence "
        "(upper 99.9992% bound 90.9%)"
    )
    # with 20,000 verdicts the bound (89.0%) is under: red, and the band says why
    r = h(snap(0.88, 20_000, [], target_rule=rule))
    assert r.below_target_with_confidence
    assert r.band == "red"
    assert r.band_reason == "24h accuracy 88.0% below target 90.0% (upper 99.9992% bound 89.0%)"
    # ... and until the scorer's rule looks (once a subgroup closes), no alert says so yet
    assert "the scorer's rule alerts when it next looks" in r.explanation


@pytest.mark.parametrize(
    ("firing", "stability", "words"),
    [(["cusum_upper"], 20.0, "CUSUM signals a rise"), (["cusum_lower"], 50.0, "QA feed")],
)
def test_the_live_cusums_count_in_stability(
    firing: list[str], stability: float, words: str
) -> None:
    """The CUSUMs are the primary detectors: their alert weighs like the p-chart's (up) or
    as a warning (errors vanished)."""
    r = health(snap(0.86, 500, []), target=0.9, min_sample=30, age_s=0, stale_after_s=300,
               firing=firing)  # fmt: skip
    assert r.components["stability"] == stability
    assert words in r.explanation
    if firing == ["cusum_upper"]:
        assert r.band == "red"


def test_a_queue_below_target_with_confidence_is_red_whatever_its_score() -> None:
    """85.7% against 90% on 500 verdicts scores 74 (amber by score): failing its target
    with confidence, it is red; 89.5% (not below with confidence) stays by its score."""
    failing = h(snap(0.857, 500, []))
    assert sum(WEIGHTS[k] * v for k, v in failing.components.items()) >= 60
    assert failing.below_target_with_confidence
    assert (failing.score, failing.band) == (59.0, "red")  # capped at red's top
    assert failing.band_reason is not None
    assert failing.band_reason.startswith("24h accuracy 85.7% below target 90.0% (upper 95% bound ")
    close = h(snap(0.895, 500, []))
    assert not close.below_target_with_confidence
    assert close.band == band_for(close.score or 0)


def test_repeated_signals_of_one_rule_are_one_line() -> None:
    r = health(snap(0.95, 500, []), target=0.9, min_sample=30, age_s=0, stale_after_s=300,
               firing=["cusum_lower"] * 5 + ["ewma_ucl"])  # fmt: skip
    assert "alerts firing: cusum_lower (5 signals), ewma_ucl" in r.explanation


def test_a_site_charts_signal_says_which_site() -> None:
    def chart(site: str, recovery: float | None) -> CusumInfo:
        return CusumInfo(
            side="upper", p0=0.05, p1=0.1, statistic=0.0, h=12.0, verdicts=10, errors=1,
            signals=1 if recovery is not None else 0, recovery=recovery, arl0_verdicts=1e6,
            arl0_days=1000.0, rate_per_day=1000.0, design={}, site=site,
        )  # fmt: skip

    s = snap(
        0.95, 500, [], site_cusums={"manila": chart("manila", 1.5), "dublin": chart("dublin", None)}
    )
    r = health(
        s, target=0.9, min_sample=30, age_s=0, stale_after_s=300, firing=["cusum_site_upper"]
    )
    assert r.components["stability"] == 20.0
    assert "rise in errors at site manila" in r.explanation
    assert r.band != "green"


RULES = ["p_chart_ucl", "ewma_ucl", "cusum_upper", "cusum_lower", "cusum_site_upper",
         "accuracy_24h_below_target"]  # fmt: skip


@given(
    st.floats(0.5, 1.0), st.integers(30, 5000), st.lists(st.sampled_from(RULES), max_size=6),
    st.floats(0, 3000), st.lists(st.sampled_from(["p_chart_ucl", "ewma_ucl"]), max_size=2),
)  # fmt: skip
def test_the_score_never_contradicts_the_band(
    acc: float, n: int, firing: list[str], age: float, signals: list[str]
) -> None:
    r = health(snap(acc, n, signals), target=0.9, min_sample=30, age_s=age, stale_after_s=300,
               firing=firing)  # fmt: skip
    assert r.score is not None
    assert band_for(r.score) == r.band
    parts = sum(WEIGHTS[k] * v for k, v in r.components.items())
    if r.band in SCORE_CAP and parts > SCORE_CAP[r.band] + 0.11:  # capped at the band's top
        assert r.score == SCORE_CAP[r.band]
    else:  # the score is the components' (each rounded to 0.1)
        assert parts == pytest.approx(r.score, abs=0.11)
    assert r.firing_alerts == sorted(set(firing))
    # why a band is not green is always said in words, capped or not; green needs no why
    assert bool(r.band_reason) == (r.band != "green"), r


def test_a_red_score_says_why_in_words_capped_or_not() -> None:
    """A score red on its own (58, under the cap) still says why: the queue below its
    target, else what the score's components say; not only a colour."""
    below = h(snap(0.87, 2000, ["p_chart_ucl"]))  # 87% of 2000 against 90%: with confidence
    assert below.band == "red"
    assert below.score is not None
    assert below.score < 59  # red by the score alone: nothing to cap
    assert below.band_reason is not None
    assert below.band_reason.startswith("24h accuracy 87.0% below target 90.0% (upper 95% ")
    # under target but not yet with confidence, the EWMA signalling, the data stale
    alone = h(snap(0.85, 60, ["ewma_ucl"]), age=700)
    assert alone.band == "red"
    assert not alone.below_target_with_confidence
    assert alone.band_reason == (
        f"score {alone.score:.0f}: 24h accuracy 85.0% under the 90.0% target; the EWMA "
        "shows a sustained rise in errors; no new data for over 9 min"
    )
    few = h(snap(0.5, 10))
    assert few.band_reason == "only 10 random QA verdicts in 24h (need 30)"


def test_firing_alerts_name_each_rule_once_in_a_stable_order() -> None:
    firing = ["ewma_ucl", "cusum_site_upper", "cusum_site_upper", "cusum_lower", "ewma_ucl"]
    a = health(snap(0.95, 500, []), target=0.9, min_sample=30, age_s=0, stale_after_s=300,
               firing=firing)  # fmt: skip
    b = health(snap(0.95, 500, []), target=0.9, min_sample=30, age_s=0, stale_after_s=300,
               firing=list(reversed(firing)))  # fmt: skip
    assert a.firing_alerts == ["cusum_lower", "cusum_site_upper", "ewma_ucl"]
    assert a.firing_alerts == b.firing_alerts
    assert "cusum_site_upper (2 signals)" in a.explanation  # the signals are counted there


def test_a_window_that_ended_long_before_the_snapshot_says_where_it_ends() -> None:
    """After a backfill the 24 h are those to the newest event, ~21 h before the snapshot
    was published: 'meets the target' with freshness 100 read as today's. The explanation
    says where the window ends; live (within the hour) it reads as before."""
    backfilled = snap(0.971, 1234, [], as_of=datetime(2026, 12, 4, 6, 0, 41, tzinfo=UTC),
                      emitted_at=datetime(2026, 12, 5, 3, 0, tzinfo=UTC))  # fmt: skip
    r = h(backfilled)
    assert r.components["freshness"] == 100.0
    assert r.explanation.startswith(
        "24h accuracy to 2026-12-04 06:00 UTC: 97.1% meets the 90.0% target (n=1,234)"
    )
    live = h(snap(0.971, 1234, [], emitted_at=datetime(2026, 11, 2, 0, 59, tzinfo=UTC)))
    assert live.explanation.startswith("24h accuracy 97.1% meets the 90.0% target (n=1,234)")
    # the other sentences of the accuracy, and too few verdicts, say it the same way
    under = h(snap(0.88, 5000, [], emitted_at=datetime(2026, 11, 3, tzinfo=UTC)))
    assert under.explanation.startswith("24h accuracy to 2026-11-02 00:00 UTC: 88.0%, the rule's")
    below = h(snap(0.80, 5000, [], emitted_at=datetime(2026, 11, 3, tzinfo=UTC)))
    assert below.explanation.startswith("24h accuracy to 2026-11-02 00:00 UTC: 80.0%, the rule's")
    assert "below the 90.0% target with confidence" in below.explanation
    few = h(snap(0.9, 12, emitted_at=datetime(2026, 11, 3, tzinfo=UTC)))
    assert few.explanation.startswith(
        "only 12 random QA verdicts in the 24h to 2026-11-02 00:00 UTC (need 30): too few"
    )
    # the band's one line is unchanged (a wall tile: kept short)
    assert few.band_reason == "only 12 random QA verdicts in 24h (need 30)"


def test_a_stale_or_a_future_window_says_where_it_ends() -> None:
    """No new data (a stale snapshot): the window is not about now either; nor is one that
    ends ahead of the snapshot's publication (a clock ahead; the demo's simulated time).
    From the snapshot and its staleness step only, so a cached health stays exact."""
    fresh = snap(0.95, 500, [])
    assert h(fresh, age=300).explanation.startswith("24h accuracy 95.0% meets")
    stale = h(fresh, age=301)
    assert stale.explanation.startswith("24h accuracy to 2026-11-02 00:00 UTC: 95.0% meets")
    assert "no new data for over 5 min" in stale.explanation
    assert stale == h(fresh, age=525)
    ahead = snap(0.95, 500, [], as_of=datetime(2026, 11, 3, 10, 0, tzinfo=UTC))
    assert h(ahead).explanation.startswith("24h accuracy to 2026-11-03 10:00 UTC: 95.0% meets")


def test_the_explanation_is_documented_as_event_time() -> None:
    """The API's schema says what the explanation's 24 h are."""
    from services.alerts.health import Health

    doc = Health.model_fields["explanation"].description or ""
    assert "event time" in doc
    assert "as_of" in doc


def test_a_phase1_of_subgroups_too_small_says_why_it_is_still_learning() -> None:
    """A trial's quiet queue (at most 16 random verdicts an hour) stayed ``learning (0/24)``
    for 60 subgroups with nothing to say why: each was under QW_SCORER_MIN_SUBGROUP_N."""
    learning = dict(
        baseline_p=None, baseline_state="phase1", phase1_subgroups=0, phase1_length=24,
        min_subgroup_n=20,
    )  # fmt: skip
    r = h(snap(0.95, 500, [], **learning, phase1_too_small=60, phase1_too_small_max_n=16))
    assert (
        "baseline learning (0/24): Phase I; 60 subgroups skipped, too small (at most 16 random "
        "verdicts of the 20 a subgroup needs): give this queue a baseline "
        "(QW_SCORER_BASELINE_P, e.g. '{\"q\": 0.05}'), or, for every queue, lower "
        "QW_SCORER_MIN_SUBGROUP_N or lengthen QW_SCORER_SUBGROUP_SECONDS; the target rule "
        "applies meanwhile"
    ) in r.explanation
    one = h(snap(0.95, 500, [], **learning, phase1_too_small=1, phase1_too_small_max_n=3))
    assert "; 1 subgroup skipped, too small (at most 3 " in one.explanation
    quiet = h(snap(0.95, 500, [], **learning))  # none skipped (or an older scorer's snapshot)
    assert (
        "baseline learning (0/24): Phase I; the target rule applies meanwhile" in quiet.explanation
    )
