"""The bulk (numpy) parse and write of ``qwatch analyze`` against the reference, value by value.

Timestamps: every shape the bulk parse takes must give ``datetime.fromisoformat``'s instant
to the microsecond, and every other value must be left to the reference reader, which then
accepts or refuses it exactly as before (same message, exit 2 from the CLI).  Files: several
chunks, with the rows the bulk parse leaves (blank, short, padded, quoted, long ids) mixed in.
JSON: the per-verdict points assembled as byte columns equal the point-by-point writer's.
"""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from services.cli import app
from shared.analysis.bulk import iso_micros, split_lines
from shared.analysis.charts import ChartSpec, VerdictPoints, build_report_columns, parse_tz
from shared.analysis.columnar import EPOCH, US, load_columns
from shared.analysis.load import EARLIEST, LATEST, LoadOptions
from shared.analysis.render import (
    _verdict_points_json,
    _verdict_points_text,
    _Zones,
    report_json,
    write_report_json,
)

from .test_columnar import (
    _lines,
    columnar_output,
    generated_rows,
    outcome,
    reference_output,
)

LOW, HIGH = (EARLIEST - EPOCH) // US, (LATEST - EPOCH) // US

TRICKY = [
    "2026-11-02T10:15:00Z",
    "2026-11-02T10:15:00+00:00",
    "2026-11-02T10:15:00-00:00",
    "2026-11-02T10:15:00+05:45",
    "2026-11-02T10:15:00-03:30",
    "2026-11-02T10:15:00+23:59",
    "2026-11-02T10:15:00-23:59",
    "2026-11-02T10:15:00+24:00",
    "2026-11-02T10:15:00+05:75",
    "2026-11-02T10:15:00+0530",
    "2026-11-02T10:15:00+05",
    "2026-11-02T10:15:00+05:30:15",
    "2026-11-02T10:15:00+05:30:15.5",
    *(f"2026-11-02T10:15:00.{'123456789'[:k]}Z" for k in range(1, 10)),
    *(f"2026-11-02T10:15:00.{'987654321'[:k]}-05:00" for k in range(1, 10)),
    "2026-11-02T10:15:00.1234567890Z",
    "2026-11-02T10:15:00.Z",
    "2026-11-02T10:15:00.000000Z",
    "2026-11-02t10:15:00Z",
    "2026-11-02T10:15:00z",
    "2026-11-02 10:15:00Z",
    "2026-11-02 10:15:00.5+01:00",
    "2026-11-02X10:15:00Z",
    "2026-11-02T10:15Z",
    "2026-11-02T10Z",
    "20261102T101500Z",
    "2026-11-02T10:15:00",
    "2026-11-02",
    "2024-02-29T12:00:00Z",
    "2000-02-29T12:00:00+01:00",
    "1900-02-29T12:00:00Z",
    "2023-02-29T12:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-12-31T23:59:59.999999Z",
    "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "2026-01-00T00:00:00Z",
    "2026-11-02T24:00:00Z",
    "2026-11-02T23:60:00Z",
    "2026-11-02T23:59:60Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T23:59:59Z",
    "0001-01-02T00:00:00Z",
    "0001-01-02T00:30:00+01:00",
    "0001-01-01T23:30:00-01:00",
    "9999-12-30T23:59:59.999999Z",
    "9999-12-31T00:00:00Z",
    "9999-12-30T23:30:00-05:00",
    "9999-12-31T23:30:00-05:00",
    "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999999Z",
    "２026-11-02T10:15:00Z",  # a full-width digit: fromisoformat's business, not ours
    "2026-11-02T10:15:00Z ",
    " 2026-11-02T10:15:00Z",
    "2026-11-02T10:15:00+05:30 ",
    "nan",
    "",
]


def reference_micros(value: str, assume_utc: bool = False) -> int | None:
    """What the reference reader makes of a value: µs since the epoch, or None if refused."""
    try:
        parsed = datetime.fromisoformat(value.strip())
        if parsed.utcoffset() is None:
            if not assume_utc:
                return None
            parsed = parsed.replace(tzinfo=UTC)
        utc = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return (utc - EPOCH) // US if EARLIEST <= utc < LATEST else None


def bulk_micros(values: list[str], assume_utc: bool = False) -> list[int | None]:
    """What the bulk parse makes of each value (a CSV line each): None where it declines."""
    chunk = "".join(f"{v}\n" for v in values).encode("utf-8")
    fields = split_lines(chunk, 1)
    assert fields is not None
    micros, ok = iso_micros(fields.data, *fields.field(0), LOW, HIGH, assume_utc)
    taken = dict(
        zip(fields.regular.tolist(), zip(micros.tolist(), ok.tolist(), strict=True), strict=True)
    )
    return [
        value if good else None
        for value, good in (taken.get(i, (0, False)) for i in range(len(values)))
    ]


@pytest.mark.parametrize("assume_utc", [False, True])
def test_tricky_timestamps_are_read_as_fromisoformat_reads_them(assume_utc: bool) -> None:
    for value, got in zip(TRICKY, bulk_micros(TRICKY, assume_utc), strict=True):
        if got is not None:
            assert got == reference_micros(value, assume_utc), value


def test_the_common_shapes_take_the_bulk_path() -> None:
    common = [
        "2026-11-02T10:15:00Z",
        "2026-11-02T10:15:00+05:45",
        "2026-11-02 10:15:00.123-05:00",
        "2026-11-02T10:15:00.123456789Z",
        "2024-02-29T00:00:00Z",
    ]
    assert None not in bulk_micros(common)
    # without a zone, with --assume-utc: UTC (it was read row by row, ten times slower)
    naive = ["2026-11-02T10:15:00", "2026-11-02 10:15:00.123", "2026-11-02T10:15:00.123456789"]
    assert bulk_micros(naive) == [None, None, None]
    assert bulk_micros(naive, True) == [reference_micros(v, True) for v in naive]
    assert None not in bulk_micros(naive, True)
    assert bulk_micros(common, True) == bulk_micros(common)  # (a zone still counts)


_ZONES = st.builds(
    lambda sign, hours, minutes: f"{sign}{hours:02d}:{minutes:02d}",
    st.sampled_from("+-"),
    st.integers(0, 24),
    st.integers(0, 61),
)


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    digits=st.integers(0, 10),
    separator=st.sampled_from(["T", " ", "t", "_"]),
    zone=st.one_of(st.sampled_from(["Z", "z", ""]), _ZONES),
    assume_utc=st.booleans(),
)
def test_generated_timestamps_match_fromisoformat(
    when: datetime, digits: int, separator: str, zone: str, assume_utc: bool
) -> None:
    fraction = f"{when.microsecond:06d}{when.microsecond % 997:03d}"[:digits]
    value = (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}{separator}"
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
        + ("." + fraction if digits else "")
        + zone
    )
    (got,) = bulk_micros([value], assume_utc)
    if got is not None:
        assert got == reference_micros(value, assume_utc)


def test_out_of_range_and_malformed_timestamps_keep_their_message_and_exit_2(
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    for bad in [
        "9999-12-31T23:30:00-05:00",
        "0001-01-01T00:30:00+01:00",
        "2023-02-29T12:00:00Z",
        "2026-11-02T24:00:00Z",
        "2026-11-02T10:15:00+24:00",
        "2026-11-02t10:15:00z",
        "2026-11-02T10:15:00",
    ]:
        path = tmp_path / "v.csv"
        path.write_text(
            "queue_id,reviewed_at,correct\n"
            + "q,2026-11-02T10:15:00Z,true\n" * 3
            + f"q,{bad},true\n",
            encoding="utf-8",
        )
        spec = ChartSpec(chart="bernoulli-cusum")
        expected = outcome(reference_output, path, spec, LoadOptions())
        assert isinstance(expected, str)
        assert expected.startswith("InputError: line 5")
        assert outcome(columnar_output, path, spec, LoadOptions()) == expected
        result = runner.invoke(app, ["analyze", str(path)])
        assert result.exit_code == 2
        # (the command names the file before a line: shared/analysis/cli.py)
        assert result.stderr.strip() == f"error: {path.name}: " + expected.removeprefix(
            "InputError: "
        )


@pytest.mark.parametrize("quoted_at", [None, 0.3, 0.7])
def test_a_file_of_several_chunks_with_odd_rows_reads_as_the_reference(
    tmp_path: Path, quoted_at: float | None
) -> None:
    rows = generated_rows(5, 32_000)
    rng = random.Random(5)
    for i, row in enumerate(rows):
        pick = rng.random()
        if pick < 0.01:
            row["verdict_id"] = f"a-long-verdict-id-{i % 5000}"  # past 8 bytes; repeated
        elif pick < 0.015:
            row["verdict_id"] = f" v{i % 3000}\u00a0"  # stripped as str.strip strips
        elif pick < 0.02:
            row["verdict_id"] = f"vé{i % 300}"
        elif pick < 0.025:
            row["queue_id"] = f" {row['queue_id']} "
        elif pick < 0.03:
            row["reviewed_at"] = row["reviewed_at"].replace("T", " ")
    lines = _lines(rows)
    for at in range(2000, len(lines), 3001):
        lines.insert(at, "\n")  # a blank line
        lines.insert(at + 7, " , ,\n")  # a blank row, short
    if quoted_at is not None:
        at = int(quoted_at * len(lines))
        lines[at] = lines[at].replace(",", ',"', 1).replace(",", '",', 2).replace('",', ",", 1)
        assert '"' in lines[at]
    path = tmp_path / "v.csv"
    path.write_text("".join(lines), encoding="utf-8")
    assert path.stat().st_size > 2 << 20  # three chunks at least
    for spec in (ChartSpec(chart="p", by="site"), ChartSpec(chart="bernoulli-cusum")):
        expected = outcome(reference_output, path, spec, LoadOptions())
        assert outcome(columnar_output, path, spec, LoadOptions()) == expected


def test_bulk_json_of_verdict_points_is_the_point_by_point_json() -> None:
    rng = np.random.default_rng(7)
    count = 5000
    subgroup = np.sort(rng.integers(1, 40, count))
    subgroup[:100] = np.arange(1, 101)  # some equal to their index
    signal = rng.random(count) < 0.05
    for tz in (UTC, timezone(timedelta(hours=5, minutes=45)), parse_tz("America/New_York")):
        points = VerdictPoints(
            time=np.sort(rng.integers(-(10**15), 4 * 10**15, count)),
            subgroup=subgroup,
            incorrect=rng.random(count) < 0.1,
            statistic=rng.integers(0, 5000, count),
            signal=signal,
            onset=np.where(signal, rng.integers(1, 10**7, count), 0),
            m=37,
            h=4.25,
            phase1_count=12,
            excluded=[3, 17],
            tz=tz,
        )
        zones = _Zones(tz)
        for lo, hi in ((0, count), (1, 2), (4000, 5000)):
            expected = ", ".join(_verdict_points_json(points, lo, hi))
            assert _verdict_points_text(points, lo, hi, zones) == expected
            json.loads("[" + expected + "]")


def test_the_columnar_json_is_unchanged_for_a_per_verdict_chart_across_batches(
    tmp_path: Path,
) -> None:
    rows = generated_rows(9, 70_000)
    path = tmp_path / "v.csv"
    path.write_text("".join(_lines(rows)), encoding="utf-8")
    spec = ChartSpec(chart="bernoulli-cusum", tz=parse_tz("Asia/Kathmandu"))
    report = build_report_columns(load_columns(path, LoadOptions(), "queue"), spec, path.name)
    out = io.StringIO()
    write_report_json(report, out)
    expected = json.dumps(report_json(report), ensure_ascii=False, allow_nan=False) + "\n"
    assert out.getvalue() == expected
