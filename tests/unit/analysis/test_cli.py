"""``qwatch analyze`` through typer's CliRunner: output, exit codes, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app

from .helpers import orange_juice_csv, verdict_rows, write_ndjson

runner = CliRunner()


def test_json_output_is_one_document(tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", str(orange_juice_csv(tmp_path)), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    (group,) = document["groups"]
    assert group["center"] == pytest.approx(0.2313, abs=5e-5)
    signalled = [e["index"] for e in group["subgroups"] if "ucl" in e["signals"]]
    assert signalled == [15, 23]


def test_table_output_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "oj.png"
    result = runner.invoke(
        app, ["analyze", str(orange_juice_csv(tmp_path)), "--phase1", "20", "--plot", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "p-chart" in result.stdout
    assert "chart written to" in result.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("chart", ["p", "ewma", "cusum"])
def test_a_report_written_to_a_file_keeps_every_column(
    tmp_path: Path, chart: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Piped or redirected, rich took 80 columns and cut the EWMA's and CUSUM's limits and
    signals to "…" (a new user's saved report lost them)."""
    monkeypatch.delenv("COLUMNS", raising=False)
    result = runner.invoke(app, ["analyze", str(orange_juice_csv(tmp_path)), "--chart", chart])
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    assert "UCL" in result.stdout
    assert "signals" in result.stdout


def test_the_per_verdict_table_marks_the_two_phases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/statistics.md: with --phase1 'the table and the plot mark the two phases'; the
    Bernoulli CUSUM's table had no phase column (a new user's trial)."""
    monkeypatch.delenv("COLUMNS", raising=False)  # the report's own width: every column
    args = ["analyze", str(orange_juice_csv(tmp_path)), "--chart", "bernoulli-cusum"]
    result = runner.invoke(app, [*args, "--phase1", "20"])
    assert result.exit_code == 0, result.output
    rows = [ln.split("│") for ln in result.stdout.splitlines() if ln.startswith("│")]
    # (a long signals cell wraps onto lines of its own, with an empty "#")
    phases = {int(cells[1]): cells[2].strip() for cells in rows if cells[1].strip()}
    assert phases == {i: "I" if i <= 20 else "II" for i in range(1, 31)}
    assert "phase" not in runner.invoke(app, args).stdout


def test_ndjson_with_options(tmp_path: Path) -> None:
    rows = verdict_rows([3, 4, 2, 9, 12], n=60, queue="spam-en", sample_type="random")
    path = write_ndjson(tmp_path / "v.ndjson", rows)
    result = runner.invoke(
        app,
        ["analyze", str(path), "--chart", "ewma", "--lam", "0.2", "--baseline-rate", "0.05",
         "--period", "1d", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (group,) = json.loads(result.stdout)["groups"]
    assert group["design"] == {"lam": 0.2, "L": 2.814}
    assert group["baseline"]["source"] == "standard"
    assert group["subgroups"][-1]["signals"] == ["ucl"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chart", "xbar"], "unknown chart 'xbar'"),
        (["--rules", "iso"], "unknown rule set"),
        (["--period", "5h"], "bad period"),
        (["--baseline-rate", "0.2", "--phase1", "3"], "not both"),
        (["--exclude", "99"], "no subgroup 99"),
        (["--plot", "chart.jpg"], "--plot chart.jpg"),
        (["--by", "site"], "--by site needs a site_id column"),
        # bounds: these used to hang, eat memory or raise MemoryError
        (["--chart", "bernoulli-cusum", "--arl0", "1.8e16"], "--arl0 must be in (1, 1e+09]"),
        (["--chart", "bernoulli-cusum", "--arl0", "inf"], "--arl0 must be in (1, 1e+09]"),
        (["--chart", "bernoulli-cusum", "--h", "1e9"], "--h must be a number in (0, 10000]"),
        (["--chart", "bernoulli-cusum", "--h", "nan"], "--h must be a number"),
        (
            ["--chart", "bernoulli-cusum", "--baseline-rate", "0.001", "--h", "5000"],
            "is too large for the exact ARL on this lattice",
        ),
        (
            ["--chart", "bernoulli-cusum", "--baseline-rate", "0.0001", "--arl0", "1e9"],
            "target ARL0 1e+09 is out of reach",
        ),
        (["--baseline-rate", "nan"], "--baseline-rate is an error proportion"),
        (["--L", "inf"], "--L must be a positive number"),
        (["--chart", "ewma", "--lam", "nan"], "--lam must be in (0, 1]"),
        (["--chart", "cusum", "--k", "-inf"], "--k must be >= 0"),
    ],
)
def test_bad_options_exit_2_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["analyze", str(orange_juice_csv(tmp_path)), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("queue_id,correct\nq,1\n", "lacks the required columns reviewed_at"),
        (
            "queue_id,reviewed_at,correct\nq,2026-10-01T10:00:00Z,1\nq,2026-13-01T10:00:00Z,1\n",
            "line 3, column 'reviewed_at'",
        ),
        (
            "queue_id,reviewed_at,correct\nq,2026-10-01T10:00:00Z,1\n"
            "q,9999-12-31T23:30:00-05:00,1\n",
            "line 3, column 'reviewed_at': out of range: timestamps must lie between "
            "0001-01-02 and 9999-12-30 UTC (value '9999-12-31T23:30:00-05:00')",
        ),
        (
            "queue_id,reviewed_at,correct\nq,0001-01-01T00:00:00+00:00,1\n",
            "line 2, column 'reviewed_at': out of range",
        ),
        ("queue_id,reviewed_at,correct\nq,nan,1\n", "not an ISO 8601 timestamp"),
        ("queue_id,reviewed_at,correct\nq,2026-10-01T10:00:00Z,NaN\n", "expected true/false"),
        ("queue_id,reviewed_at,correct\nq,2026-10-01T10:00:00Z,-1\n", "expected true/false"),
        ("queue_id,reviewed_at,correct\nq," + "9" * 200_000 + ",1\n", "not valid CSV"),
        (
            "queue_id,reviewed_at,correct,outcome\nq,2026-10-01T10:00:00Z,1,correct\n"
            "q,2026-10-01T11:00:00Z,true,incorrect\n",
            "line 3: 'correct' and 'outcome' disagree (correct 'true', outcome 'incorrect')",
        ),
        (
            "queue_id,reviewed_at,correct,kind\nq,,,decision\nq,,,Decision\n",
            "v.csv: no verdict rows to analyse: all 2 rows are decisions (kind 'decision'; "
            "analyze reads QA verdicts)",
        ),
    ],
)
def test_bad_input_exits_2_without_a_traceback(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "v.csv"
    path.write_text(content)
    result = runner.invoke(app, ["analyze", str(path), "--json"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    if message.startswith(("line ", "row ")):  # the file named too, as backfill names it
        assert result.stderr.startswith(f"error: v.csv: {message}")
    assert result.stderr.count("\n") == 1  # one line
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_huge_single_line_file_is_refused_early(tmp_path: Path) -> None:
    path = tmp_path / "v.ndjson"
    path.write_text('{"queue_id": "' + "q" * 3_000_000 + '"}')
    result = runner.invoke(app, ["analyze", str(path)])
    assert result.exit_code == 2
    assert "error: v.ndjson: line 1 is longer than 1,048,576 bytes; no verdict" in result.stderr
    assert result.stderr.count("v.ndjson") == 1  # (the file named once)


def test_per_verdict_json_streams_the_same_document(tmp_path: Path) -> None:
    """The per-verdict chart's JSON is written point by point: still one valid document."""
    path = orange_juice_csv(tmp_path)
    result = runner.invoke(app, ["analyze", str(path), "--chart", "bernoulli-cusum", "--json"])
    assert result.exit_code == 0, result.output
    (group,) = json.loads(result.stdout)["groups"]
    assert len(group["subgroups"]) == 1500
    assert group["subgroups"][0]["index"] == 1


def test_too_many_groups_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shared.analysis.charts.MAX_GROUPS", 3)
    rows = [r | {"queue_id": f"q{i % 5}"} for i, r in enumerate(verdict_rows([1, 2], n=10))]
    path = write_ndjson(tmp_path / "v.ndjson", rows)
    result = runner.invoke(app, ["analyze", str(path)])
    assert result.exit_code == 2
    assert "5 queues: at most 3 can be charted at once; choose some with --only" in result.stderr
    assert runner.invoke(app, ["analyze", str(path), "--only", "q1"]).exit_code == 0


def test_with_only_the_header_says_how_many_verdicts_are_charted(tmp_path: Path) -> None:
    """The header counts the file's verdicts used; with --only it also says how many of
    them the charted groups hold (a new user read 23,390 as the charted queue's count)."""
    rows = [r | {"queue_id": f"q{i % 5}"} for i, r in enumerate(verdict_rows([1, 2], n=10))]
    path = write_ndjson(tmp_path / "v.ndjson", rows)
    result = runner.invoke(app, ["analyze", str(path), "--only", "q1", "--phase1", "1"])
    assert result.exit_code == 0, result.output
    q1 = sum(1 for r in rows if r["queue_id"] == "q1")
    assert f"{len(rows)} of {len(rows)} verdicts used ({q1} of them charted), 1 queue(s)" in (
        result.stdout
    )
    whole = runner.invoke(app, ["analyze", str(path), "--phase1", "1"])
    assert "charted)" not in whole.stdout


def test_a_directory_is_said_to_be_one(tmp_path: Path) -> None:
    for extra in ([], ["--format", "csv"]):
        result = runner.invoke(app, ["analyze", str(tmp_path), *extra])
        assert result.exit_code == 2
        assert f"{tmp_path} is a directory, not a file" in result.stderr, result.stderr


def test_a_file_that_is_not_text_says_what_it_looks_like(tmp_path: Path) -> None:
    """A trial's gzipped export named .csv got only "not UTF-8 text" from analyze (the
    backfill said it looks gzipped); a Parquet file named .csv now says so too, in both."""
    import gzip

    from shared.analysis.load import looks_like

    gz = tmp_path / "v.csv"
    gz.write_bytes(gzip.compress(b"queue_id,reviewed_at,correct\nq,2026-12-01T00:00:00Z,1\n"))
    result = runner.invoke(app, ["analyze", str(gz)])
    assert result.exit_code == 2
    assert "it looks gzip-compressed (it starts with bytes 1f 8b): name it v.csv.gz" in (
        result.stderr
    )
    head = b"PAR1\x15\x04\x15\xe4\x00"
    pq = tmp_path / "p.csv"
    pq.write_bytes(head + b"\n" + b"\xff" * 40)
    result = runner.invoke(app, ["analyze", str(pq)])
    assert result.exit_code == 2
    assert "; it looks like a Parquet file (it starts with PAR1): name it p.parquet" in (
        result.stderr
    )
    assert looks_like(tmp_path / "v.csv.gz", gzip.compress(b"x")) == ""  # named as it is
    assert looks_like(tmp_path / "v.csv", b"\xff\xfe") == ""
