"""The queue health score: one number 0-100, its components, and a plain-words explanation.

Pure: computed from the latest ``QualitySnapshot`` and the alerts firing for the queue.

Components (each 0-100) and weights:

* ``accuracy`` (0.6): 24h random-sample accuracy against the target. At or above the target
  scores 100; each percentage point under it costs 10. The explanation also says what the
  below-target rule needs: the exact (Clopper-Pearson) upper bound of the 24h accuracy (at
  the rule's confidence, the snapshot's ``target_rule``: from the false-alarm budget, a
  one-sided 99.9992% at the
  defaults) under the target, so a lead sees why a red-looking number has no alert yet.
* ``stability`` (0.3): the control charts. 100 in control; 50 when the EWMA signals a
  sustained shift (or its alert is still firing) or the lower CUSUM's alert fires (errors
  vanished: a broken QA feed?); 20 when the upper CUSUM's alert fires or the last subgroup
  is above the p-chart's upper limit (or that alert is still firing).
* ``freshness`` (0.1): 100 when a snapshot arrived within ``stale_after_s``; then it falls
  in ``FRESHNESS_STEPS`` steps of 25 (``staleness_step``), one each three quarters of
  ``stale_after_s``, to 0 at four times it. In steps, not with every second: a health (and
  the list's ETag) changes when the data or its staleness band does, not with the clock, so
  a client polling with If-None-Match gets 304 while nothing changed. The exact age is the
  client's to compute from the snapshot's ``emitted_at``.

The 24 h windows are of event time: the 24 hours up to the queue's newest event (the
snapshot's ``as_of``), not up to now. Live, that is the same; after a backfill, or once the
data stopped, it is not, and the explanation says where the window ends
(``24h accuracy to 2026-12-04 06:00 UTC: 97.1% meets the 90.0% target``) whenever
``as_of`` is over ``WINDOW_END_SAID_AFTER_S`` (an hour) from the snapshot's publication
(``emitted_at``, either way) or the snapshot is stale (its freshness under 100): a window of
yesterday's data must not read as today's (``window_end_words``).

While any alert is firing for the queue the band is at best ``amber``, and so it is while
the 24h accuracy is under the target but not yet below it with the rule's confidence (its
``band_reason`` says so: not green for 88% against 90%); while the 24h
accuracy is below the target with confidence (the below-target rule holds) it is ``red``,
whatever the components; and so it is while a partner site of the queue is below its own
target with confidence over 24 h on at least ``min_sample`` verdicts (``sites_below_target``:
the explanation names each such site; the ``(other)`` aggregate of unnamed sites is no site
and never counts). A site's contract failing with confidence is a red condition for an
operations room even when the queue as a whole meets its target.

The score never contradicts the band: ``band_for(score) == band`` always. When one of those
conditions holds the band down, the score is capped at the top of that band (``SCORE_CAP``:
59 for red, 79 for amber); the components stay what they are, so their weighted sum shows
the score before the cap.

``band_reason`` says in one line why the band is not green, for every band but green and
whether or not the score was capped: the queue or its sites below target (``site dublin
below target 90.0%: 84.1% (95% upper bound 88.0%)``), else the open alerts (``alert firing:
ewma_ucl``), else what the score's components say when the score alone makes the band
(``score 51: 24h accuracy 87.4% under the 90.0% target; the EWMA shows a sustained rise in
errors``), and ``only 12 random QA verdicts in 24h (need 30)`` without enough data. A wall
tile prints it: colour is never the only signal, and why a tile is red is on the tile. Capped rather than shown beside the band with
a note, because other services threshold on the score in their hot paths (routing,
automation): a red queue must not read 100 to them any more than to the wall.

``firing_alerts`` is the rules of the open alerts, each once, by name (two
``cusum_site_upper`` alerts for two sites are one rule; the explanation counts the signals,
``GET /v1/alerts`` names each alert's ``site``).

``baseline`` says where the charts stand: ``learning (5/24)`` during a Phase I (the queue's
first, or the one a baseline reset began: the charts wait for it, the below-target rule
does not), ``estimated`` or ``configured`` once they run; ``last_baseline_reset`` says when,
by whom and why the baseline was last reset.

With fewer than ``min_sample`` verdicts in 24h the score is ``None`` and the band
``insufficient_data``: too few verdicts to say.

Per site (``sites``, from the snapshot's per-site windows; ``services/scorer/sites.py``):
over the last 24 h and 7 d, the accuracy, its Wilson interval (at the target confidence),
P(accuracy >= target) (Jeffreys posterior, ``shared.stats.prob_at_least``) and whether
the below-target rule's upper bound (at the rule's confidence) is under the target, against the site's own target
(``QW_SITE_TARGETS``, else the queue's). The same three figures, by ``against_target``, for
the queue's 24 h. Sites do not weigh in the score (a queue's score is the queue's), only
in the band, as said above.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import UTC
from typing import Literal

from pydantic import BaseModel, Field

from shared.events import OTHER_SITES, QualitySnapshot, TargetRule
from shared.settings import TargetSource
from shared.stats.intervals import exact_upper_bound, prob_at_least, wilson_interval
from shared.text import confidence_words, percent_apart

Band = Literal["green", "amber", "red", "insufficient_data"]
WEIGHTS = {"accuracy": 0.6, "stability": 0.3, "freshness": 0.1}
SCORE_CAP: dict[str, float] = {"red": 59.0, "amber": 79.0}  # the top of a band (band_for)
FRESHNESS_STEPS = 4  # staleness bands past stale_after_s, each 3/4 of it long
# the explanation says where the 24 h windows end when it is this far from the snapshot's
# publication (or the snapshot is stale): window_end_words
WINDOW_END_SAID_AFTER_S = 3600.0


def window_end_words(snap: QualitySnapshot, stale: bool) -> str:
    """Where the 24 h windows end, `` to 2026-12-04 06:00 UTC`` (event time: the snapshot's
    ``as_of``), when they are not about now: ``as_of`` over ``WINDOW_END_SAID_AFTER_S`` from
    the snapshot's publication (a backfill, a clock ahead), or the snapshot ``stale``;
    else ``""``. From the snapshot and its staleness step only, as the rest of a health."""
    lag = abs((snap.emitted_at - snap.as_of).total_seconds())
    if lag <= WINDOW_END_SAID_AFTER_S and not stale:
        return ""
    end = snap.as_of.astimezone(UTC) if snap.as_of.tzinfo is not None else snap.as_of
    return f" to {end:%Y-%m-%d %H:%M} UTC"


def staleness_step(age_s: float, stale_after_s: float) -> int:
    """0 while the newest snapshot arrived within ``stale_after_s``; then 1, 2, ... up to
    ``FRESHNESS_STEPS``, one more each ``3 * stale_after_s / FRESHNESS_STEPS`` (step k for
    an age in ``(staleness_step_starts(k), staleness_step_starts(k + 1)]``)."""
    if age_s <= stale_after_s:
        return 0
    width = 3 * stale_after_s / FRESHNESS_STEPS
    return min(FRESHNESS_STEPS, math.ceil((age_s - stale_after_s) / width))


def staleness_step_starts(step: int, stale_after_s: float) -> float:
    """The age after which ``step`` begins; infinite past the last step."""
    if step <= 0:
        return 0.0
    if step > FRESHNESS_STEPS:
        return math.inf
    return stale_after_s + (step - 1) * 3 * stale_after_s / FRESHNESS_STEPS


class AgainstTarget(BaseModel):
    """Random-sample verdicts of a window against an accuracy target."""

    decisions: int | None = Field(default=None, description="decisions in the window")
    n: int = Field(description="random-sample QA verdicts")
    errors: int
    accuracy: float | None = Field(description="(n - errors) / n; null when n = 0")
    interval: tuple[float, float] | None = Field(
        description="Wilson interval of the accuracy at the target confidence; null when n = 0"
    )
    prob_at_least_target: float | None = Field(
        description="P(accuracy >= target): Jeffreys Beta(1/2, 1/2) prior, binomial "
        "likelihood; null when n = 0"
    )
    rule_upper: float | None = Field(
        default=None,
        description="the exact (Clopper-Pearson) upper bound of the accuracy at the below-target rule's "
        "confidence (the snapshot's target_rule); null when n = 0",
    )
    below_target_with_confidence: bool = Field(
        description="rule_upper is under the target (the below-target rule)"
    )


class SiteHealth(BaseModel):
    """One site of a queue against its target, over the last day and week."""

    site: str = Field(description="the site id; `(other)`: the sites past the per-queue bound")
    target: float
    target_source: TargetSource = Field(
        description="queue_site: QW_SITE_TARGETS[queue/site]; site: QW_SITE_TARGETS[site]; "
        "queue: the queue's target (QW_ACCURACY_TARGET)"
    )
    last_24h: AgainstTarget
    last_7d: AgainstTarget
    explanation: str


SiteTarget = Callable[[str, str], tuple[float, TargetSource]]  # (queue, site) -> target


@functools.lru_cache(maxsize=65536)
def _against(
    successes: int, n: int, target: float, confidence: float, rule_tail: float
) -> tuple[float, float, float, float]:
    """Wilson bounds, P(accuracy >= target) and the rule's exact upper bound, cached: a
    site's counts change far less often than its queue's snapshot arrives."""
    ci = wilson_interval(successes, n, confidence)
    rule = exact_upper_bound(successes, n, rule_tail)
    return ci.lower, ci.upper, prob_at_least(successes, n, target), rule


def rule_tail(snap: QualitySnapshot, confidence: float) -> float:
    """The one-sided tail of the below-target rule's exact bound: the scorer's
    (``target_rule``), or ``1 - confidence`` for a snapshot from before it was published."""
    return snap.target_rule.tail_per_look if snap.target_rule is not None else 1 - confidence


def against_target(
    n: int, errors: int, target: float, confidence: float, decisions: int | None = None,
    rule: float | None = None,
) -> AgainstTarget:  # fmt: skip
    """``n`` random verdicts with ``errors`` against ``target``: the accuracy, its Wilson
    interval at ``confidence``, P(accuracy >= target) and the below-target rule, whose
    exact upper bound has the one-sided tail ``rule`` (default: ``1 - confidence``)."""
    if n == 0:
        return AgainstTarget(
            decisions=decisions, n=0, errors=0, accuracy=None, interval=None,
            prob_at_least_target=None, below_target_with_confidence=False,
        )  # fmt: skip
    lower, upper, prob, rule_upper = _against(
        n - errors, n, target, confidence, 1 - confidence if rule is None else rule
    )
    return AgainstTarget(
        decisions=decisions, n=n, errors=errors, accuracy=(n - errors) / n,
        interval=(lower, upper), prob_at_least_target=prob, rule_upper=rule_upper,
        below_target_with_confidence=rule_upper < target,
    )  # fmt: skip


def site_health(
    snap: QualitySnapshot, site_target: SiteTarget, confidence: float, min_sample: int
) -> list[SiteHealth]:
    """Every site of the snapshot against its target, by site id (``(other)`` last)."""
    out = []
    rule = rule_tail(snap, confidence)
    for site in sorted(snap.sites, key=lambda s: (s == OTHER_SITES, s)):
        w = snap.sites[site]
        target, source = site_target(snap.queue_id, site)
        day = against_target(w.n_24h, w.errors_24h, target, confidence, w.decisions_24h, rule)
        week = against_target(w.n_7d, w.errors_7d, target, confidence, w.decisions_7d, rule)
        out.append(SiteHealth(
            site=site, target=target, target_source=source, last_24h=day, last_7d=week,
            explanation=_site_words(site, target, confidence, rule, min_sample, day, week),
        ))  # fmt: skip
    return out


def _site_words(
    site: str, target: float, confidence: float, rule: float, min_sample: int,
    day: AgainstTarget, week: AgainstTarget,
) -> str:  # fmt: skip
    def one(label: str, w: AgainstTarget) -> str:
        if w.n == 0 or w.accuracy is None or w.interval is None:
            return f"{label}: no random QA verdicts"
        text = (
            f"{label} accuracy {w.accuracy:.1%} ({confidence:.0%} interval "
            f"{w.interval[0]:.1%}-{w.interval[1]:.1%}, n={w.n:,}), "
            f"P(>= target) {_chance(w.prob_at_least_target)}"
        )
        if w.n < min_sample:
            return text + f": too few verdicts to say (need {min_sample})"
        if w.below_target_with_confidence and w.rule_upper is not None:
            return text + (
                f": below target with confidence (the rule's upper {confidence_words(1 - rule)} "
                f"bound {percent_apart(w.rule_upper, target)})"
            )
        return text

    return f"site {site}, target {target:.1%}: {one('24h', day)}; {one('7d', week)}"


def sites_below_target(sites: list[SiteHealth], min_sample: int) -> list[SiteHealth]:
    """The named sites whose 24 h accuracy is below their target with confidence, on at
    least ``min_sample`` random verdicts: what makes a queue's band red. ``(other)``, the
    sum of the sites past the per-queue bound, is not a site with a contract: never one."""
    return [
        s for s in sites
        if s.site != OTHER_SITES and s.last_24h.below_target_with_confidence
        and s.last_24h.n >= min_sample
    ]  # fmt: skip


def site_below_words(site: SiteHealth) -> str:
    """``site dublin: 24h accuracy 74.1% is below its 95.0% target with confidence (n=412)``"""
    day = site.last_24h
    acc = day.accuracy if day.accuracy is not None else 0.0
    return (
        f"site {site.site}: 24h accuracy {acc:.1%} is below its {site.target:.1%} target "
        f"with confidence (n={day.n:,})"
    )


def site_band_words(site: SiteHealth, rule: float) -> str:
    """Why a site makes the band red, in one line: ``site dublin below target 90.0%: 84.1%
    (upper 99.999% bound 88.0%)``, the bound the below-target rule compares (its one-sided
    tail ``rule``)."""
    day = site.last_24h
    acc = day.accuracy if day.accuracy is not None else 0.0
    upper = day.rule_upper if day.rule_upper is not None else acc
    return (
        f"site {site.site} below target {site.target:.1%}: {acc:.1%} "
        f"(upper {confidence_words(1 - rule)} bound {percent_apart(upper, site.target)})"
    )


def _chance(p: float | None) -> str:
    """A probability in words that never rounds to a certainty it is not."""
    if p is None:
        return "unknown"
    if p > 0.995:
        return ">99%"
    if p < 0.005:
        return "<1%"
    return f"{p:.0%}"


class Health(BaseModel):
    queue_id: str
    score: float | None
    band: Band
    components: dict[str, float]
    explanation: str = Field(
        description="what the score and the band rest on, in words. Its 24 h are of event "
        "time, up to the queue's newest event (the snapshot's `as_of`): when that is over an "
        "hour from the snapshot's publication (a backfill) or the snapshot is stale, it says "
        "where they end (`24h accuracy to 2026-12-04 06:00 UTC: 97.1% meets the 90.0% "
        "target ...`)"
    )
    accuracy_24h: float | None
    accuracy_24h_interval: tuple[float, float] | None = None  # Wilson, at target_confidence
    below_target_with_confidence: bool = False  # what the below-target rule alerts on
    accuracy_24h_rule_upper: float | None = Field(
        default=None,
        description="the exact (Clopper-Pearson) upper bound of the 24h accuracy at the below-target rule's "
        "confidence: under the target, the rule holds (null with too few verdicts)",
    )
    target_rule: TargetRule | None = Field(
        default=None,
        description="the below-target rule's design, as the scorer runs it: the confidence of "
        "the bound it compares with the target, its looks a day and the false alarms a day it "
        "may raise at the target (null: the scorer published none yet)",
    )
    n_24h: int
    target: float
    prob_at_least_target: float | None = None  # P(24h accuracy >= target), as for a site
    band_reason: str | None = Field(
        default=None,
        description="why the band is not green, in one line; set for every band but green: "
        "the queue or a site below its target with confidence, else an open alert, else what "
        "the score's components say (`score 51: 24h accuracy 87.4% under the 90.0% target; "
        "...`), else too few verdicts. When it holds a band below the components' score, the "
        "score is capped at the band's top (59 red, 79 amber); null while green",
    )
    firing_alerts: list[str] = Field(
        description="the rules of the queue's open alerts (firing or acknowledged), each once, "
        "by name; `GET /v1/alerts?status=firing` has every alert, with its `site`"
    )
    baseline: str = Field(
        default="estimated",
        description="`learning (n/N)` during Phase I (n of its N subgroups so far), else "
        "`estimated` (frozen from a Phase I) or `configured` (a standard)",
    )
    last_baseline_reset: str | None = Field(
        default=None, description="the last baseline reset: when (UTC), by whom, why"
    )
    sites: list[SiteHealth] = Field(
        default_factory=list, description="per site, last 24 h and 7 d, against its target"
    )


def band_for(score: float) -> Band:
    if score >= 80:
        return "green"
    if score >= 60:
        return "amber"
    return "red"


def score_words(
    components: dict[str, float], acc: float, target: float, chart: str, stale: str | None
) -> list[str]:
    """What pulls a score down, in words: each component under 100, weightiest first."""
    words = []
    if components["accuracy"] < 100:
        words.append(f"24h accuracy {acc:.1%} under the {target:.1%} target")
    if components["stability"] < 100:
        words.append(chart)
    if components["freshness"] < 100 and stale is not None:
        words.append(stale)
    return words


def too_small(snap: QualitySnapshot) -> str:
    """Why a Phase I is slow, when its subgroups were too small to count (a quiet queue
    stays learning for ever otherwise, with nothing to say why), and the cures: this
    queue's own baseline (a standard: its Bernoulli CUSUM, the chart for a quiet queue, runs
    then), or, for every queue, smaller or longer subgroups. ``""`` when none was."""
    k = snap.phase1_too_small
    if not k or snap.min_subgroup_n is None:
        return ""
    most = snap.phase1_too_small_max_n
    had = f"at most {most}" if most is not None else "fewer"
    return (
        f"; {k:,} subgroup{'s' if k != 1 else ''} skipped, too small ({had} random verdicts "
        f"of the {snap.min_subgroup_n} a subgroup needs): give this queue a baseline "
        f"(QW_SCORER_BASELINE_P, e.g. '{{\"{snap.queue_id}\": 0.05}}'), or, for every queue, "
        "lower QW_SCORER_MIN_SUBGROUP_N or lengthen QW_SCORER_SUBGROUP_SECONDS"
    )


def baseline_words(snap: QualitySnapshot) -> tuple[str, str | None]:
    """The queue's baseline in words (``learning (5/24)``, ``estimated``, ``configured``)
    and its last reset (``2026-11-25 10:05 UTC by key 3f9c0a1b (lead): policy v4``)."""
    if snap.baseline_state == "phase1":
        total = f"/{snap.phase1_length}" if snap.phase1_length else ""
        state = f"learning ({snap.phase1_subgroups}{total})"
    else:
        state = snap.baseline_source or "estimated"
    r = snap.last_reset
    reset = None
    if r is not None:
        when = (r.requested_at or r.at).strftime("%Y-%m-%d %H:%M UTC")
        reset = f"{when} by {r.actor or 'unknown'}: {r.reason or 'no reason given'}"
    return state, reset


def health(
    snap: QualitySnapshot,
    *,
    target: float,
    confidence: float = 0.95,
    min_sample: int,
    age_s: float,
    stale_after_s: float,
    firing: list[str],
    site_target: SiteTarget | None = None,
) -> Health:
    """``site_target``: each site's target (``QualitySettings.site_target``); None leaves
    the sites out."""
    sites = [] if site_target is None else site_health(snap, site_target, confidence, min_sample)
    reasons: list[str] = []
    step = staleness_step(age_s, stale_after_s)
    freshness = 100.0 * (1 - step / FRESHNESS_STEPS)
    stale = None
    if step:  # the band's lower edge: the words change with the band, not every minute
        edge = staleness_step_starts(step, stale_after_s)
        stale = f"no new data for over {edge / 60:.0f} min"
        reasons.append(stale)

    baseline, last_reset = baseline_words(snap)
    # the 24 h of event time to the newest event: said when that is not about now
    end = window_end_words(snap, stale=step > 0)
    if snap.accuracy_24h is None or snap.n_24h < min_sample:
        few = f"only {snap.n_24h} random QA verdicts in 24h (need {min_sample})"
        day_words = f"the 24h{end}" if end else "24h"
        reasons.insert(
            0, f"only {snap.n_24h} random QA verdicts in {day_words} (need {min_sample}): "
            "too few to say",
        )  # fmt: skip
        open_rules = f"; alert firing: {', '.join(sorted(set(firing)))}" if firing else ""
        return Health(
            baseline=baseline,
            last_baseline_reset=last_reset,
            queue_id=snap.queue_id,
            score=None,
            band="insufficient_data",
            components={"freshness": round(freshness, 1)},
            explanation="; ".join(reasons),
            accuracy_24h=snap.accuracy_24h,
            n_24h=snap.n_24h,
            target=target,
            band_reason=few + open_rules,
            firing_alerts=sorted(set(firing)),
            sites=sites,
        )

    acc = snap.accuracy_24h
    n = snap.n_24h
    rule = rule_tail(snap, confidence)
    day = against_target(n, n - round(acc * n), target, confidence, rule=rule)
    assert day.interval is not None
    assert day.rule_upper is not None
    lower, upper = day.interval
    below = day.below_target_with_confidence
    accuracy = 100.0 if acc >= target else max(0.0, 100.0 - (target - acc) * 1000.0)
    rule_bound = f"upper {confidence_words(1 - rule)} bound {percent_apart(day.rule_upper, target)}"
    bound = f"the rule's {rule_bound}"
    said = f"24h accuracy{end}: {acc:.1%}" if end else f"24h accuracy {acc:.1%}"
    if acc >= target:
        reasons.insert(0, f"{said} meets the {target:.1%} target (n={n:,})")
    elif below:
        # the scorer looks once a subgroup closes: until then no alert says so yet
        waiting = (
            "" if "accuracy_24h_below_target" in firing
            else "; the scorer's rule alerts when it next looks, once a subgroup closes"
        )  # fmt: skip
        reasons.insert(
            0, f"{said}, {bound}: below the {target:.1%} target with "
            f"confidence (n={n:,}){waiting}",
        )  # fmt: skip
    else:
        reasons.insert(
            0, f"{said}, {bound}: not yet below the {target:.1%} target with "
            f"confidence, so no below-target alert (n={n:,})",
        )  # fmt: skip

    signals = set(snap.last_point.signals) if snap.last_point else set()
    if "cusum_upper" in firing:
        stability = 20.0
        chart = "the per-verdict CUSUM signals a rise in errors"
    elif "cusum_site_upper" in firing:
        stability = 20.0
        at = [s for s, c in snap.site_cusums.items() if c.recovery is not None]
        where = f" at site {', '.join(at)}" if at else " at one of its sites"
        chart = f"the per-verdict CUSUM signals a rise in errors{where}"
    elif "p_chart_ucl" in signals or "p_chart_ucl" in firing:
        stability = 20.0
        chart = "the last subgroup's error rate is above its control limit"
    elif "cusum_lower" in firing:
        stability = 50.0
        chart = "errors dropped suddenly (is the QA feed broken?)"
    elif "ewma_ucl" in signals or "ewma_ucl" in firing:
        stability = 50.0
        chart = "the EWMA shows a sustained rise in errors"
    else:
        stability = 100.0
        if snap.baseline_state == "phase1":
            since = f" since the reset of {last_reset}" if last_reset else ""
            chart = (
                f"baseline {baseline}: Phase I{since}{too_small(snap)}; the target rule "
                "applies meanwhile"
            )
        else:
            chart = "control charts in control"
    reasons.append(chart)

    components = {"accuracy": accuracy, "stability": stability, "freshness": freshness}
    score = sum(WEIGHTS[k] * v for k, v in components.items())
    band = band_for(score)
    failing_sites = sites_below_target(sites, min_sample)
    reasons.extend(site_below_words(site) for site in failing_sites)
    held: list[str] = []  # what holds the band below the score's
    if below or failing_sites:
        # failing its target (or a site its contract), shown so: not "watch" because the
        # score is 74
        # what the tile does not show already comes first: which sites (a wall cuts the
        # line after two lines; the 24h accuracy is on the tile beside it)
        if len(failing_sites) > 1:
            held.append(f"sites {', '.join(s.site for s in failing_sites)} below target")
        elif failing_sites:
            held.append(site_band_words(failing_sites[0], rule))
        if below:
            held.append(f"24h accuracy {acc:.1%} below target {target:.1%} ({rule_bound})")
        if len(failing_sites) > 1:
            held.extend(site_band_words(site, rule) for site in failing_sites)
        band = "red"
    if firing and not held:
        held.append(f"alert firing: {', '.join(sorted(set(firing)))}")
    if firing and band == "green":
        band = "amber"  # a wall screen must not show green while an alert is open
    if acc < target and not below and band == "green":
        # under the target, not yet below it with the rule's confidence: not green either
        # (an operations room sees 88% against 90% as a queue to watch, and Prometheus's
        # QueueAccuracyBelowTarget fires on the point estimate)
        band = "amber"
        held.append(
            f"24h accuracy {acc:.1%} under target {target:.1%}, not yet below it with the "
            f"rule's confidence ({rule_bound})"
        )
    if not held and band != "green":  # the score's own band: what its components say
        held.append(
            f"score {score:.0f}: " + "; ".join(score_words(components, acc, target, chart, stale))
        )
    band_reason = "; ".join(held) or None  # why the band is not green, whatever the score
    if band in SCORE_CAP and score > SCORE_CAP[band]:
        score = SCORE_CAP[band]
        reasons.append(f"score capped at {score:.0f} ({band}): {band_reason}")
    if firing:
        counts = {rule: firing.count(rule) for rule in dict.fromkeys(firing)}
        reasons.append(
            "alerts firing: "
            + ", ".join(f"{r} ({k} signals)" if k > 1 else r for r, k in counts.items())
        )
    return Health(
        baseline=baseline,
        last_baseline_reset=last_reset,
        queue_id=snap.queue_id,
        score=round(score, 1),
        band=band,
        components={k: round(v, 1) for k, v in components.items()},
        explanation="; ".join(reasons),
        accuracy_24h=acc,
        accuracy_24h_interval=(lower, upper),
        accuracy_24h_rule_upper=day.rule_upper,
        below_target_with_confidence=below,
        target_rule=snap.target_rule,
        n_24h=snap.n_24h,
        target=target,
        prob_at_least_target=day.prob_at_least_target,
        band_reason=band_reason,
        firing_alerts=sorted(set(firing)),
        sites=sites,
    )
