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
    ],
)
def test_bad_input_exits_2_without_a_traceback(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "v.csv"
    path.write_text(content)
    result = runner.invoke(app, ["analyze", str(path), "--json"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr
