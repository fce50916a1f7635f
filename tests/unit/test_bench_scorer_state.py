"""bench/scorer_state.py on a small run: the worker's store code through process and commit,
every queue's totals exact, the same state written however often it runs."""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator

import pytest

from bench import scorer_state
from shared.collector import GC_YOUNG, settle_gc


@pytest.fixture(autouse=True)
def _collector_as_it_was() -> Iterator[None]:
    """The bench settles the collector as the worker does; the tests after these get
    Python's own settings back."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_gc_freezes_what_is_alive_and_collects_young_objects_less_often() -> None:
    settle_gc()
    assert gc.get_threshold() == (GC_YOUNG, 10, 10)
    assert gc.get_freeze_count() > 10_000  # the modules, and what the tests before made
    gc.unfreeze()
    assert gc.get_freeze_count() == 0


def test_a_small_run_counts_exactly_on_the_rocksdb_store(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert scorer_state.main(["--events", "3000", "--reps", "2", "--reduce"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert all(line.endswith("totals exact") for line in lines), lines
    assert lines[0].split(":")[0] == lines[1].split(":")[0]  # same batches and events


def test_codec_figures_of_v2_and_v3(capsys: pytest.CaptureFixture[str]) -> None:
    assert scorer_state.main(["--events", "2000", "--codec"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["v2", "v3"]
    v2, v3 = (int(line.split()[1]) for line in lines)
    assert v3 < v2  # field names once a batch, not once an event


def test_the_banded_lu_runs_when_asked_and_counts_the_same(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--arl lapack``: the designs without the C module (for an A/B in one run)."""
    module = importlib.import_module("shared.stats.cusum")
    monkeypatch.setattr(module, "_native", module._native)  # (put back after the test)
    assert scorer_state.main(["--events", "3000", "--reps", "1", "--arl", "lapack"]) == 0
    assert module._native is None
    assert capsys.readouterr().out.rstrip().endswith("totals exact")


def test_the_designs_bench_replays_what_the_scorer_asked_both_ways(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench import designs

    assert designs.main(["--events", "60000"]) == 0  # (40 designs; 30,000 make none)
    out = capsys.readouterr().out
    asked = int(out.split(" designs ", 1)[0])
    assert asked > 0
    assert f"identical, limit for limit: {asked} of {asked}" in out
    assert "| C |" in out
    assert "| LAPACK |" in out


def test_a_run_on_another_rocksdb_layout_counts_the_same(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert scorer_state.main(["--events", "3000", "--reps", "1", "--layout", "4,10,8"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("totals exact")
    for bad in ("4,10", "4,x,8", "0,10,8"):
        with pytest.raises(SystemExit):
            scorer_state.main(["--events", "10", "--layout", bad])
    assert "--layout" in capsys.readouterr().err
