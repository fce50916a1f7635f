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
