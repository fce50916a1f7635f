"""``qwatch analyze`` at scale: wall time and peak memory, old path beside the new one.

Run::

    .venv/bin/python -m bench.analyze                      # 1M and 10M rows, every chart
    .venv/bin/python -m bench.analyze --rows 1000000 --charts p bernoulli-cusum
    .venv/bin/python -m bench.analyze --formats parquet      # the same verdicts as Parquet
    .venv/bin/python -m bench.analyze --formats ndjson       # ... and as NDJSON

Generates CSV files of verdicts under ``/tmp/qwatch-analyze-bench/`` (once; reused by later
runs): 20 queues, 60 days, offsets from -05:00 to +08:00, 5% late rows, 1% repeated
verdict ids, 10% non-random samples.  Each measurement is one fresh process running
``qwatch analyze FILE --chart C --json`` (the new, columnar path) or the same analysis
through the reference path (``load_verdicts`` + ``build_report`` + ``report_json``, one
object per verdict; only up to ``--old-max-rows`` rows, it needs about 1 KB a verdict).
Peak RSS is the child's ``ru_maxrss``.  Both outputs are hashed: the table says whether
they are identical, byte for byte.

``--before DIR`` also runs ``qwatch analyze`` from another checkout of the code (e.g.
``git archive main | tar -x -C /tmp/analyze-before``; the same venv, ``PYTHONPATH=DIR``)
beside each new run, so that before and after are measured in the same session, on the
same files, and their outputs compared.

``--formats parquet`` measures the same verdicts as a Parquet file (written once from the
CSV by pyarrow with the types it infers: ``reviewed_at`` a UTC timestamp, ``correct`` a
boolean, the rest text), as a data warehouse export would type them.  ``--formats ndjson``
likewise as NDJSON (written once from the CSV: one compact object per line, the CSV's columns
in its order, ``correct`` a JSON boolean, the rest strings), as BigQuery or Spark export it.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from shared.analysis.charts import CHART_KINDS

BENCH_DIR = Path("/tmp/qwatch-analyze-bench")
OFFSETS = ["Z", "-05:00", "+08:00", "+05:30", "+01:00"]

_OLD = """
import json, sys
from pathlib import Path
from shared.analysis.charts import ChartSpec, build_report
from shared.analysis.load import load_verdicts
from shared.analysis.render import report_json
path = Path(sys.argv[1])
report = build_report(load_verdicts(path), ChartSpec(chart=sys.argv[2]), path.name)
sys.stdout.write(json.dumps(report_json(report), ensure_ascii=False, allow_nan=False) + "\\n")
"""


def generate(path: Path, rows: int, seed: int = 11) -> None:
    """Write ``rows`` verdicts as CSV (streamed in chunks, numpy-formatted timestamps)."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-09-01T00:00:00", "s").astype(np.int64)
    span = 60 * 86400
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write("verdict_id,queue_id,site_id,reviewed_at,correct,sample_type\n")
        chunk = 500_000
        for first in range(0, rows, chunk):
            n = min(chunk, rows - first)
            index = np.arange(first, first + n)
            seconds = start + (index * span) // rows + rng.integers(0, 60, n)
            late = rng.random(n) < 0.05
            seconds[late] -= rng.integers(3600, 3 * 86400, int(late.sum()))
            stamps = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
            queue = rng.integers(0, 20, n)
            rate = 0.02 + 0.004 * queue
            drift = (queue == 3) & (index > rows * 0.8)
            incorrect = rng.random(n) < np.where(drift, rate * 2.5, rate)
            ids = index.copy()
            repeat = rng.random(n) < 0.01
            ids[repeat] = np.maximum(0, ids[repeat] - rng.integers(1, 1000, int(repeat.sum())))
            sample = rng.random(n)
            offset = rng.integers(0, len(OFFSETS), n)
            lines = []
            for i in range(n):
                kind = (
                    "random" if sample[i] < 0.9 else ("targeted" if sample[i] < 0.97 else "appeal")
                )
                zone = OFFSETS[offset[i]]
                stamp = str(stamps[i]) + "Z" if zone == "Z" else _shift(int(seconds[i]), zone)
                lines.append(
                    f"v{ids[i]},queue-{queue[i]:02d},site-{queue[i] % 4},{stamp},"
                    f"{'false' if incorrect[i] else 'true'},{kind}\n"
                )
            f.write("".join(lines))
    tmp.replace(path)


_TO_PARQUET = """
import sys
from pyarrow import csv, parquet
parquet.write_table(csv.read_csv(sys.argv[1]), sys.argv[2])
"""


def parquet_of(source: Path, path: Path) -> None:
    """The CSV's verdicts as Parquet, typed as pyarrow infers them. In a process of its own:
    the file is read whole (1.7 GB at 10 M rows), and a child started later by this one
    would report this process's peak as its own (``ru_maxrss`` counts the pages a fork
    shares until the child's exec)."""
    tmp = path.with_suffix(".tmp")
    subprocess.run([sys.executable, "-c", _TO_PARQUET, str(source), str(tmp)], check=True)
    tmp.replace(path)


_TO_NDJSON = """
import csv, sys
import orjson
with open(sys.argv[1], newline="", encoding="utf-8") as source, open(sys.argv[2], "wb") as out:
    rows = csv.reader(source)
    header = next(rows)
    typed = header.index("correct")
    lines = []
    for row in rows:
        record = dict(zip(header, row))
        record["correct"] = row[typed] == "true"
        lines.append(orjson.dumps(record))
        if len(lines) == 100_000:
            out.write(b"\\n".join(lines) + b"\\n")
            lines = []
    if lines:
        out.write(b"\\n".join(lines) + b"\\n")
"""


def ndjson_of(source: Path, path: Path) -> None:
    """The CSV's verdicts as NDJSON (``correct`` a boolean), in a process of its own as
    :func:`parquet_of` for the same reason."""
    tmp = path.with_suffix(".tmp")
    subprocess.run([sys.executable, "-c", _TO_NDJSON, str(source), str(tmp)], check=True)
    tmp.replace(path)


def _shift(seconds: int, zone: str) -> str:
    sign = 1 if zone[0] == "+" else -1
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    local = seconds + sign * (hours * 3600 + minutes * 60)
    return str(np.datetime64(local, "s")) + zone


def measure(
    command: list[str], env: dict[str, str] | None = None
) -> tuple[float, float, str, int, float]:
    """Wall seconds, peak RSS (MB), sha256 of stdout, exit code and CPU seconds of a child."""
    digest = hashlib.sha256()
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    while block := proc.stdout.read(1 << 20):
        digest.update(block)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return wall, usage.ru_maxrss / 1024, digest.hexdigest()[:12], proc.returncode, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--charts", nargs="+", default=list(CHART_KINDS), choices=CHART_KINDS)
    parser.add_argument("--old-max-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--formats", nargs="+", default=["csv"], choices=["csv", "parquet", "ndjson"]
    )
    parser.add_argument(
        "--before", type=Path, help="a checkout of the code to run qwatch from as well"
    )
    args = parser.parse_args()
    BENCH_DIR.mkdir(exist_ok=True)
    qwatch = str(Path(sys.executable).with_name("qwatch"))
    print(
        f"{'rows':>11} {'chart, format':<24} {'path':<6} {'wall s':>8} {'CPU s':>7} {'peak MB':>8} "
        f"{'output':<13}"
    )
    for rows, file_format in itertools.product(args.rows, args.formats):
        path = BENCH_DIR / f"verdicts-{rows}.csv"
        if not path.exists():
            started = time.perf_counter()
            generate(path, rows)
            print(f"# generated {path} ({path.stat().st_size / 1e6:,.0f} MB) in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        if file_format in ("parquet", "ndjson"):
            source, path = path, path.with_suffix(f".{file_format}")
            if not path.exists():
                started = time.perf_counter()
                (parquet_of if file_format == "parquet" else ndjson_of)(source, path)
                print(f"# wrote {path} ({path.stat().st_size / 1e6:,.0f} MB) in "
                      f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        for chart in args.charts:
            new = measure([qwatch, "analyze", str(path), "--chart", chart, "--json"])
            label = f"{chart} {file_format}"
            line = (
                f"{rows:>11,} {label:<24} new    {new[0]:>8.1f} {new[4]:>7.1f} {new[1]:>8.0f} "
                f"{new[2]:<13}"
            )
            print(line + ("" if new[3] == 0 else f" exit {new[3]}"), flush=True)
            if args.before is not None:
                env = {**os.environ, "PYTHONPATH": str(args.before.resolve())}
                old = measure([qwatch, "analyze", str(path), "--chart", chart, "--json"], env)
                _compare(rows, label, "before", new, old)
            if rows <= args.old_max_rows:
                _compare(
                    rows, label, "old", new, measure([sys.executable, "-c", _OLD, str(path), chart])
                )


def _compare(
    rows: int,
    chart: str,
    name: str,
    new: tuple[float, float, str, int, float],
    old: tuple[float, float, str, int, float],
) -> None:
    same = "identical" if old[2] == new[2] else "DIFFERENT"
    print(
        f"{rows:>11,} {chart:<24} {name:<6} {old[0]:>8.1f} {old[4]:>7.1f} {old[1]:>8.0f} "
        f"{old[2]:<13} {same}; new/{name}: wall {new[0] / old[0]:.2f}, CPU "
        f"{new[4] / old[4]:.2f}, memory {new[1] / old[1]:.2f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
