"""``bench/pipeline.py`` cannot rot: a small run of paths (a) and (c) on the test broker.

The script generates raw per-event JSON with known truth, has real ingest and scorer
processes count it, then the bare aiokafka loop; it exits 1 when the scorer's published
counts differ from the truth by one event. Quix Streams (path b) is left out: it needs its
own virtualenv, created on a first run outside the tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def test_pipeline_bench_counts_exactly_and_prints_its_table(kafka_bootstrap: str) -> None:
    proc = subprocess.run(
        [sys.executable, "bench/pipeline.py", "--events", "20000", "--paths", "a,c",
         "--hours", "8", "--queues", "6", "--timeout", "120"],
        cwd=REPO, env={**os.environ, "QW_KAFKA_BOOTSTRAP": kafka_bootstrap},
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    rows = re.findall(r"^\| \((a|c)\) .*? \| ([\d,]+) \| [\d.]+ \| ([\d,]+) \|", out, re.M)
    assert [r[0] for r in rows] == ["a", "c"], out
    events = {int(r[1].replace(",", "")) for r in rows}
    assert len(events) == 1, out
    assert 19_000 < events.pop() < 21_000, out
    assert all(int(r[2].replace(",", "")) > 0 for r in rows), out
    assert re.search(r"CPU µs/event per process", out)
    # the broker runs on this machine: its CPU over each path is shown beside the processes'
    assert re.search(r"\| ingest [\d.]+, scorer [\d.]+, total [\d.]+ \| [\d.]+ \|$", out, re.M), out
    assert re.search(r"^\| \(c\) .*\| process [\d.]+ \| [\d.]+ \|$", out, re.M), out
    for line in ("ratio (a)/c:", "command: ", "machine: "):
        assert line in out
    assert re.search(r"decisions [\d,]+ of [\d,]+ \(lost 0, doubled 0\)", out), out
    assert re.search(r"verdicts [\d,]+ of [\d,]+ \(lost 0, doubled 0\)", out), out
    assert re.search(r"random verdicts lost 0, doubled 0; errors off by 0", out), out
    assert re.search(r"scorer subgroups: [1-9][\d,]* published", out), out
    assert "counts: exact" in out
