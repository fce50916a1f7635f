"""Detection benchmark: false alarms and detection delays of our charts and of river's detectors.

    .venv/bin/python bench/detection.py [--seed S] [--quick] [--jobs N]

Simulated per-verdict Bernoulli streams (1 = the decision was found incorrect) with an
in-control error rate p0 = 5%, and step shifts to 7.5%, 10% and 15% (and 6%, a shift of
0.65σ per subgroup of 200, where the accumulating charts should shine).  Every detector sees
the same streams (common random numbers), verdict by verdict or in subgroups of 200.

Detectors:

* ours (``shared.stats``), all one-sided (they watch for *more* errors) and all using the
  frozen baseline p0 as a standard: p-chart with 3σ limits, p-chart with probability limits
  (``CountModel``), p-chart with the Western Electric rules and with the Nelson rules 1, 2,
  3, 5 and 6 (4, 7 and 8 look for oscillation, stratification and mixtures, not shifts),
  EWMA with λ = 0.2 and 0.1, tabular CUSUM of the z-scores (k = 0.5), and the Bernoulli
  CUSUM per verdict designed for p1 = 7.5% and for p1 = 10% (h from ``choose_h``);
* river's drift detectors ADWIN, PageHinkley (mode "up"), DDM and EDDM, fed the 0/1 error
  stream verdict by verdict.

Measures, in verdicts:

* **false alarms per 1,000 in-control verdicts**, counted on a long in-control stream; after
  an alarm our charts restart (as after a handled alarm) and river's detectors continue as
  they do by themselves (DDM, EDDM and PageHinkley reset, ADWIN drops the old window);
* **detection delay** after a step shift at verdict τ = 5,000 + U(0, 200) (so the change
  falls anywhere inside a subgroup): the verdicts from the change to the first alarm, which
  for a subgroup chart includes waiting for the subgroup to close.  Alarms before τ are
  false alarms (the detector restarts and goes on); a run without an alarm within
  ``horizon`` verdicts after τ counts as missed.

Two comparisons: each detector at its **default** setting (ours: the library's designs;
river: its defaults), then at a **matched false-alarm rate**: each detector's threshold
(our L, α, zone unit, h; river's delta, threshold, drift_threshold, beta) is tuned by
bisection on one in-control stream so that it raises about ``target_far`` false alarms per
1,000 verdicts, and that rate is then checked on another, independent stream.  The
Bernoulli CUSUM needs no search: ``choose_h`` designs it for ARL0 = 1,000 / target_far
verdicts exactly, and the check stream confirms it.

Reproducible for a seed (any ``--jobs``); the default run takes a few minutes on 2 cores,
``--quick`` well under one.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from shared.stats import (
    NELSON_RULES,
    THREE_SIGMA_ALPHA,
    WESTERN_ELECTRIC_RULES,
    Baseline,
    BernoulliCusum,
    CountModel,
    CusumState,
    EwmaState,
    RuleState,
    choose_h,
    ewma_limit_for_arl0,
    limits_for,
    standardize,
)

Stream = NDArray[np.int8]


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One benchmark run.

    Attributes:
        seed: seed of every simulated stream.
        p0: in-control error rate.
        shifts: error rates after the step change.
        subgroup: verdicts per subgroup for the subgroup charts.
        change_at: in-control verdicts before the change (plus U(0, subgroup)).
        horizon: verdicts after the change before a run counts as missed.
        control_window: for the no-change control runs, the window after τ in which an
            alarm is counted (it is a false alarm there).
        delay_runs: runs per shift.
        far_verdicts: in-control verdicts on which false alarms are counted.
        tune_verdicts: in-control verdicts of the (independent) tuning stream.
        tune_steps: bisection steps when matching the false-alarm rate.
        target_far: false alarms per 1,000 verdicts of the matched comparison.
        bernoulli_p1: the shifts the Bernoulli CUSUMs are designed for (one chart each).
        default_arl0: in-control ARL (verdicts) of the Bernoulli CUSUM's default design
            (100,000 verdicts = 500 subgroups of 200, the ARL0 of the library's EWMA).
        jobs: worker processes.
    """

    seed: int = 2026
    p0: float = 0.05
    shifts: tuple[float, ...] = (0.06, 0.075, 0.10, 0.15)
    subgroup: int = 200
    change_at: int = 5_000
    horizon: int = 20_000
    control_window: int = 2_000
    delay_runs: int = 500
    far_verdicts: int = 2_000_000
    tune_verdicts: int = 2_000_000
    tune_steps: int = 12
    target_far: float = 0.1
    bernoulli_p1: tuple[float, ...] = (0.075, 0.10)
    default_arl0: float = 100_000.0
    jobs: int = 1


QUICK = {"delay_runs": 100, "far_verdicts": 400_000, "tune_verdicts": 300_000, "tune_steps": 9}


# --------------------------------------------------------------------------------------------
# Detectors: one interface for ours and river's
# --------------------------------------------------------------------------------------------


class Monitor(Protocol):
    """A detector fed either subgroups ``(errors, n)`` or single verdicts ``(0 or 1, 1)``."""

    def step(self, errors: int, n: int) -> bool:
        """Add the data; return whether the detector signals now."""
        ...

    def reset(self) -> None:
        """Restart after an alarm has been handled."""
        ...


class PChart:
    """Upper p-chart against a standard p0: signal when p > p0 + L sqrt(p0 (1 - p0) / n)."""

    def __init__(self, p0: float, nsigmas: float) -> None:
        self.baseline = Baseline.from_standard(p0)
        self.nsigmas = nsigmas
        self._ucl: dict[int, float] = {}

    def step(self, errors: int, n: int) -> bool:
        ucl = self._ucl.get(n)
        if ucl is None:
            ucl = self._ucl[n] = limits_for(self.baseline, n, self.nsigmas).ucl
        return errors / n > ucl

    def reset(self) -> None:
        pass


class ProbabilityLimitChart:
    """Upper probability limit on the error count: signal when P(E >= errors) <= alpha."""

    def __init__(self, p0: float, alpha: float) -> None:
        self.model = CountModel(p0)
        self.alpha = alpha
        self._count: dict[int, int] = {}

    def step(self, errors: int, n: int) -> bool:
        limit = self._count.get(n)
        if limit is None:
            limit = self._count[n] = self.model.upper_count(n, self.alpha)
        return errors >= limit

    def reset(self) -> None:
        pass


class RulesChart:
    """Run rules (upper side) on z-scores measured in units of ``zone`` sigmas.

    ``zone = 1`` is the textbook chart; the matched comparison scales all the zones (1σ, 2σ,
    3σ) together, the only threshold run rules have.
    """

    def __init__(self, p0: float, rules: Sequence[str], zone: float) -> None:
        self.baseline = Baseline.from_standard(p0)
        self.rules = tuple(rules)
        self.zone = zone
        self.state = RuleState(self.rules, "upper")

    def step(self, errors: int, n: int) -> bool:
        z = standardize(errors, n, self.baseline) / self.zone
        return bool(self.state.update(z))

    def reset(self) -> None:
        self.state = RuleState(self.rules, "upper")


class EwmaChart:
    """Upper side of :class:`~shared.stats.ewma.EwmaState`."""

    def __init__(self, p0: float, lam: float, nsigmas: float) -> None:
        self.state = EwmaState(p0, lam, nsigmas)

    def step(self, errors: int, n: int) -> bool:
        return self.state.update(errors, n).upper_signal

    def reset(self) -> None:
        self.state.reset()


class ZCusumChart:
    """Upper side of the tabular CUSUM of z-scores."""

    def __init__(self, p0: float, k: float, h: float) -> None:
        self.baseline = Baseline.from_standard(p0)
        self.state = CusumState(k, h)

    def step(self, errors: int, n: int) -> bool:
        return self.state.update(standardize(errors, n, self.baseline)).upper_signal

    def reset(self) -> None:
        self.state.reset()


class BernoulliChart:
    """:class:`~shared.stats.cusum.BernoulliCusum` designed by ``choose_h`` for an ARL0."""

    def __init__(self, p0: float, p1: float, arl0: float) -> None:
        self.state = BernoulliCusum(choose_h(p0, p1, arl0))

    def step(self, errors: int, n: int) -> bool:
        return self.state.update(errors == 1).signal

    def reset(self) -> None:
        self.state.reset()


class RiverDetector:
    """A river drift detector fed the 0/1 error of each verdict.

    river's detectors restart by themselves after a drift, so :meth:`reset` does nothing.
    """

    def __init__(self, detector: Any) -> None:
        self.detector = detector

    def step(self, errors: int, n: int) -> bool:
        self.detector.update(errors)
        return bool(self.detector.drift_detected)

    def reset(self) -> None:
        pass


def _adwin(delta: float) -> Monitor:
    from river.drift import ADWIN

    adwin: Any = ADWIN  # partly typed in river; the other detectors are untyped
    return RiverDetector(adwin(delta=delta))


def _page_hinkley(threshold: float) -> Monitor:
    from river.drift import PageHinkley

    return RiverDetector(PageHinkley(threshold=threshold, mode="up"))


def _ddm(drift_threshold: float) -> Monitor:
    from river.drift.binary import DDM

    return RiverDetector(DDM(drift_threshold=drift_threshold))


def _eddm(beta: float) -> Monitor:
    from river.drift.binary import EDDM

    return RiverDetector(EDDM(alpha=max(0.95, beta), beta=beta))


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """A detector and the threshold tuned for the matched comparison.

    Attributes:
        name: shown in the tables.
        family: ``"ours"`` or ``"river"``.
        per_verdict: fed verdict by verdict (else subgroup by subgroup).
        param: the threshold's name.
        default: its default value.
        build: makes a fresh detector for a threshold value.
        bracket: search interval of the threshold (``None``: designed analytically).
        log_scale: search the threshold on a log scale.
        more_alarms_when_larger: the false-alarm rate grows with the threshold value.
        matched: analytic setting for the matched rate (instead of a search), if any.
    """

    name: str
    family: Literal["ours", "river"]
    per_verdict: bool
    param: str
    default: float
    build: Callable[[float], Monitor]
    bracket: tuple[float, float] | None
    log_scale: bool = False
    more_alarms_when_larger: bool = False
    matched: float | None = None


def detector_specs(cfg: Config) -> list[DetectorSpec]:
    """Every detector of the benchmark, in table order."""
    p0 = cfg.p0
    upper_rules = tuple(n for n in NELSON_RULES if n not in ("nelson4", "nelson7", "nelson8"))
    return [
        DetectorSpec("p-chart 3σ", "ours", False, "L", 3.0,
                     partial(PChart, p0), (1.0, 5.0)),
        DetectorSpec("p-chart probability limits", "ours", False, "α", THREE_SIGMA_ALPHA,
                     partial(ProbabilityLimitChart, p0), (1e-7, 0.3), True, True),
        DetectorSpec("p-chart + WECO rules", "ours", False, "zone unit", 1.0,
                     partial(RulesChart, p0, WESTERN_ELECTRIC_RULES), (0.5, 3.0)),
        DetectorSpec("p-chart + Nelson 1,2,3,5,6", "ours", False, "zone unit", 1.0,
                     partial(RulesChart, p0, upper_rules), (0.5, 3.0)),
        DetectorSpec("EWMA λ=0.2", "ours", False, "L", ewma_limit_for_arl0(0.2, 500),
                     partial(EwmaChart, p0, 0.2), (0.5, 5.0)),
        DetectorSpec("EWMA λ=0.1", "ours", False, "L", 2.814,
                     partial(EwmaChart, p0, 0.1), (0.5, 5.0)),
        DetectorSpec("CUSUM of z, k=0.5", "ours", False, "h", 5.0,
                     partial(ZCusumChart, p0, 0.5), (0.2, 20.0)),
        *(DetectorSpec(f"Bernoulli CUSUM p1={p1:.1%}", "ours", True, "ARL0",
                       cfg.default_arl0, partial(BernoulliChart, p0, p1), None,
                       matched=1000.0 / cfg.target_far) for p1 in cfg.bernoulli_p1),
        DetectorSpec("river ADWIN", "river", True, "delta", 0.002, _adwin, (1e-12, 0.9),
                     True, True),
        DetectorSpec("river PageHinkley (up)", "river", True, "threshold", 50.0,
                     _page_hinkley, (1.0, 1000.0), True),
        DetectorSpec("river DDM", "river", True, "drift_threshold", 3.0, _ddm, (0.5, 15.0)),
        DetectorSpec("river EDDM", "river", True, "beta", 0.9, _eddm, (0.05, 0.995),
                     more_alarms_when_larger=True),
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------
# Streams and measurements
# --------------------------------------------------------------------------------------------


def in_control_stream(cfg: Config, length: int, purpose: int) -> Stream:
    """A seeded in-control stream (``purpose`` 0: false-alarm count, 1: tuning)."""
    rng = np.random.default_rng([cfg.seed, 0, purpose])
    return (rng.random(length) < cfg.p0).astype(np.int8)


def shift_run(cfg: Config, run: int, p1: float) -> tuple[Stream, int]:
    """Stream of run ``run`` with a shift to ``p1`` at τ, and τ.

    The uniforms depend on the run only, so the shifts share them (common random numbers):
    the in-control part is the same for every shift and every detector.
    """
    rng = np.random.default_rng([cfg.seed, 1, run])
    tau = cfg.change_at + int(rng.integers(0, cfg.subgroup))
    uniforms = rng.random(tau + cfg.horizon)
    rate = np.full(uniforms.size, p1)
    rate[:tau] = cfg.p0
    return (uniforms < rate).astype(np.int8), tau


def _steps(stream: Stream, per_verdict: bool, subgroup: int) -> tuple[list[int], int]:
    """The detector's inputs (verdicts or subgroup counts) and the verdicts per input."""
    if per_verdict:
        return stream.tolist(), 1
    whole = stream.size // subgroup * subgroup
    return stream[:whole].reshape(-1, subgroup).sum(axis=1, dtype=np.int64).tolist(), subgroup


def count_alarms(spec: DetectorSpec, value: float, stream: Stream, subgroup: int) -> int:
    """Alarms on an in-control stream (the detector restarts after each)."""
    monitor = spec.build(value)
    inputs, size = _steps(stream, spec.per_verdict, subgroup)
    alarms = 0
    step = monitor.step
    for errors in inputs:
        if step(errors, size):
            alarms += 1
            monitor.reset()
    return alarms


def delay(spec: DetectorSpec, value: float, stream: Stream, tau: int, subgroup: int) -> int | None:
    """Verdicts from the change to the first alarm after it, or ``None`` if missed."""
    monitor = spec.build(value)
    inputs, size = _steps(stream, spec.per_verdict, subgroup)
    seen = 0
    for errors in inputs:
        seen += size
        if monitor.step(errors, size):
            if seen > tau:
                return seen - tau
            monitor.reset()  # a false alarm before the change
    return None


@dataclass(frozen=True, slots=True)
class DelayStats:
    """Detection delays (verdicts) over the runs of one shift."""

    shift: float
    runs: int
    delays: tuple[int, ...]
    """Delays of the runs that detected the shift within the horizon."""

    @property
    def missed(self) -> int:
        return self.runs - len(self.delays)

    @property
    def median(self) -> float | None:
        """Median over all runs, missed runs counting as infinite (None if half missed)."""
        if 2 * self.missed >= self.runs:
            return None
        ordered = sorted(self.delays) + [math.inf] * self.missed
        value = statistics.median(ordered)
        return None if math.isinf(value) else float(value)

    @property
    def mean(self) -> float | None:
        """Mean over the detected runs (see the report for the bound with missed runs)."""
        return statistics.fmean(self.delays) if self.delays else None


@dataclass(frozen=True, slots=True)
class Measurement:
    """One detector at one setting.

    Attributes:
        value: the threshold.
        alarms: false alarms on ``verdicts`` in-control verdicts.
        delays: detection delays per shift.
        control_alarms: no-change runs (same streams, no shift) with an alarm within
            ``control_window`` verdicts after τ; with a constant alarm rate this would be
            about ``1 - exp(-window × rate)`` of the runs, more means the detector raises
            more false alarms at that age than on average (and some "detections" are
            false alarms).
    """

    value: float
    alarms: int
    verdicts: int
    delays: tuple[DelayStats, ...]
    control_alarms: int
    control_runs: int

    @property
    def far(self) -> float:
        """False alarms per 1,000 in-control verdicts."""
        return 1000.0 * self.alarms / self.verdicts


@dataclass(frozen=True, slots=True)
class DetectorResult:
    name: str
    family: str
    param: str
    default: Measurement
    matched: Measurement
    tuned_far: float
    """False alarms per 1,000 verdicts on the tuning stream at the matched setting."""
    tuned: bool
    """Whether the matched setting came from the search (else analytic)."""
    seconds: float


def measure(spec: DetectorSpec, value: float, cfg: Config) -> Measurement:
    """False alarms on the check stream, and delays for every shift."""
    alarms = count_alarms(spec, value, in_control_stream(cfg, cfg.far_verdicts, 0), cfg.subgroup)
    per_shift: dict[float, list[int]] = {shift: [] for shift in cfg.shifts}
    control = 0
    for run in range(cfg.delay_runs):
        for shift in cfg.shifts:
            stream, tau = shift_run(cfg, run, shift)
            found = delay(spec, value, stream, tau, cfg.subgroup)
            if found is not None:
                per_shift[shift].append(found)
        stream, tau = shift_run(cfg, run, cfg.p0)  # the same run without a change
        found = delay(spec, value, stream[: tau + cfg.control_window + cfg.subgroup], tau,
                      cfg.subgroup)  # fmt: skip
        control += found is not None and found <= cfg.control_window
    stats = tuple(DelayStats(s, cfg.delay_runs, tuple(per_shift[s])) for s in cfg.shifts)
    return Measurement(value, alarms, cfg.far_verdicts, stats, control, cfg.delay_runs)


def tune(spec: DetectorSpec, cfg: Config) -> tuple[float, float]:
    """The threshold whose false-alarm rate on the tuning stream is nearest the target.

    Bisection on the bracket (the rate is monotone in the threshold; with common random
    numbers it is a step function), then the best of the values tried.  Returns the value
    and its rate per 1,000 verdicts.
    """
    assert spec.bracket is not None
    stream = in_control_stream(cfg, cfg.tune_verdicts, 1)
    floor = 0.5 * 1000.0 / cfg.tune_verdicts  # half an alarm, to compare zero on a log scale

    def rate(value: float) -> float:
        return 1000.0 * count_alarms(spec, value, stream, cfg.subgroup) / cfg.tune_verdicts

    lo, hi = spec.bracket
    tried = {lo: rate(lo), hi: rate(hi)}
    for _ in range(cfg.tune_steps):
        mid = math.sqrt(lo * hi) if spec.log_scale else (lo + hi) / 2.0
        tried[mid] = rate(mid)
        if (tried[mid] > cfg.target_far) == spec.more_alarms_when_larger:
            hi = mid
        else:
            lo = mid
    best = min(tried, key=lambda v: abs(math.log((tried[v] + floor) / cfg.target_far)))
    return best, tried[best]


def evaluate(spec: DetectorSpec, cfg: Config) -> DetectorResult:
    """Default setting and matched setting of one detector."""
    started = time.process_time()
    default = measure(spec, spec.default, cfg)
    if spec.bracket is None:
        assert spec.matched is not None
        value, tuned_far, searched = spec.matched, math.nan, False
    else:
        value, tuned_far = tune(spec, cfg)
        searched = True
    matched = measure(spec, value, cfg)
    seconds = time.process_time() - started
    return DetectorResult(
        spec.name, spec.family, spec.param, default, matched, tuned_far, searched, seconds
    )


def _evaluate_index(index: int, cfg: Config) -> DetectorResult:
    return evaluate(detector_specs(cfg)[index], cfg)


def run_benchmark(
    cfg: Config,
    names: Sequence[str] | None = None,
    progress: Callable[[DetectorResult], None] | None = None,
) -> list[DetectorResult]:
    """Evaluate the detectors (all, or those named), in parallel over ``cfg.jobs`` processes.

    The results are in table order and do not depend on the number of jobs.
    """
    specs = detector_specs(cfg)
    wanted = [i for i, s in enumerate(specs) if names is None or s.name in names]
    if names is not None and len(wanted) != len(set(names)):
        known = ", ".join(s.name for s in specs)
        raise ValueError(f"unknown detector in {list(names)}; known: {known}")
    # per-verdict detectors cost the most: start them first
    order = sorted(wanted, key=lambda i: not specs[i].per_verdict)
    results: dict[int, DetectorResult] = {}
    if cfg.jobs <= 1:
        for i in order:
            results[i] = _evaluate_index(i, cfg)
            if progress:
                progress(results[i])
    else:
        with ProcessPoolExecutor(max_workers=cfg.jobs) as pool:
            futures = {i: pool.submit(_evaluate_index, i, cfg) for i in order}
            for i in order:
                results[i] = futures[i].result()
                if progress:
                    progress(results[i])
    return [results[i] for i in wanted]


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _fmt_setting(param: str, value: float) -> str:
    if param in ("α", "delta"):
        return f"{param} = {value:.2g}"
    if param == "ARL0":
        return f"ARL0 = {value:,.0f}"
    return f"{param} = {value:.3g}"


def _fmt_delay(stats: DelayStats, horizon: int) -> str:
    median = "—" if stats.median is None else f"{stats.median:,.0f}"
    if not stats.missed:
        return f"{median} / {stats.mean:,.0f}"
    # missed runs count as the horizon: the mean is then a lower bound
    bound = statistics.fmean([*stats.delays, *[horizon] * stats.missed])
    share = stats.missed / stats.runs
    missed = f"{share:.0%}" if share >= 0.01 else "<1%"
    return f"{median} / ≥{bound:,.0f} ({missed} missed)"


def _unreliable(m: Measurement, cfg: Config, *, matched: bool) -> bool:
    """No stable false-alarm rate: off target on the check stream, or age-dependent."""
    expected = 1.0 - math.exp(-cfg.control_window * m.far / 1000.0)
    if m.control_alarms / m.control_runs > 2.0 * expected + 0.05:
        return True
    return matched and not 0.5 <= m.far / cfg.target_far <= 2.0


def _table(
    results: Sequence[DetectorResult], cfg: Config, which: Literal["default", "matched"]
) -> list[str]:
    shifts = " | ".join(f"→ {s:.1%}: median / mean" for s in cfg.shifts)
    far_head = "FA / 1,000" if which == "default" else "FA / 1,000 (tuning; check)"
    control_head = f"no change: FA ≤ {cfg.control_window:,} after τ (expected)"
    lines = [
        f"| detector | setting | {far_head} | {control_head} | {shifts} |",
        "|" + "---|" * (4 + len(cfg.shifts)),
    ]
    for r in results:
        m = r.default if which == "default" else r.matched
        far = f"{m.far:.3f}"
        if which == "matched":
            far = (f"{r.tuned_far:.3f}; " if r.tuned else "designed; ") + far
        expected = 1.0 - math.exp(-cfg.control_window * m.far / 1000.0)
        control = f"{m.control_alarms / m.control_runs:.0%} ({expected:.0%})"
        flag = " †" if _unreliable(m, cfg, matched=which == "matched") else ""
        cells = [r.name + flag, _fmt_setting(r.param, m.value), far, control]
        cells += [_fmt_delay(d, cfg.horizon) for d in m.delays]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def machine() -> str:
    """Platform, CPUs and versions, one line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = []
    for package in ("numpy", "scipy", "river"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs ({cpu}), Python "
        f"{platform.python_version()}, {', '.join(versions)}"
    )


def report(
    results: Sequence[DetectorResult], cfg: Config, command: str, wall: float, cpu: float
) -> str:
    """The markdown report printed at the end of a run."""
    lines = [
        "## Detection benchmark results",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}",
        f"- streams: p0 = {cfg.p0:.1%}; step shift at τ = {cfg.change_at:,} + U(0, "
        f"{cfg.subgroup}) verdicts; subgroups of {cfg.subgroup} verdicts; {cfg.delay_runs} runs "
        f"per shift, missed after {cfg.horizon:,} verdicts; false alarms counted on "
        f"{cfg.far_verdicts:,} in-control verdicts (tuning on another {cfg.tune_verdicts:,})",
        "- delays in verdicts from the change to the alarm, median / mean over the runs; a run "
        f"without an alarm {cfg.horizon:,} verdicts after the change is missed, counts as "
        "infinitely late in the median and as the horizon in the mean (then a lower bound, ≥); "
        "FA = false alarms",
        f"- no change: share of the same runs, without the shift, with an alarm in the "
        f"{cfg.control_window:,} verdicts after τ; in brackets what a constant alarm rate equal "
        "to the FA column would give",
        "",
        "### At default settings",
        "",
        *_table(results, cfg, "default"),
        "",
        f"### At a matched false-alarm rate (target {cfg.target_far:g} per 1,000 verdicts)",
        "",
        *_table(results, cfg, "matched"),
        "",
        "† no stable false-alarm rate: on the check stream it is more than 2× off the target, "
        "or without any change the detector alarms after τ far more often than its average "
        "rate says (its alarms cluster at some ages), so its delays are mostly false alarms.",
        "",
        f"runtime: {wall:.0f} s wall clock with {cfg.jobs} process(es); {cpu:.0f} s CPU summed "
        "over the detectors",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=Config.seed, help="seed of every stream")
    parser.add_argument("--quick", action="store_true", help="fewer runs (under a minute)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument("--target-far", type=float, default=Config.target_far,
                        help="matched false alarms per 1,000 verdicts")  # fmt: skip
    parser.add_argument("--only", action="append", help="run only this detector (repeatable)")
    args = parser.parse_args(argv)
    cfg = Config(seed=args.seed, jobs=max(1, args.jobs), target_far=args.target_far)
    if args.quick:
        cfg = replace(cfg, **QUICK)  # type: ignore[arg-type]
    command = "python bench/detection.py " + " ".join(sys.argv[1:] if argv is None else list(argv))
    started = time.perf_counter()

    def progress(result: DetectorResult) -> None:
        print(f"  {result.name}: {result.seconds:.1f} s", file=sys.stderr, flush=True)

    print(f"detection benchmark ({'quick' if args.quick else 'full'}), seed {cfg.seed}, "
          f"{cfg.jobs} process(es)", file=sys.stderr)  # fmt: skip
    results = run_benchmark(cfg, args.only, progress)
    wall = time.perf_counter() - started
    cpu = sum(r.seconds for r in results)
    print(report(results, cfg, command.strip(), wall, cpu))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
