"""The detection benchmark's core on a tiny configuration: sane, reproducible numbers."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import pytest

from bench.detection import Config, DelayStats, report, run_benchmark

TINY = Config(
    seed=7,
    shifts=(0.15,),
    change_at=1_000,
    horizon=4_000,
    control_window=1_000,
    delay_runs=20,
    far_verdicts=40_000,
    tune_verdicts=40_000,
    tune_steps=4,
)


def test_a_large_shift_is_detected_quickly_and_reproducibly() -> None:
    names = ["p-chart 3σ", "EWMA λ=0.2", "Bernoulli CUSUM p1=10.0%"]
    results = run_benchmark(TINY, names)
    assert [r.name for r in results] == names
    for r in results:
        for m in (r.default, r.matched):
            (stats,) = m.delays
            assert stats.missed == 0, r.name
            assert all(d > 0 for d in stats.delays)
            assert stats.median is not None
            assert stats.median < 1_000  # 5% -> 15% is a 6.5-sigma shift per subgroup
            assert 0.0 <= m.far < 5.0
            assert 0 <= m.control_alarms <= m.control_runs
    again = run_benchmark(TINY, names[:1])  # same seed, same numbers (timings aside)
    assert replace(again[0], seconds=0.0) == replace(results[0], seconds=0.0)
    text = report(results, TINY, "python bench/detection.py --tiny", 1.0, 1.0)
    assert "| p-chart 3σ |" in text
    assert "matched false-alarm rate" in text


@pytest.mark.skipif(importlib.util.find_spec("river") is None, reason="river not installed")
def test_river_detectors_run_through_the_same_harness() -> None:
    (ddm,) = run_benchmark(TINY, ["river DDM"])
    assert ddm.family == "river"
    assert ddm.default.delays[0].median is not None
    assert ddm.tuned


def test_delay_statistics() -> None:
    stats = DelayStats(0.1, runs=4, delays=(10, 20, 30))
    assert stats.missed == 1
    assert stats.median == 25.0  # the missed run counts as infinitely late
    assert stats.mean == 20.0
    assert DelayStats(0.1, runs=4, delays=(10, 20)).median is None
