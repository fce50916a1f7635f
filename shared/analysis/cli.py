"""``qwatch analyze``: the command-line face of :mod:`shared.analysis`.

:func:`analyze_command` is called by the ``analyze`` command of ``services/cli.py`` with the
raw option values; it validates them, runs the analysis and prints the result.  Bad input
or bad options print one ``error: ...`` line on stderr and exit with code 2, never a
traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console

from shared.analysis.charts import (
    ChartSpec,
    Period,
    build_report_columns,
    parse_exclusions,
    parse_tz,
)
from shared.analysis.columnar import load_columns
from shared.analysis.errors import AnalysisError
from shared.analysis.load import LoadOptions, detect_format
from shared.analysis.render import (
    PLOT_SUFFIXES,
    print_report,
    report_json,
    write_plot,
    write_report_json,
)
from shared.stats import StatsError

__all__ = ["EXIT_BAD_INPUT", "analyze_command"]

EXIT_BAD_INPUT = 2
REPORT_WIDTH = 200
"""Columns of a report written to a pipe or a file; a terminal's own width is used on a
terminal. The widest table, the Bernoulli CUSUM's with its signals, fits: the group name
(a queue or site id of up to 128 characters) is the title above a table, wrapped, not a
column (checked with two 128-character queues and sites, a drift, every chart: no cell
cut)."""


def analyze_command(
    file: Path,
    *,
    file_format: str | None = None,
    time_column: str = "reviewed_at",
    assume_utc: bool = False,
    all_samples: bool = False,
    period: str = "1d",
    tz: str = "UTC",
    chart: str = "p",
    by: str = "queue",
    only: list[str] | None = None,
    baseline_rate: float | None = None,
    phase1: int | None = None,
    exclude: list[str] | None = None,
    rules: str | None = None,
    nsigmas: float | None = None,
    lam: float | None = None,
    k: float | None = None,
    h: float | None = None,
    p1: float | None = None,
    arl0: float | None = None,
    as_json: bool = False,
    plot: Path | None = None,
) -> None:
    """Analyse a verdicts file and print tables (or JSON); optionally draw the chart.

    Raises:
        typer.Exit: with code 2 on bad input or bad options.
    """
    try:
        spec = ChartSpec(
            chart=chart.strip().lower(),
            period=Period.parse(period),
            tz=parse_tz(tz),
            by=by.strip().lower(),
            only=tuple(only or ()),
            baseline_rate=baseline_rate,
            phase1=phase1,
            exclude=parse_exclusions(exclude or ()),
            rules=None if rules is None else rules.strip().lower(),
            nsigmas=nsigmas,
            lam=lam,
            k=k,
            h=h,
            p1=p1,
            arl0=arl0,
        )
        if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
            raise AnalysisError(
                f"--plot {plot.name}: use a file ending in {', '.join(PLOT_SUFFIXES)}"
            )
        options = LoadOptions(
            file_format=None if file_format is None else detect_format(file, file_format),
            time_column=time_column,
            assume_utc=assume_utc,
            all_samples=all_samples,
        )
        columns = load_columns(file, options, spec.by)
        report = build_report_columns(columns, spec, file.name)
        if not report.charted:
            reasons = "; ".join(f"{g.group}: {g.error}" for g in report.groups[:5])
            raise AnalysisError(f"no group could be charted ({reasons})")
        plot_notes = write_plot(report, plot) if plot is not None else []
    except (AnalysisError, StatsError) as exc:
        message = str(exc)
        if message.startswith(("line ", "row ")):  # where in the file: which file, too
            message = f"{file.name}: {message}"
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None

    if as_json:
        if plot is not None:
            document = report_json(report)
            document["plot"] = str(plot)
            document["notes"] = [*report.notes, *plot_notes]
            sys.stdout.write(json.dumps(document, ensure_ascii=False, allow_nan=False) + "\n")
        else:
            write_report_json(report, sys.stdout)
        return
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # piped or redirected: rich would assume 80 columns and cut the limits and signals
        # of the wider tables to "…"; a saved report keeps every column
        console = Console(width=REPORT_WIDTH)
    print_report(report, console)
    for note in plot_notes:
        console.print(f"note: {note}", style="dim")
    if plot is not None:
        console.print(f"chart written to {plot}")
