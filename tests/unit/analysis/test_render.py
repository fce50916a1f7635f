"""Rendering a report: the JSON document, the terminal table and the plot files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from shared.analysis import render as render_module
from shared.analysis.charts import ChartSpec, Report, build_report, parse_exclusions
from shared.analysis.errors import AnalysisError
from shared.analysis.load import load_verdicts
from shared.analysis.render import print_report, report_json, write_plot

from .helpers import orange_juice_csv, verdict_rows, write_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def oj_report(tmp_path: Path, **options: Any) -> Report:
    path = orange_juice_csv(tmp_path)
    return build_report(load_verdicts(path), ChartSpec(**options), path.name)


def test_json_document_structure(tmp_path: Path) -> None:
    document = json.loads(json.dumps(report_json(oj_report(tmp_path))))
    assert set(document) >= {"groups", "chart", "period", "verdicts_used", "notes"}
    (group,) = document["groups"]
    assert group["group"] == "oj"
    assert group["center"] == pytest.approx(0.2313, abs=5e-5)
    assert len(group["subgroups"]) == 30
    for entry in group["subgroups"]:
        assert {"start", "n", "errors", "p", "ucl", "lcl", "signals"} <= set(entry)
        assert isinstance(entry["signals"], list)
        assert entry["p"] == pytest.approx(entry["errors"] / entry["n"])
    assert group["subgroups"][0]["start"] == "2026-10-01T00:00:00+00:00"
    assert "ucl" in group["subgroups"][14]["signals"]
    assert group["subgroups"][14]["p"] == pytest.approx(0.44)


def test_json_of_a_per_verdict_chart_has_one_entry_per_verdict(tmp_path: Path) -> None:
    document = json.loads(json.dumps(report_json(oj_report(tmp_path, chart="bernoulli-cusum"))))
    (group,) = document["groups"]
    entries = group["subgroups"]
    assert len(entries) == 1500
    assert {e["n"] for e in entries} == {1}
    assert {e["p"] for e in entries} == {0.0, 1.0}
    assert all(e["lcl"] is None for e in entries)
    signalled = [e for e in entries if e["signals"]]
    assert signalled
    assert all(e["signals"] == ["ucl"] and e["onset"] <= e["index"] for e in signalled)


def test_table_shows_every_subgroup_and_the_signals(tmp_path: Path) -> None:
    console = Console(record=True, width=160)
    print_report(oj_report(tmp_path, exclude=parse_exclusions(["15"])), console)
    text = console.export_text()
    assert "queue oj: p-chart of the error proportion" in text
    assert "2026-10-30" in text  # the last subgroup
    assert "44.00%" in text  # sample 15: 22 of 50
    assert "(excluded)" in text
    assert "excluding 15" in text
    assert "ucl" in text


@pytest.mark.parametrize("chart", ["p", "np", "laney", "ewma", "cusum", "bernoulli-cusum"])
def test_plot_png_is_written_for_every_chart(tmp_path: Path, chart: str) -> None:
    out = tmp_path / f"{chart}.png"
    write_plot(oj_report(tmp_path, chart=chart, phase1=20), out)
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000


def test_plot_of_several_groups_and_html(tmp_path: Path) -> None:
    rows = verdict_rows([2, 3, 9, 2], n=40, queue="a") + verdict_rows([1, 1, 2, 8], n=30, queue="b")
    path = write_csv(tmp_path / "v.csv", rows)
    report = build_report(load_verdicts(path), ChartSpec(), path.name)
    png = tmp_path / "chart.png"
    write_plot(report, png)
    assert png.read_bytes()[:8] == PNG_MAGIC
    page = tmp_path / "chart.html"
    write_plot(report, page)
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") == 2
    assert "<script" not in html
    assert "src=" not in html  # self-contained: nothing to fetch


def test_plot_refuses_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match=r"\.png"):
        write_plot(oj_report(tmp_path), tmp_path / "chart.jpg")


def test_small_rates_are_never_printed_as_zero(tmp_path: Path) -> None:
    """With p̄ = 1e-5 the design line said "p0 = 0.0000 → p1 = 0.0000, h = 0.000"."""
    rows = verdict_rows([0, 1, 0], n=400)
    path = write_csv(tmp_path / "v.csv", rows)
    spec = ChartSpec(chart="bernoulli-cusum", baseline_rate=1e-5)
    report = build_report(load_verdicts(path), spec, path.name)
    console = Console(record=True, width=200)
    print_report(report, console)
    text = console.export_text()
    (group,) = report.groups
    h = group.design["h"]
    assert 0 < h < 5e-4  # (so that 3 decimals would show 0.000)
    assert (
        f"p0 = 1.000e-05 → p1 = 2.000e-05 (lattice-exact for {group.design['p1_effective']:#.4g}), "
        in text
    )
    assert f"h = {h:#.4g};" in text
    assert "standard given: p̄ = 1.000e-05" in text
    assert "0.0000" not in text
    assert text.count(f"│ {h:#.4g} │") == 3  # the table's h column, on every subgroup
    # the JSON document keeps the numbers themselves
    document = json.loads(json.dumps(report_json(report)))
    assert document["groups"][0]["design"]["p0"] == 1e-5
    assert document["groups"][0]["design"]["h"] == h
    # a p-chart's table: a UCL of 0.0047% is not 0.00%, while a zero LCL stays 0.00%
    report = build_report(load_verdicts(path), ChartSpec(baseline_rate=1e-7), path.name)
    console = Console(record=True, width=200)
    print_report(report, console)
    text = console.export_text()
    ucl = report.groups[0].points[0].ucl
    assert ucl is not None
    assert 0 < ucl < 5e-5
    assert text.count(f"│ 0.00% │ {100 * ucl:.2g}% │") == 3
    assert render_module._pct(1e-5) == "0.001%"
    assert render_module._pct(0.2313) == "23.13%"


def test_an_accuracy_short_of_one_is_never_printed_as_100_percent(tmp_path: Path) -> None:
    """The mirror of the above: 99.999% was printed "100.00%"; and the note on a Bernoulli
    CUSUM's false alarms said "0.0 false alarms are expected" for 0.004."""
    assert render_module._pct(0.99999) == "99.999%"
    assert render_module._pct(1 - 1e-9) == "99.9999999%"
    assert render_module._pct(1.0) == "100.00%"
    assert render_module._pct(0.9999) == "99.99%"
    rows = verdict_rows([1, 0], n=[100_000, 100])  # one error in 100,000: 99.999% accurate
    path = write_csv(tmp_path / "v.csv", rows)
    report = build_report(load_verdicts(path), ChartSpec(), path.name)
    console = Console(record=True, width=200)
    print_report(report, console)
    text = console.export_text()
    row = next(line for line in text.splitlines() if line.startswith("│ 1 │"))
    assert "│  99.999% │" in row, row  # the first day's accuracy
    assert "100.00%" in text  # (the second day: no error at all)
    small = write_csv(tmp_path / "small.csv", verdict_rows([5, 3, 4], n=400))
    few = build_report(
        load_verdicts(small), ChartSpec(chart="bernoulli-cusum", arl0=1e6), small.name
    )
    (note,) = [n for n in few.groups[0].notes if "false alarms are expected" in n]
    assert note.startswith("in control, 0.001 false alarms are expected in 1,200 verdicts")


def test_the_plot_title_counts_the_baseline_subgroups(tmp_path: Path) -> None:
    """The plot said "trial limits from all subgroups but 15" with --exclude 15."""
    excluded = oj_report(tmp_path, exclude=parse_exclusions(["15,23"]))
    words = render_module._source_words(excluded.groups[0])
    assert words == "trial limits from 28 of 30 subgroups (excluding 15, 23)"
    phase1 = oj_report(tmp_path, phase1=20, exclude=parse_exclusions(["15"]))
    words = render_module._source_words(phase1.groups[0])
    assert words == "frozen Phase I baseline from 19 of 20 subgroups (excluding 15)"
    assert render_module._source_words(oj_report(tmp_path).groups[0]) == (
        "trial limits from all subgroups"
    )


def test_counts_in_the_report_have_thousands_separators(tmp_path: Path) -> None:
    """ "3976 of 20000 verdicts left out" sat beside "1442 of 667,072 verdicts signal"."""
    rows = verdict_rows([40, 30], n=6000)
    for i, row in enumerate(rows):
        row["sample_type"] = "random" if i % 5 else "targeted"
        row["verdict_id"] = f"v{i % 5000}"  # (1,000 repeated)
    path = write_csv(tmp_path / "v.csv", rows)
    report = build_report(load_verdicts(path), ChartSpec(), path.name)
    console = Console(record=True, width=200)
    print_report(report, console)
    text = console.export_text()
    assert "2,400 of 12,000 verdicts left out (targeted 2,400)" in text
    assert "repeated verdict_id row(s) counted once" in text
    assert " errors / " in text
    said = [ln for ln in text.splitlines() if not ln.startswith(("│", "┃", "┏", "┡", "└"))]
    assert not re.search(r"\b\d{4,}\b", "\n".join(said).replace("2026", "")), said
