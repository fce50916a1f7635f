"""The queue health score: one number 0-100, its components, and a plain-words explanation.

Pure: computed from the latest ``QualitySnapshot`` and the alerts firing for the queue.

Components (each 0-100) and weights:

* ``accuracy`` (0.6): 24h random-sample accuracy against the target. At or above the target
  scores 100; each percentage point under it costs 10. The explanation also says what the
  below-target rule needs: the upper Wilson bound of the 24h accuracy (at the configured
  confidence) under the target, so a lead sees why a red-looking number has no alert yet.
* ``stability`` (0.3): the control charts. 100 in control; 50 when the EWMA signals a
  sustained shift (or its alert is still firing) or the lower CUSUM's alert fires (errors
  vanished: a broken QA feed?); 20 when the upper CUSUM's alert fires or the last subgroup
  is above the p-chart's upper limit (or that alert is still firing).
* ``freshness`` (0.1): 100 when a snapshot arrived within ``stale_after_s``; falls linearly
  to 0 at four times that.

While any alert is firing for the queue the band is at best ``amber``.

``baseline`` says where the charts stand: ``learning (5/24)`` during a Phase I (the queue's
first, or the one a baseline reset began: the charts wait for it, the below-target rule
does not), ``estimated`` or ``configured`` once they run; ``last_baseline_reset`` says when,
by whom and why the baseline was last reset.

With fewer than ``min_sample`` verdicts in 24h the score is ``None`` and the band
``insufficient_data``: too few verdicts to say.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.events import QualitySnapshot
from shared.stats.intervals import wilson_interval

Band = Literal["green", "amber", "red", "insufficient_data"]
WEIGHTS = {"accuracy": 0.6, "stability": 0.3, "freshness": 0.1}


class Health(BaseModel):
    queue_id: str
    score: float | None
    band: Band
    components: dict[str, float]
    explanation: str
    accuracy_24h: float | None
    accuracy_24h_interval: tuple[float, float] | None = None  # Wilson, at target_confidence
    below_target_with_confidence: bool = False  # what the below-target rule alerts on
    n_24h: int
    target: float
    firing_alerts: list[str]
    baseline: str = Field(
        default="estimated",
        description="`learning (n/N)` during Phase I (n of its N subgroups so far), else "
        "`estimated` (frozen from a Phase I) or `configured` (a standard)",
    )
    last_baseline_reset: str | None = Field(
        default=None, description="the last baseline reset: when (UTC), by whom, why"
    )


def band_for(score: float) -> Band:
    if score >= 80:
        return "green"
    if score >= 60:
        return "amber"
    return "red"


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
) -> Health:
    reasons: list[str] = []
    freshness = (
        100.0
        if age_s <= stale_after_s
        else max(0.0, 100.0 * (1 - (age_s - stale_after_s) / (3 * stale_after_s)))
    )
    if freshness < 100:
        reasons.append(f"no new data for {age_s / 60:.0f} min")

    baseline, last_reset = baseline_words(snap)
    if snap.accuracy_24h is None or snap.n_24h < min_sample:
        reasons.insert(
            0, f"only {snap.n_24h} random QA verdicts in 24h (need {min_sample}): too few to say"
        )
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
            firing_alerts=firing,
        )

    acc = snap.accuracy_24h
    n = snap.n_24h
    ci = wilson_interval(round(acc * n), n, confidence)
    below = ci.upper < target
    accuracy = 100.0 if acc >= target else max(0.0, 100.0 - (target - acc) * 1000.0)
    bound = f"upper {confidence:.0%} bound {ci.upper:.1%}"
    if acc >= target:
        reasons.insert(0, f"24h accuracy {acc:.1%} meets the {target:.1%} target (n={n:,})")
    elif below:
        reasons.insert(
            0, f"24h accuracy {acc:.1%}, {bound}: below the {target:.1%} target with "
            f"confidence (n={n:,})",
        )  # fmt: skip
    else:
        reasons.insert(
            0, f"24h accuracy {acc:.1%}, {bound}: not yet below the {target:.1%} target with "
            f"confidence, so no below-target alert (n={n:,})",
        )  # fmt: skip

    signals = set(snap.last_point.signals) if snap.last_point else set()
    if "cusum_upper" in firing:
        stability = 20.0
        reasons.append("the per-verdict CUSUM signals a rise in errors")
    elif "p_chart_ucl" in signals or "p_chart_ucl" in firing:
        stability = 20.0
        reasons.append("the last subgroup's error rate is above its control limit")
    elif "cusum_lower" in firing:
        stability = 50.0
        reasons.append("errors dropped suddenly (is the QA feed broken?)")
    elif "ewma_ucl" in signals or "ewma_ucl" in firing:
        stability = 50.0
        reasons.append("the EWMA shows a sustained rise in errors")
    else:
        stability = 100.0
        if snap.baseline_state == "phase1":
            since = f" since the reset of {last_reset}" if last_reset else ""
            reasons.append(
                f"baseline {baseline}: Phase I{since}; the target rule applies meanwhile"
            )
        else:
            reasons.append("control charts in control")

    components = {"accuracy": accuracy, "stability": stability, "freshness": freshness}
    score = sum(WEIGHTS[k] * v for k, v in components.items())
    band = band_for(score)
    if firing and band == "green":
        band = "amber"  # a wall screen must not show green while an alert is open
        reasons.append(f"{len(firing)} alert(s) firing: {', '.join(sorted(set(firing)))}")
    return Health(
        baseline=baseline,
        last_baseline_reset=last_reset,
        queue_id=snap.queue_id,
        score=round(score, 1),
        band=band,
        components={k: round(v, 1) for k, v in components.items()},
        explanation="; ".join(reasons),
        accuracy_24h=acc,
        accuracy_24h_interval=(ci.lower, ci.upper),
        below_target_with_confidence=below,
        n_24h=snap.n_24h,
        target=target,
        firing_alerts=firing,
    )
