"""Show a :class:`~shared.analysis.charts.Report`: terminal tables, one JSON document, a plot.

* :func:`print_report`: a rich table per group (subgroup start, n, errors, p, accuracy,
  limits, signals), with the baseline, the design and the notes.
* :func:`report_json`: the JSON document of ``qwatch analyze --json``.
* :func:`write_plot`: the control chart a QA manager pastes into a root-cause report, as
  PNG, SVG or PDF (matplotlib, Agg) or as one self-contained HTML page with inline SVG.
"""

from __future__ import annotations

import html
import importlib
import io
import json
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shared.analysis.bulk import digits, iso_text, join_rows
from shared.analysis.charts import (
    CHART_TITLES,
    ChartPoint,
    GroupChart,
    Report,
    VerdictPoints,
    rate_text,
    zone_hours,
)
from shared.analysis.errors import AnalysisError
from shared.stats import RULE_DESCRIPTIONS

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "PLOT_SUFFIXES",
    "print_report",
    "report_json",
    "write_plot",
    "write_report_json",
]

PLOT_SUFFIXES = (".png", ".svg", ".pdf", ".html")
MAX_PLOTTED_GROUPS = 24
_PROPORTION_CHARTS = frozenset({"p", "laney", "ewma"})
_GROUP_WORD = {"queue": "queue", "site": "site", "policy": "policy"}


# --------------------------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    if value is None:
        return ""
    text = _fixed(100.0 * value, 2)
    if value < 1.0 and float(text) >= 100.0:  # an accuracy of 99.999%: not 100.00%
        text = next(
            (t for d in range(3, 9) if float(t := f"{100.0 * value:.{d}f}") < 100.0),
            f"{100.0 * value:.12g}",
        )
    return text + "%"


def _num(value: float | None, digits: int = 2) -> str:
    return "" if value is None else _fixed(value, digits)


def _fixed(value: float, digits: int) -> str:
    """``digits`` decimals, or as many significant digits where those would show a value
    that is not zero as zero (an error rate of 0.001%, the B of a chart for p̄ = 1e-05)."""
    text = f"{value:.{digits}f}"
    return f"{value:.{digits}g}" if value and not float(text) else text


def _start(report: Report, t: datetime) -> str:
    if report.spec.period.unit == "h":
        return t.strftime("%Y-%m-%d %H:%M")
    return t.strftime("%Y-%m-%d")


def _tz_label(report: Report) -> str:
    return str(report.spec.tz)


def _value_format(chart: str) -> Callable[[float | None], str]:
    if chart in _PROPORTION_CHARTS:
        return _pct
    return _num


def _title(report: Report, group: GroupChart) -> str:
    return f"{_GROUP_WORD[report.spec.by]} {group.group}: {CHART_TITLES[group.chart]}"


def _design_text(group: GroupChart) -> str:
    d = group.design
    if group.chart == "bernoulli-cusum":
        return (
            f"Bernoulli CUSUM p0 = {rate_text(d['p0'])} → p1 = {rate_text(d['p1'])} "
            f"(lattice-exact for {rate_text(d['p1_effective'])}), h = {rate_text(d['h'])}; "
            "in-control ARL "
            f"{d['arl0']:,.0f} verdicts, ARL at p1 {d['arl1']:,.0f} verdicts"
        )
    return ", ".join(f"{name} = {value:g}" for name, value in d.items())


def _summary(group: GroupChart, report: Report) -> str:
    per_verdict = group.chart == "bernoulli-cusum"
    unit = "verdicts" if per_verdict else f"{report.spec.period.label} subgroups"
    total = len(group.points) if per_verdict else len(group.subgroups)
    return (
        f"{group.n:,} verdicts, {group.errors:,} errors, accuracy {_pct(group.accuracy)}; "
        f"{group.signal_count:,} of {total:,} {unit} signal"
    )


# --------------------------------------------------------------------------------------------
# Terminal
# --------------------------------------------------------------------------------------------


def print_report(report: Report, console: Console) -> None:
    """Print the report as one rich table per group."""
    spec = report.spec
    # with --only, the verdicts of the groups charted, which the file's count is not
    of_only = (
        f" ({sum(s.n for g in report.groups for s in g.subgroups):,} of them charted)"
        if spec.only
        else ""
    )
    console.print(
        f"[bold]{report.source}[/bold]: {report.rows_used:,} of {report.rows_read:,} verdicts "
        f"used{of_only}, {len(report.groups)} {_GROUP_WORD[spec.by]}(s), {spec.period.label} "
        f"subgroups ({_tz_label(report)}), {spec.chart} chart"
    )
    for note in report.notes:
        console.print(f"  note: {note}", style="dim", highlight=False)
    for group in report.groups:
        console.print()
        if group.error is not None:
            console.print(
                f"[bold]{_title(report, group)}[/bold]\n  [red]cannot chart: {group.error}[/red]"
            )
            continue
        console.print(_table(report, group))
        assert group.baseline is not None
        console.print(f"  baseline: {group.baseline.describe()}", highlight=False)
        console.print(f"  design: {_design_text(group)}", highlight=False)
        console.print(f"  {_summary(group, report)}", highlight=False)
        for note in group.notes:
            console.print(f"  note: {note}", style="dim", highlight=False)
    charted = report.charted
    signalled = sum(1 for g in charted if g.signal_count)
    console.print()
    console.print(
        f"{signalled:,} of {len(report.groups):,} group(s) with signals"
        + (
            f"; {len(report.groups) - len(charted)} could not be charted"
            if len(charted) < len(report.groups)
            else ""
        ),
        style="bold",
    )


def _signal_text(point: ChartPoint) -> Text:
    label = ", ".join(point.signals)
    if point.onset is not None:
        label += f" (run from #{point.onset})"
    text = Text(label, style="bold red" if point.signals else "")
    if point.signals and all(s == "lcl" for s in point.signals):
        text.stylize("bold cyan")
    if point.excluded:
        text.append((" " if point.signals else "") + "(excluded)", style="dim")
    return text


def _table(report: Report, group: GroupChart) -> Table:
    if group.chart == "bernoulli-cusum":
        return _verdict_table(report, group)
    fmt = _value_format(group.chart)
    table = Table(title=_title(report, group), title_justify="left", title_style="bold")
    table.add_column("#", justify="right")
    if report.spec.phase1 is not None:
        table.add_column("phase")
    table.add_column(f"start ({_tz_label(report)})", no_wrap=True)
    for name in ("n", "errors", "p", "accuracy"):
        table.add_column(name, justify="right", no_wrap=True)
    extra: list[tuple[str, Callable[[ChartPoint], str]]] = []
    if group.chart == "np":
        extra = [("np centre", lambda pt: _num(pt.center))]
    elif group.chart == "ewma":
        extra = [("EWMA", lambda pt: _pct(pt.statistic))]
    elif group.chart == "cusum":
        extra = [
            ("z", lambda pt: _num(pt.z)),
            ("C⁺", lambda pt: _num(pt.statistic)),
            ("−C⁻", lambda pt: _num(pt.lower_statistic)),
        ]
    for name, _ in extra:
        table.add_column(name, justify="right")
    table.add_column("LCL", justify="right")
    table.add_column("UCL", justify="right")
    table.add_column("signals")
    for pt in group.points:
        cells: list[str | Text] = [str(pt.index)]
        if report.spec.phase1 is not None:
            cells.append(pt.phase)
        cells += [
            _start(report, pt.start),
            str(pt.n),
            str(pt.errors),
            _pct(pt.p),
            _pct(pt.accuracy),
        ]
        cells += [render(pt) for _, render in extra]
        cells += [fmt(pt.lcl), fmt(pt.ucl), _signal_text(pt)]
        table.add_row(*cells, style="dim" if pt.excluded else None)
    return table


def _verdict_table(report: Report, group: GroupChart) -> Table:
    """Per-verdict charts: one row per subgroup period, with the CUSUM's peak and signals."""
    table = Table(title=_title(report, group), title_justify="left", title_style="bold")
    table.add_column("#", justify="right")
    phase1 = report.spec.phase1
    if phase1 is not None:
        table.add_column("phase")
    table.add_column(f"start ({_tz_label(report)})", no_wrap=True)
    for name in ("n", "errors", "p", "accuracy", "max B", "h"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("signals")
    for sg, (peak, alarms, first) in zip(group.subgroups, _per_subgroup(group), strict=True):
        signal = Text()
        if first is not None:
            signal = Text(
                f"{alarms} alarm(s); first at #{first.index} "
                f"{first.start:%Y-%m-%d %H:%M}, run from #{first.onset}",
                style="bold red",
            )
        phase = [] if phase1 is None else ["I" if sg.index <= phase1 else "II"]
        table.add_row(
            str(sg.index),
            *phase,
            _start(report, sg.start),
            str(sg.n),
            str(sg.errors),
            _pct(sg.p),
            _pct(1.0 - sg.p),
            _num(peak, 3),
            rate_text(group.design["h"]),  # as the design line says it
            signal,
        )
    return table


def _per_subgroup(group: GroupChart) -> list[tuple[float, int, ChartPoint | None]]:
    """Per subgroup of a per-verdict chart: the largest statistic, the alarms, the first."""
    if isinstance(group.points, VerdictPoints):
        return group.points.by_subgroup(len(group.subgroups))
    by_subgroup: dict[int, list[ChartPoint]] = {}
    for pt in group.points:
        by_subgroup.setdefault(pt.subgroup, []).append(pt)
    result: list[tuple[float, int, ChartPoint | None]] = []
    for sg in group.subgroups:
        pts = by_subgroup.get(sg.index, [])
        hits = [pt for pt in pts if pt.signals]
        peak = max((pt.statistic for pt in pts), default=0.0)
        result.append((peak, len(hits), hits[0] if hits else None))
    return result


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _point_json(pt: ChartPoint) -> dict[str, object]:
    data: dict[str, object] = {
        "index": pt.index,
        "start": pt.start.isoformat(),
        "n": pt.n,
        "errors": pt.errors,
        "p": pt.p,
        "accuracy": pt.accuracy,
        "statistic": _finite(pt.statistic),
        "center": pt.center,
        "lcl": _finite(pt.lcl),
        "ucl": _finite(pt.ucl),
        "signals": list(pt.signals),
        "phase": pt.phase,
        "excluded": pt.excluded,
        "z": _finite(pt.z),
    }
    if pt.lower_statistic is not None:
        data["lower_statistic"] = pt.lower_statistic
    if pt.subgroup != pt.index:
        data["subgroup"] = pt.subgroup
    if pt.onset is not None:
        data["onset"] = pt.onset
    return data


def write_report_json(report: Report, out: TextIO) -> None:
    """Write ``json.dumps(report_json(report), ensure_ascii=False, allow_nan=False)`` and a
    newline to ``out``, byte for byte, without holding the document: the points are
    written a few thousand at a time (a per-verdict chart has one per verdict)."""
    document = report_json(report, with_points=False)
    groups = document.pop("groups")
    assert isinstance(groups, list)
    head = _dumps(document)
    out.write(head[:-1] + ', "groups": [')
    zones: dict[Any, _Zones] = {}
    for number, (entry, group) in enumerate(zip(groups, report.groups, strict=True)):
        text = _dumps(entry)
        out.write((", " if number else "") + text[:-1] + ', "subgroups": [')
        points = group.points
        step = 65_536
        for lo in range(0, len(points), step):
            hi = min(lo + step, len(points))
            if isinstance(points, VerdictPoints):
                text = _verdict_points_text(
                    points, lo, hi, zones.setdefault(points.tz, _Zones(points.tz))
                )
            else:
                text = ", ".join(_dumps(_point_json(pt)) for pt in points[lo:hi])
            out.write((", " if lo else "") + text)
        out.write("]}")
    out.write("]}\n")


def _verdict_points_json(
    points: VerdictPoints, lo: int, hi: int, zones: _Zones | None = None
) -> list[str]:
    """``_dumps(_point_json(points[i]))`` for i in [lo, hi), without making the points.

    The start times are formatted by numpy from their wall time where the zone's offset is
    a whole minute and constant over the hour (as ``datetime.isoformat`` writes them);
    elsewhere a point is made and dumped as usual.
    """
    time = points.time[lo:hi]
    offsets, formattable = (zones or _Zones(points.tz))(time)
    plain = formattable.tolist()
    wall = (time + offsets).astype("datetime64[us]")
    text = np.datetime_as_string(wall, unit="us").tolist()
    signs = np.where(offsets < 0, "-", "+")
    minutes = np.abs(offsets) // 60_000_000
    zone = [
        f"{sign}{m // 60:02d}:{m % 60:02d}"
        for sign, m in zip(signs.tolist(), minutes.tolist(), strict=True)
    ]
    statistic_json: dict[int, str] = {}
    ucl = _dumps(_finite(points.h))
    excluded = points.excluded
    result = []
    for j, (i, s, bad, sub, signal, onset) in enumerate(
        zip(
            range(lo + 1, hi + 1),
            points.statistic[lo:hi].tolist(),
            points.incorrect[lo:hi].tolist(),
            points.subgroup[lo:hi].tolist(),
            points.signal[lo:hi].tolist(),
            points.onset[lo:hi].tolist(),
            strict=True,
        )
    ):
        if not plain[j]:
            result.append(_dumps(_point_json(points[i - 1])))
            continue
        stamp = text[j]
        if stamp.endswith(".000000"):
            stamp = stamp[:-7]
        stat = statistic_json.get(s)
        if stat is None:
            stat = statistic_json[s] = _dumps(_finite(s / points.m))
        result.append(
            f'{{"index": {i}, "start": "{stamp}{zone[j]}", "n": 1, "errors": {int(bad)}, '
            f'"p": {"1.0" if bad else "0.0"}, "accuracy": {"0.0" if bad else "1.0"}, '
            f'"statistic": {stat}, "center": 0.0, "lcl": null, "ucl": {ucl}, '
            f'"signals": {SIGNALLED if signal else "[]"}, '
            f'"phase": {PHASE_I if sub <= points.phase1_count else PHASE_II}, '
            f'"excluded": {"true" if sub in excluded else "false"}, "z": null'
            + (f', "subgroup": {sub}' if sub != i else "")
            + (f', "onset": {onset}' if signal else "")
            + "}"
        )
    return result


def _verdict_points_text(points: VerdictPoints, lo: int, hi: int, zones: _Zones) -> str:
    """``", ".join(_verdict_points_json(points, lo, hi))``, assembled in bulk as byte columns
    (:func:`shared.analysis.bulk.join_rows`) when every start time's zone offset is a whole
    minute, constant over its hour (else point by point)."""
    time = points.time[lo:hi]
    offsets, formattable = zones(time)
    if not formattable.all():
        return ", ".join(_verdict_points_json(points, lo, hi, zones))
    count = hi - lo
    index = np.arange(lo + 1, hi + 1, dtype=np.int64)
    sub = points.subgroup[lo:hi].astype(np.int64)
    signal = points.signal[lo:hi]
    bad = points.incorrect[lo:hi]
    minutes = np.abs(offsets) // 60_000_000
    zone = np.empty((count, 6), dtype=np.uint8)
    zone[:, 0] = np.where(offsets < 0, ord("-"), ord("+"))
    zone[:, 1:3] = digits(minutes // 60, 2, zero_fill=True)
    zone[:, 3] = ord(":")
    zone[:, 4:6] = digits(minutes % 60, 2, zero_fill=True)
    values, which = np.unique(points.statistic[lo:hi], return_inverse=True)
    texts = [_dumps(_finite(v / points.m)).encode("ascii") for v in values.tolist()]
    statistic = np.array(texts).view(np.uint8).reshape(len(texts), -1)[which.ravel()]
    width = max(len(str(hi)), len(str(int(sub.max()) if count else 0)), 1)
    onset = points.onset[lo:hi].astype(np.int64)
    text = join_rows(
        count,
        [
            b', {"index": ',
            digits(index, width),
            b', "start": "',
            iso_text(time + offsets),
            zone,
            b'", "n": 1, "errors": ',
            np.where(
                bad[:, None],
                np.frombuffer(b'1, "p": 1.0, "accuracy": 0.0', dtype=np.uint8),
                np.frombuffer(b'0, "p": 0.0, "accuracy": 1.0', dtype=np.uint8),
            ),
            b', "statistic": ',
            statistic,
            f', "center": 0.0, "lcl": null, "ucl": {_dumps(_finite(points.h))}, "signals": ['.encode(
                "ascii"
            ),
            (b'"ucl"', signal),
            b'], "phase": "I',
            (b"I", sub > points.phase1_count),
            b'", "excluded": ',
            np.where(
                np.isin(sub, list(points.excluded))[:, None],
                np.frombuffer(b"true\0", dtype=np.uint8),
                np.frombuffer(b"false", dtype=np.uint8),
            ),
            b', "z": null',
            (b', "subgroup": ', sub != index),
            (digits(sub, width), sub != index),
            (b', "onset": ', signal),
            (
                digits(np.maximum(onset, 0), max(len(str(int(onset.max()) if count else 0)), 1)),
                signal,
            ),
            b"}",
        ],
    )
    return text[2:]


SIGNALLED = '["ucl"]'
PHASE_I = '"I"'
PHASE_II = '"II"'
_HOUR_US = 3_600_000_000


class _Zones:
    """Per UTC hour: the zone's offset (µs) and whether numpy may format its wall times
    (:func:`~shared.analysis.charts.zone_hours`), worked out once per hour and kept: the
    batches of a long chart mostly share their hours."""

    def __init__(self, tz: Any) -> None:
        self.tz = tz
        self.hours = np.zeros(0, dtype=np.int64)
        self.offsets = np.zeros(0, dtype=np.int64)
        self.formattable = np.zeros(0, dtype=np.bool_)

    def __call__(self, time: Any) -> tuple[Any, Any]:
        """Per time (µs, UTC): the zone's offset in µs, and whether numpy may format it."""
        hours, hour_of = np.unique(time // _HOUR_US, return_inverse=True)
        new = hours[~np.isin(hours, self.hours)]
        if new.size:
            offsets, _, _, formattable = zone_hours(new, self.tz)
            order = np.argsort(np.concatenate((self.hours, new)))
            self.hours = np.concatenate((self.hours, new))[order]
            self.offsets = np.concatenate((self.offsets, offsets))[order]
            self.formattable = np.concatenate((self.formattable, formattable))[order]
        at = np.searchsorted(self.hours, hours)[hour_of.ravel()]
        return self.offsets[at], self.formattable[at]


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def report_json(report: Report, *, with_points: bool = True) -> dict[str, object]:
    """The JSON document of ``qwatch analyze --json``.

    ``{"groups": [{"group", "center", "subgroups": [{"start", "n", "errors", "p", "ucl",
    "lcl", "signals", ...}]}], ...}``: ``p`` is the error proportion; ``statistic``,
    ``center``, ``lcl`` and ``ucl`` are on the chart's own scale; a per-verdict chart has
    one entry per verdict (``n`` = 1) in ``subgroups``.
    """
    spec = report.spec
    groups: list[dict[str, object]] = []
    for group in report.groups:
        baseline = group.baseline
        groups.append(
            {
                "group": group.group,
                "chart": group.chart,
                "center": None if baseline is None else baseline.p_bar,
                "n": group.n,
                "errors": group.errors,
                "accuracy": group.accuracy,
                "baseline": None
                if baseline is None
                else {
                    "source": baseline.source,
                    "p_bar": baseline.p_bar,
                    "n_total": baseline.n_total,
                    "errors_total": baseline.errors_total,
                    "n_subgroups": baseline.n_subgroups,
                    "excluded": list(baseline.excluded),
                    "sigma_z": baseline.sigma_z,
                },
                "design": {k: _finite(v) for k, v in group.design.items()},
                "notes": list(group.notes),
                "error": group.error,
                **({"subgroups": [_point_json(pt) for pt in group.points]} if with_points else {}),
            }
        )
    return {
        "source": report.source,
        "chart": spec.chart,
        "by": spec.by,
        "period": spec.period.label,
        "tz": _tz_label(report),
        "rules": spec.rule_set,
        "verdicts_read": report.rows_read,
        "verdicts_used": report.rows_used,
        "notes": list(report.notes),
        "groups": groups,
    }


# --------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------


def _matplotlib() -> tuple[Any, Any, Any]:
    try:
        figure = importlib.import_module("matplotlib.figure")
        agg = importlib.import_module("matplotlib.backends.backend_agg")
        ticker = importlib.import_module("matplotlib.ticker")
    except ImportError:
        raise AnalysisError(
            "plotting needs matplotlib, which is not installed: pip install 'qualitywatch[plot]'"
        ) from None
    return figure, agg, ticker


def write_plot(report: Report, path: Path) -> list[str]:
    """Draw the control chart of every charted group into ``path``; return notes.

    The format comes from the suffix: ``.png``, ``.svg``, ``.pdf`` (one figure, a panel per
    group) or ``.html`` (a self-contained page, one inline SVG chart per group).

    Raises:
        AnalysisError: unknown suffix, matplotlib missing, nothing to plot, or the file
            cannot be written.
    """
    suffix = path.suffix.lower()
    if suffix not in PLOT_SUFFIXES:
        raise AnalysisError(f"--plot {path.name}: use a file ending in {', '.join(PLOT_SUFFIXES)}")
    groups = list(report.charted)
    if not groups:
        raise AnalysisError("--plot: no group could be charted")
    notes = []
    if len(groups) > MAX_PLOTTED_GROUPS:
        notes.append(
            f"plotted the first {MAX_PLOTTED_GROUPS} of {len(groups)} groups; "
            "choose others with --only"
        )
        groups = groups[:MAX_PLOTTED_GROUPS]
    figure_mod, agg, ticker = _matplotlib()
    try:
        if suffix == ".html":
            path.write_text(_html_page(report, groups, figure_mod, agg, ticker), encoding="utf-8")
        else:
            fig = figure_mod.Figure(figsize=(11.0, 4.6 * len(groups)), layout="constrained")
            agg.FigureCanvasAgg(fig)
            axes = fig.subplots(len(groups), 1, squeeze=False)[:, 0]
            for ax, group in zip(axes, groups, strict=True):
                _draw(ax, report, group, ticker)
            fig.savefig(path, dpi=120, metadata=_metadata(suffix))
    except OSError as exc:
        raise AnalysisError(f"cannot write {path}: {exc}") from exc
    return notes


def _metadata(suffix: str) -> dict[str, str | None]:
    if suffix == ".png":
        return {"Software": "QualityWatch qwatch analyze"}
    if suffix == ".svg":
        return {"Creator": "QualityWatch qwatch analyze", "Date": None}
    return {"Creator": "QualityWatch qwatch analyze"}


def _html_page(
    report: Report, groups: Sequence[GroupChart], figure_mod: Any, agg: Any, ticker: Any
) -> str:
    matplotlib = importlib.import_module("matplotlib")
    sections = []
    for group in groups:
        fig = figure_mod.Figure(figsize=(11.0, 4.6), layout="constrained")
        agg.FigureCanvasAgg(fig)
        _draw(fig.subplots(), report, group, ticker)
        buffer = io.StringIO()
        with matplotlib.rc_context({"svg.hashsalt": f"qwatch-{group.group}"}):
            fig.savefig(buffer, format="svg", metadata={"Date": None})
        svg = buffer.getvalue()
        svg = svg[svg.index("<svg") :]
        assert group.baseline is not None
        signals = [pt for pt in group.points if pt.signals]
        rows = "".join(
            f"<tr><td>{pt.index}</td><td>{html.escape(_start(report, pt.start))}</td>"
            f"<td>{pt.n}</td><td>{pt.errors}</td><td>{_pct(pt.p)}</td>"
            f"<td>{html.escape(', '.join(pt.signals))}</td></tr>"
            for pt in signals[:200]
        )
        table = (
            "<table><thead><tr><th>#</th><th>start</th><th>n</th><th>errors</th><th>p</th>"
            f"<th>signals</th></tr></thead><tbody>{rows}</tbody></table>"
            if signals
            else "<p>No signals.</p>"
        )
        sections.append(
            f"<section><h2>{html.escape(_title(report, group))}</h2>{svg}"
            f"<p>{html.escape(group.baseline.describe())}<br>"
            f"{html.escape(_design_text(group))}<br>{html.escape(_summary(group, report))}</p>"
            f"{table}</section>"
        )
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in report.notes)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>QualityWatch: {html.escape(report.source)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
        "svg{max-width:100%;height:auto}table{border-collapse:collapse;font-size:90%}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "section{margin-bottom:3em}</style></head><body>"
        f"<h1>QualityWatch analysis of {html.escape(report.source)}</h1>"
        f"<p>{report.rows_used:,} of {report.rows_read:,} verdicts used; "
        f"{report.spec.period.label} subgroups ({html.escape(_tz_label(report))}).</p>"
        f"<ul>{notes}</ul>{''.join(sections)}</body></html>\n"
    )


def _draw(ax: Axes, report: Report, group: GroupChart, ticker: Any) -> None:
    """One control chart: points, centre line, step limits, signals in red."""
    points = group.points
    per_verdict = group.chart == "bernoulli-cusum"
    x = list(range(1, len(points) + 1))
    edges = [i + 0.5 for i in range(len(points) + 1)]  # each point owns [i - 0.5, i + 0.5]
    y = [pt.statistic for pt in points]
    proportion = group.chart in _PROPORTION_CHARTS

    if group.chart == "ewma":
        ax.plot(
            x,
            [pt.p for pt in points],
            linestyle="none",
            marker=".",
            color="0.65",
            label="subgroup p",
            zorder=2,
        )
    ax.plot(
        x,
        y,
        color="#1f4e79",
        marker="" if per_verdict else "o",
        markersize=4,
        linewidth=1.0 if per_verdict else 1.2,
        label=_series_label(group),
        zorder=3,
    )
    if group.chart == "cusum":
        ax.plot(
            x,
            [pt.lower_statistic or 0.0 for pt in points],
            color="#5b8db8",
            marker="o",
            markersize=3,
            linewidth=1.0,
            label="−C⁻ (improvement side)",
            zorder=3,
        )
    if not per_verdict:
        ax.stairs(
            [pt.center for pt in points],
            edges,
            baseline=None,
            color="#2e7d32",
            linewidth=1.2,
            label="centre line",
        )
    ucl = [math.nan if pt.ucl is None else pt.ucl for pt in points]
    lcl = [math.nan if pt.lcl is None else pt.lcl for pt in points]
    limit_label = {"cusum": "decision interval ±h", "bernoulli-cusum": "decision interval h"}
    ax.stairs(
        ucl,
        edges,
        baseline=None,
        color="#c62828",
        linestyle="--",
        linewidth=1.1,
        label=limit_label.get(group.chart, "control limits"),
    )
    if not all(math.isnan(v) for v in lcl):
        ax.stairs(lcl, edges, baseline=None, color="#c62828", linestyle="--", linewidth=1.1)

    excluded = [(i, pt) for i, pt in zip(x, points, strict=True) if pt.excluded]
    if excluded and not per_verdict:
        ax.plot(
            [i for i, _ in excluded],
            [pt.statistic for _, pt in excluded],
            linestyle="none",
            marker="o",
            markersize=13,
            markerfacecolor="none",
            markeredgecolor="0.35",
            markeredgewidth=1.3,
            label="excluded from baseline",
            zorder=6,
        )
    hits = [(i, pt) for i, pt in zip(x, points, strict=True) if pt.signals]
    if hits:
        hx = [i for i, _ in hits]
        hy = [
            pt.statistic
            if "lcl" not in pt.signals or group.chart != "cusum"
            else (pt.lower_statistic or 0.0)
            for _, pt in hits
        ]
        ax.plot(
            hx,
            hy,
            linestyle="none",
            marker="o",
            markersize=3 if per_verdict else 7,
            color="#d50000",
            label="signal",
            zorder=5,
        )
        if not per_verdict and len(hits) <= 60:
            for i, value, (_, pt) in zip(hx, hy, hits, strict=True):
                ax.annotate(
                    " ".join(_short(s) for s in pt.signals),
                    (i, value),
                    textcoords="offset points",
                    xytext=(0, 9),
                    ha="center",
                    va="bottom",
                    rotation=90,
                    fontsize=7,
                    color="#b71c1c",
                )
            ax.margins(y=0.25)

    phase_two = next((i for i, pt in zip(x, points, strict=True) if pt.phase == "II"), None)
    if report.spec.phase1 is not None and phase_two is not None and phase_two > 1:
        ax.axvline(phase_two - 0.5, color="0.3", linestyle=":", linewidth=1.0)
        ax.text(
            phase_two - 0.5,
            1.0,
            " Phase II →",
            transform=ax.get_xaxis_transform(),
            va="top",
            fontsize=8,
            color="0.3",
        )
        ax.text(
            phase_two - 0.5,
            1.0,
            "← Phase I ",
            transform=ax.get_xaxis_transform(),
            va="top",
            ha="right",
            fontsize=8,
            color="0.3",
        )

    labels = [pt.start for pt in points]

    def tick(value: float, _pos: int) -> str:
        i = round(value) - 1
        if not 0 <= i < len(labels) or abs(value - round(value)) > 1e-6:
            return ""
        stamp = labels[i]
        if per_verdict or report.spec.period.unit == "h":
            return stamp.strftime("%m-%d\n%H:%M")
        return stamp.strftime("%Y-%m-%d")

    ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=12, integer=True))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(tick))
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlim(0.5, len(points) + 0.5)
    unit = "verdict" if per_verdict else f"{report.spec.period.label} subgroup start"
    ax.set_xlabel(f"{unit} ({_tz_label(report)})")
    ax.set_ylabel(_y_label(group))
    ax.grid(True, color="0.92")
    if group.chart != "cusum":
        ax.set_ylim(bottom=0.0)
    if proportion:
        ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        second = ax.secondary_yaxis("right", functions=(_flip, _flip))
        second.set_ylabel("accuracy (1 − p)")
        second.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    assert group.baseline is not None
    ax.set_title(
        f"{_title(report, group)}\n"
        f"centre p̄ = {_pct(group.baseline.p_bar)} (accuracy {_pct(1 - group.baseline.p_bar)};"
        f" {_source_words(group)})\n{_summary(group, report)}",
        fontsize=10,
        loc="left",
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8, frameon=False, ncols=6)
    fired = sorted({s for pt in points for s in pt.signals if s in RULE_DESCRIPTIONS})
    if fired:
        key = "; ".join(f"{_short(s)}: {RULE_DESCRIPTIONS[s]}" for s in fired)
        ax.text(0.0, -0.30, f"UCL/LCL: beyond the control limit; {key}", transform=ax.transAxes,
                fontsize=7, color="0.25", va="top", wrap=True)  # fmt: skip


_SOURCE_WORDS = {
    "trial": "trial limits from all subgroups",
    "phase1": "frozen Phase I baseline",
    "standard": "standard given",
}


def _source_words(group: GroupChart) -> str:
    baseline = group.baseline
    assert baseline is not None
    if not baseline.excluded:
        return _SOURCE_WORDS[baseline.source]
    # how many of how many, as the report's baseline line says (a standard has none)
    of = baseline.n_subgroups + len(baseline.excluded)
    what = "trial limits" if baseline.source == "trial" else "frozen Phase I baseline"
    excluded = ", ".join(map(str, baseline.excluded))
    return f"{what} from {baseline.n_subgroups} of {of} subgroups (excluding {excluded})"


def _short(signal: str) -> str:
    """Compact label of a signal for the plot: UCL, LCL, W2 (weco2), N5 (nelson5)."""
    if signal in ("ucl", "lcl"):
        return signal.upper()
    if signal.startswith("weco"):
        return "W" + signal[4:]
    if signal.startswith("nelson"):
        return "N" + signal[6:]
    return signal


def _flip(values: Any) -> Any:
    return 1 - values


def _series_label(group: GroupChart) -> str:
    return {
        "p": "error proportion p",
        "np": "errors (count)",
        "laney": "error proportion p",
        "ewma": "EWMA of p",
        "cusum": "C⁺ (deterioration side)",
        "bernoulli-cusum": "Bernoulli CUSUM B",
    }[group.chart]


def _y_label(group: GroupChart) -> str:
    return {
        "p": "error proportion",
        "np": "errors per subgroup",
        "laney": "error proportion",
        "ewma": "EWMA of the error proportion",
        "cusum": "CUSUM (σ units)",
        "bernoulli-cusum": "B (Reynolds-Stoumbos units)",
    }[group.chart]
