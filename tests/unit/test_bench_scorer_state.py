"""bench/scorer_state.py on a small run: the worker's store code through process and commit,
every queue's totals exact, the same state written however often it runs."""

from __future__ import annotations

import pytest

from bench import scorer_state


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
