"""The columnar loader and charts (what ``qwatch analyze`` runs) against the reference path.

The reference is :func:`shared.analysis.load.load_verdicts` + :func:`build_report` +
:func:`report_json`, one object per verdict: the columnar path must print the same JSON
document and the same tables, byte for byte, and refuse bad files with the same message.
The files are generated from a seed (hypothesis picks the seeds): several queues, sites and
policies, offsets from -05:00 to +05:45, late rows (out of time order), repeated verdict
ids, sample types, every spelling of the outcome, a daylight-saving change inside the data.
"""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from shared.analysis import columnar
from shared.analysis.charts import (
    CHART_KINDS,
    ChartSpec,
    Exclusion,
    Period,
    build_report,
    build_report_columns,
    parse_tz,
)
from shared.analysis.columnar import MAX_LINE_BYTES, load_columns
from shared.analysis.errors import AnalysisError, InputError
from shared.analysis.load import _TRUE, LoadOptions, load_verdicts, parse_row
from shared.analysis.render import print_report, report_json, write_report_json
from shared.stats import StatsError
from tests.conftest import need_module

from .helpers import verdict_rows, write_csv, write_ndjson

OFFSETS = [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=45)),
           timezone(timedelta(hours=8)), timezone(timedelta(hours=-3, minutes=-30))]  # fmt: skip
START = datetime(2026, 10, 25, tzinfo=UTC)  # the US and EU clocks go back inside the data
COLUMNS = ["verdict_id", "queue_id", "site_id", "policy_id", "reviewed_at", "correct",
           "outcome", "sample_type", "error_type"]  # fmt: skip


def generated_rows(seed: int, count: int) -> list[dict[str, Any]]:
    """Verdicts with late data, duplicates, sample types and mixed spellings."""
    rng = random.Random(seed)
    queues = [f"q{i}" for i in range(rng.randint(1, 4))]
    rate = {q: rng.uniform(0.02, 0.3) for q in queues}
    rows: list[dict[str, Any]] = []
    for i in range(count):
        queue = rng.choice(queues)
        at = START + timedelta(seconds=rng.uniform(0, 14 * 86400))
        if rows and rng.random() < 0.1:  # late: earlier than the rows before it
            at -= timedelta(hours=rng.uniform(1, 72))
        if rng.random() < 0.05:  # a burst at a fixed instant: ties in time
            at = START + timedelta(days=3)
        incorrect = rng.random() < rate[queue] * (2.5 if at > START + timedelta(days=9) else 1)
        spelling = rng.choice(["bool", "int", "yesno", "outcome", "upper", "both"])
        correct: str = ""
        outcome = ""
        if spelling == "bool":
            correct = "false" if incorrect else "true"
        elif spelling == "int":
            correct = "0" if incorrect else "1"
        elif spelling == "yesno":
            correct = " no " if incorrect else "Yes"
        elif spelling == "upper":
            correct = "F" if incorrect else "T"
        elif spelling == "both":  # the two columns, agreeing
            correct, outcome = ("no", " INCORRECT") if incorrect else ("1", "Correct ")
        else:
            outcome = "Incorrect" if incorrect else "correct"
        verdict_id = f"v{i}" if rng.random() < 0.9 else f"v{rng.randrange(max(1, i))}"
        stamp = at.astimezone(rng.choice(OFFSETS)).isoformat()
        if stamp.endswith("+00:00") and rng.random() < 0.5:
            stamp = stamp[:-6] + "Z"
        rows.append(
            {
                "verdict_id": verdict_id if rng.random() < 0.95 else "",
                "queue_id": queue,
                "site_id": rng.choice(["manila", "dublin", "austin", ""]),
                "policy_id": rng.choice(["hate", "spam", "nudity"]),
                "reviewed_at": stamp,
                "correct": correct,
                "outcome": outcome,
                "sample_type": rng.choice(["random"] * 8 + ["targeted", "appeal", " RANDOM ", ""]),
                "error_type": rng.choice(["", "wrong-policy", "missed"]),
            }
        )
    return rows


def reference_output(path: Path, spec: ChartSpec, options: LoadOptions) -> tuple[str, str]:
    report = build_report(load_verdicts(path, options), spec, path.name)
    document = json.dumps(report_json(report), ensure_ascii=False, allow_nan=False) + "\n"
    return document, _table(report)


def columnar_output(path: Path, spec: ChartSpec, options: LoadOptions) -> tuple[str, str]:
    report = build_report_columns(load_columns(path, options, spec.by), spec, path.name)
    out = io.StringIO()
    write_report_json(report, out)
    return out.getvalue(), _table(report)


def _table(report: Any) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    print_report(report, console)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def outcome(fn: Any, *args: Any) -> tuple[str, str] | str:
    try:
        result: tuple[str, str] = fn(*args)
    except (AnalysisError, StatsError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return result


def write(tmp: Path, rows: list[dict[str, Any]], fmt: str) -> Path:
    if fmt == "csv":
        return write_csv(tmp / "v.csv", rows, COLUMNS)
    if fmt == "ndjson":
        # NDJSON leaves empty fields out, as an exporter would
        return write_ndjson(tmp / "v.ndjson", [{k: v for k, v in r.items() if v} for r in rows])
    need_module("pyarrow")
    import pyarrow as pa  # type: ignore[import-untyped, import-not-found, unused-ignore]
    import pyarrow.parquet as pq  # type: ignore[import-untyped, import-not-found, unused-ignore]

    path = tmp / "v.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


_BY = [("queue", "1d", "UTC"), ("site", "1w", "Asia/Kathmandu"), ("policy", "1d", "Asia/Manila")]
SPECS = [
    ChartSpec(chart=chart, by=by, period=Period.parse(period), tz=parse_tz(tz))
    for i, chart in enumerate(CHART_KINDS)
    for by, period, tz in (_BY[i % 3], _BY[(i + 1) % 3])
] + [
    # the US clocks go back on 2026-11-01: the hour 01:00-02:00 comes twice
    ChartSpec(chart="p", period=Period.parse("1h"), tz=parse_tz("America/New_York")),
    ChartSpec(
        chart="bernoulli-cusum", by="site", period=Period.parse("4h"), tz=parse_tz("Europe/Dublin")
    ),
    ChartSpec(chart="p", phase1=5, rules="nelson"),
    ChartSpec(chart="laney", phase1=4, by="site"),
    ChartSpec(chart="ewma", baseline_rate=0.1, lam=0.3),
    ChartSpec(chart="bernoulli-cusum", phase1=3, p1=0.4, h=3.0, exclude=(Exclusion(2),)),
    ChartSpec(chart="bernoulli-cusum", arl0=5000.0, by="policy", tz=parse_tz("Asia/Manila")),
]


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), fmt=st.sampled_from(["csv", "ndjson"]))
def test_columnar_path_prints_what_the_reference_prints(
    tmp_path_factory: pytest.TempPathFactory, seed: int, fmt: str
) -> None:
    tmp = tmp_path_factory.mktemp("gen")
    path = write(tmp, generated_rows(seed, 300), fmt)
    for i, spec in enumerate(SPECS):
        options = LoadOptions(all_samples=i % 3 == 1)
        expected = outcome(reference_output, path, spec, options)
        assert outcome(columnar_output, path, spec, options) == expected, (spec, fmt)


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet", "csv.gz", "ndjson.gz"])
def test_every_format_and_the_only_option(tmp_path: Path, fmt: str) -> None:
    rows = generated_rows(7, 300)
    if fmt.endswith(".gz"):
        import gzip

        plain = write(tmp_path, rows, fmt.removesuffix(".gz"))
        path = tmp_path / f"v.{fmt}"
        path.write_bytes(gzip.compress(plain.read_bytes()))
    else:
        path = write(tmp_path, rows, fmt)
    for spec in [
        ChartSpec(chart="bernoulli-cusum", only=("q0",)),
        ChartSpec(chart="cusum", by="site", only=("manila", "dublin")),
        ChartSpec(chart="np", period=Period.parse("2h"), tz=parse_tz("Australia/Lord_Howe")),
    ]:
        options = LoadOptions()
        assert outcome(columnar_output, path, spec, options) == outcome(
            reference_output, path, spec, options
        )


def _lines(rows: list[dict[str, Any]]) -> list[str]:
    buffer = io.StringIO()
    import csv

    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().splitlines(keepends=True)


BAD_CSV_LINES = [
    "q0,,,,2026-10-01T10:00:00,true,,random,\n",  # naive
    "q0,,,,9999-12-31T23:30:00-05:00,true,,random,\n",  # overflows in UTC
    "q0,,,,0001-01-01T00:30:00+01:00,true,,random,\n",  # before year 1 in UTC
    "q0,,,,2026-13-01T10:00:00Z,true,,random,\n",
    "q0,,,,2026-10-01T10:00:00Z,maybe,,random,\n",
    "q0,,,,2026-10-01T10:00:00Z,,wrong,random,\n",
    ",,,,2026-10-01T10:00:00Z,true,,random,\n",  # no queue
    "q0,,,,2026-10-01T10:00:00Z,true,,random,,extra\n",
    'q0,,,,"2026-10-01T10:00:00Z,true\n',  # unterminated quote
    "q0,,,,nan,true,,random,\n",
    "q0,,,,inf,1,,random,\n",
]


@pytest.mark.parametrize("bad", BAD_CSV_LINES)
@pytest.mark.parametrize("where", [0.1, 0.9])
def test_bad_csv_rows_are_refused_with_the_reference_message(
    tmp_path: Path, bad: str, where: float
) -> None:
    lines = _lines(generated_rows(3, 200))
    at = 1 + int(where * (len(lines) - 1))
    text = "".join(lines[:at]) + _shift(bad) + "".join(lines[at:])
    path = tmp_path / "v.csv"
    path.write_text(text, encoding="utf-8")
    spec = ChartSpec()
    expected = outcome(reference_output, path, spec, LoadOptions())
    assert isinstance(expected, str)
    assert expected.startswith("InputError")
    assert outcome(columnar_output, path, spec, LoadOptions()) == expected


def _shift(bad: str) -> str:
    """The bad row in COLUMNS order (verdict_id first)."""
    return "," + bad


BAD_NDJSON = [
    '{"queue_id": "q0", "reviewed_at": "2026-10-01T10:00:00Z", "correct": "yes", "site_id": [1]}',
    '{"queue_id": ["q0"], "reviewed_at": "2026-10-01T10:00:00Z", "correct": true}',
    '{"queue_id": "q0", "reviewed_at": 1767225600, "correct": true}',
    '{"queue_id": "q0", "reviewed_at": "9999-12-31T23:30:00-05:00", "correct": true}',
    '{"queue_id": "q0", "reviewed_at": "2026-10-01T10:00:00Z", "correct": 2}',
    '{"queue_id": "q0", "reviewed_at": "2026-10-01T10:00:00Z", "correct": NaN}',
    '{"queue_id": "q0", "reviewed_at": "2026-10-01T10:00:00Z", "correct": Infinity}',
    '{"queue_id": "q0", "reviewed_at": "2026-10-01T10:00:00Z"',
    "[1, 2]",
    '{"queue_id": 7, "reviewed_at": "2026-10-01T10:00:00Z", "correct": 1.0}',
    # a number where the live pipeline takes a string (queue_id 7 was charted as "7")
    '{"queue_id": 7, "reviewed_at": "2026-10-01T10:00:00Z", "correct": true}',
    '{"queue_id": "q0", "verdict_id": 12, "reviewed_at": "2026-10-01T10:00:00Z", "correct": "1"}',
    '{"queue_id": "q0", "site_id": 3, "reviewed_at": "2026-10-01T10:00:00Z", "correct": "1"}',
    # correct and outcome disagree
    '{"queue_id": "q0", "reviewed_at": "2026-10-01T10:00:00Z", "correct": "1", "outcome": "incorrect"}',
    '{"queue_id": "q0", "reviewed_at": "2026-10-01T10:00:00Z", "correct": false, "outcome": "correct"}',
]


@pytest.mark.parametrize("bad", BAD_NDJSON)
def test_bad_ndjson_rows_are_refused_with_the_reference_message(tmp_path: Path, bad: str) -> None:
    rows = [{k: v for k, v in r.items() if v} for r in generated_rows(4, 200)]
    lines = [json.dumps(r) for r in rows]
    lines.insert(120, bad)
    path = tmp_path / "v.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = ChartSpec(chart="bernoulli-cusum")
    expected = outcome(reference_output, path, spec, LoadOptions())
    assert isinstance(expected, str)
    assert expected.startswith("InputError")
    assert outcome(columnar_output, path, spec, LoadOptions()) == expected


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"", "v.csv"),
        (b"  \n\t\n", "v.csv"),
        (b"\n \n", "v.ndjson"),
        (b"queue_id,reviewed_at,correct\n", "v.csv"),
        (b"queue_id,when,correct\nq,2026-10-01T10:00:00Z,true\n", "v.csv"),
        (b'{"queue_id": "q", "correct": true}\n', "v.ndjson"),
        # an undecodable byte late in the file is reported before an earlier bad row
        (
            b"queue_id,reviewed_at,correct\nq,bad,true\nq,2026-10-01T10:00:00Z,true\n\xff\n",
            "v.csv",
        ),
        (b'\xef\xbb\xbf{"queue_id": "q"}\n{"x": "\xc3"}\n', "v.ndjson"),
        # a structural error late in the file is reported before an earlier bad row
        (b"queue_id,reviewed_at,correct\nq,bad,true\nq,x,true,4\n", "v.csv"),
        (b"queue_id,reviewed_at,correct\rq,2026-10-01T10:00:00Z,true\rq,x,true\r", "v.csv"),
        (b"a,a\n1,2\n", "v.csv"),
    ],
)
def test_whole_file_problems_match_the_reference(tmp_path: Path, data: bytes, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    spec = ChartSpec()
    expected = outcome(reference_output, path, spec, LoadOptions())
    assert outcome(columnar_output, path, spec, LoadOptions()) == expected


def test_a_line_longer_than_the_bound_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "v.ndjson"
    with path.open("w") as f:
        f.write('{"queue_id": "q", "reviewed_at": "2026-10-01T10:00:00Z", "correct": true}\n')
        f.write('{"queue_id": "' + "x" * (MAX_LINE_BYTES + 10) + '"}\n')
    with pytest.raises(InputError, match=r"^line 2 is longer than 1,048,576 bytes"):
        load_columns(path)


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet"])
def test_a_backfill_exports_decisions_are_skipped_and_said_and_other_kinds_are_read(
    tmp_path: Path, fmt: str
) -> None:
    """A `kind` column (qwatch backfill's export of decisions and verdicts) used to stop at
    the first decision with "column 'reviewed_at': no value", which did not say why (a new
    user's trial); then the first decision was refused by name, so the file a user
    backfills could not be analysed without filtering it first (a second trial). Both
    paths now skip the decision rows, whatever their spelling and other cells, say how
    many, and read every other kind as before: the report is the verdicts' own."""
    rows = generated_rows(11, 120)
    kinds = ["verdict", "image", " Verdict ", ""]
    verdicts = [{**r, "kind": kinds[i % 4]} for i, r in enumerate(rows)]
    decision = {"kind": "decision", "queue_id": "q0", "correct": "maybe"}
    # the first decision in file order is named, whatever its spelling and wherever the
    # fast paths are (the csv module reads a file with a quote in its first chunk)
    mixed = [*verdicts[:50], {**decision, "kind": " DECISION "}, *verdicts[50:80], decision,
             *verdicts[80:]]  # fmt: skip
    spec, options = ChartSpec(chart="p"), LoadOptions()
    columns = [*COLUMNS, "kind"]
    quoted = [{**verdicts[0], "error_type": "a,b"}, *verdicts[1:]]
    cases = [("mixed", mixed), ("verdicts", verdicts)]
    cases += [("quoted mixed", [quoted[0], *mixed[1:]]), ("quoted", quoted)] if fmt == "csv" else []
    documents: dict[str, Any] = {}
    tables: dict[str, str] = {}
    for name, data in cases:
        folder = tmp_path / name
        folder.mkdir()
        if fmt == "csv":
            path = write_csv(folder / "v.csv", data, columns)
        elif fmt == "ndjson":
            path = write_ndjson(
                folder / "v.ndjson", [{k: v for k, v in r.items() if v} for r in data]
            )
        else:
            path = write(folder, data, "parquet")
        expected = outcome(reference_output, path, spec, options)
        assert outcome(columnar_output, path, spec, options) == expected, (name, fmt)
        assert not isinstance(expected, str), expected
        documents[name] = document = json.loads(expected[0])
        tables[name] = expected[1]
        if not name.endswith("mixed"):
            assert not any("decision" in n for n in document["notes"])
    skipped = "2 decision row(s) skipped (kind 'decision': an export for qwatch backfill"
    for name in [n for n in documents if n.endswith("mixed")]:
        document, alone = (
            documents[name],
            documents[name.replace("mixed", "").strip() or "verdicts"],
        )
        assert any(n.startswith(skipped) for n in document["notes"]), document["notes"]
        assert skipped in tables[name]
        for key in ("verdicts_read", "verdicts_used", "groups"):
            assert document[key] == alone[key], (name, key)


def _counting_parse_row(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the rows the columnar loader reads the reference (slow) way."""
    calls = [0]

    def counted(*args: Any) -> Any:
        calls[0] += 1
        return parse_row(*args)

    monkeypatch.setattr(columnar, "parse_row", counted)
    return calls


@pytest.mark.parametrize("layout", ["csv", "csv, quoted", "ndjson"])
def test_a_kind_column_keeps_the_fast_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    """A `kind` column (say a content kind) sent every row the reference way, a big file
    losing the speed target; now only a decision row leaves the fast paths (to be skipped
    as the reference skips it)."""
    rows = [{**r, "kind": ["verdict", "image", " Verdict ", ""][i % 4]}
            for i, r in enumerate(verdict_rows([5, 9, 3], n=400, sample_type="random"))]  # fmt: skip
    if layout == "csv, quoted":  # a quote: the csv module reads the file, row by row
        rows[0]["error_type"] = "a,b"
    columns = list(dict.fromkeys([*rows[0], "error_type"]))
    folder = tmp_path / "verdicts"
    folder.mkdir()

    def write_rows(data: list[dict[str, Any]]) -> Path:
        if layout == "ndjson":
            return write_ndjson(folder / "v.ndjson", data)
        return write_csv(folder / "v.csv", data, columns)

    spec, options = ChartSpec(chart="bernoulli-cusum"), LoadOptions()
    calls = _counting_parse_row(monkeypatch)
    path = write_rows(rows)
    expected = outcome(reference_output, path, spec, options)
    assert not isinstance(expected, str), expected
    assert outcome(columnar_output, path, spec, options) == expected
    assert calls[0] == 0, "every row should take a fast path"

    # a decision, before or after a bad value: skipped; the value is named either way
    decision = {**rows[700], "kind": "Decision"}
    naive = {**rows[900], "reviewed_at": "2026-10-01T10:00:00"}
    header = 0 if layout == "ndjson" else 1  # (the header is line 1 of a CSV file)
    for first, then in ((decision, naive), (naive, decision)):
        path = write_rows([*rows[:700], first, *rows[701:900], then, *rows[901:]])
        expected = outcome(reference_output, path, spec, options)
        line = (901 if first is decision else 701) + header
        assert isinstance(expected, str)
        assert expected.startswith(f"InputError: line {line}, column 'reviewed_at'"), expected
        assert outcome(columnar_output, path, spec, options) == expected


@pytest.mark.parametrize("fmt", ["csv", "csv, quoted", "ndjson", "parquet"])
def test_correct_and_outcome_that_disagree_are_refused_on_every_path(
    tmp_path: Path, fmt: str
) -> None:
    """Both columns, disagreeing, at its line; agreeing, as the reference reads them."""
    rows = generated_rows(5, 400)
    if fmt == "csv, quoted":
        rows[0]["error_type"] = "a,b"
    for row in rows[:300]:  # both columns, agreeing (on the fast paths)
        if row["correct"]:
            incorrect = row["correct"].strip().lower() in ("false", "0", "no", "f")
            row["outcome"] = "incorrect" if incorrect else "correct"
    bad = dict(rows[250])
    bad.update(
        correct="True", outcome=" incorrect", queue_id="q0", reviewed_at="2026-10-27T10:00:00Z"
    )
    spec, options = ChartSpec(chart="np"), LoadOptions()
    for name, data in (("agreeing", rows), ("conflict", [*rows[:250], bad, *rows[251:]])):
        folder = tmp_path / name
        folder.mkdir()
        path = write(folder, data, fmt.split(",")[0])
        expected = outcome(reference_output, path, spec, options)
        assert outcome(columnar_output, path, spec, options) == expected, (name, fmt)
        if name == "conflict":
            line = 251 if fmt in ("ndjson", "parquet") else 252
            unit = "row" if fmt == "parquet" else "line"
            assert expected == (
                f"InputError: {unit} {line}: 'correct' and 'outcome' disagree "
                "(correct 'True', outcome ' incorrect')"
            )
        else:
            assert not isinstance(expected, str), expected


def _parquet_variants(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, LoadOptions]]:
    """The same verdicts as Parquet exporters write them: all text (as read from a CSV), or
    typed (times as timestamps of each unit, in UTC, at an offset or naive; correct as a
    boolean or 0/1; blanks as nulls)."""
    pa = need_module("pyarrow")
    from shared.analysis.load import _TRUE

    def blank_null(r: dict[str, Any]) -> dict[str, Any]:
        return {k: (None if v == "" else v) for k, v in r.items()}

    instants = [datetime.fromisoformat(r["reviewed_at"].strip()) for r in rows]
    said = [None if not r["correct"] else r["correct"].strip().lower() in _TRUE for r in rows]
    nulls = [blank_null(r) for r in rows]

    def typed(time: Any, correct: Any) -> Any:
        table = pa.Table.from_pylist(nulls)
        table = table.set_column(table.schema.get_field_index("reviewed_at"), "reviewed_at", time)
        return table.set_column(table.schema.get_field_index("correct"), "correct", correct)

    micros = [int((t - EPOCH_UTC) // timedelta(microseconds=1)) for t in instants]
    return {
        "text": (pa.Table.from_pylist(rows), LoadOptions()),
        "us, UTC, boolean": (
            typed(pa.array(micros, pa.timestamp("us", tz="UTC")), pa.array(said, pa.bool_())),
            LoadOptions(),
        ),
        "ns at +05:45, 0/1": (
            typed(
                pa.array([m * 1000 for m in micros], pa.timestamp("ns", tz="+05:45")),
                pa.array([None if s is None else int(s) for s in said], pa.int8()),
            ),
            LoadOptions(),
        ),
        "s, UTC, text": (
            typed(
                pa.array([m // 10**6 for m in micros], pa.timestamp("s", tz="UTC")),
                pa.array([r["correct"] for r in rows], pa.string()),
            ),
            LoadOptions(),
        ),
        "categories, ms at -05:00": (
            typed(
                pa.array([m // 1000 for m in micros], pa.timestamp("ms", tz="-05:00")),
                pa.array(said, pa.bool_()),
            ),
            LoadOptions(),
        ),
        "naive, --assume-utc": (
            typed(pa.array(micros, pa.timestamp("us")), pa.array(said, pa.bool_())),
            LoadOptions(assume_utc=True),
        ),
    }


EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "variant",
    [
        "text",
        "us, UTC, boolean",
        "ns at +05:45, 0/1",
        "s, UTC, text",
        "categories, ms at -05:00",
        "naive, --assume-utc",
    ],
)
def test_parquet_columns_are_read_as_the_reference_reads_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    """Parquet was read row by row (10 M rows: minutes); its typed and text columns are now
    read as columns, batch by batch, and each row the columns cannot say is read the
    reference way in its place: the same report, whatever the types."""
    pq = need_module("pyarrow.parquet")
    rows = generated_rows(11, 900)
    for r in rows[::50]:
        r["reviewed_at"] = f" {r['reviewed_at']} "  # (text: the reference strips it)
    table, options = _parquet_variants(rows)[variant]
    if variant.startswith("categories"):  # pandas' category columns: dictionaries
        for name in ("queue_id", "site_id", "sample_type", "outcome"):
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, table.column(name).dictionary_encode())
    path = tmp_path / "v.parquet"
    pq.write_table(table, path)
    monkeypatch.setattr(columnar, "PARQUET_BATCH_ROWS", 128)  # several batches
    calls = _counting_parse_row(monkeypatch)
    for spec in (ChartSpec(), ChartSpec(chart="bernoulli-cusum", by="site"), SPECS[5]):
        calls[0] = 0
        expected = outcome(reference_output, path, spec, options)
        assert not isinstance(expected, str), expected
        assert outcome(columnar_output, path, spec, options) == expected, spec
        # the only rows the columns do not say: the text times with spaces (18)
        assert calls[0] == (18 if variant == "text" else 0), calls


@pytest.mark.parametrize(
    ("change", "first"),
    [
        ({"queue_id": None}, "InputError: row 301, column 'queue_id': no value"),
        ({"correct": "maybe"}, "InputError: row 301, column 'correct'"),
        ({"correct": "no", "outcome": "correct"}, "InputError: row 301: 'correct' and 'outcome'"),
        ({"reviewed_at": "2026-10-01T10:00:00"}, "InputError: row 301, column 'reviewed_at'"),
    ],
)
def test_a_bad_parquet_row_is_refused_with_the_reference_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any], first: str
) -> None:
    pa = need_module("pyarrow")
    pq = need_module("pyarrow.parquet")
    rows = [{**r, "kind": "verdict"} for r in generated_rows(5, 600)]
    rows[300] = {**rows[300], **change}
    path = tmp_path / "v.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    monkeypatch.setattr(columnar, "PARQUET_BATCH_ROWS", 100)
    expected = outcome(reference_output, path, ChartSpec(), LoadOptions())
    assert isinstance(expected, str)
    assert expected.startswith(first), expected
    assert outcome(columnar_output, path, ChartSpec(), LoadOptions()) == expected


def test_parquet_nanoseconds_are_truncated_to_the_microsecond(tmp_path: Path) -> None:
    """A nanosecond time that is not a whole microsecond cannot become a Python datetime:
    pyarrow refused the whole file ("install pandas"), in a time column or any other. Both
    readers now truncate it to the microsecond, as digits past the sixth of a text time."""
    pa = need_module("pyarrow")
    pq = need_module("pyarrow.parquet")
    n = 300
    ns = [1_790_000_000_000_000_000 + i * 10**9 + 999 * (i % 2) for i in range(n)]
    for what in ("reviewed_at", "other"):
        whole = [t - t % 1000 for t in ns]
        times = pa.array(ns if what == "reviewed_at" else whole, pa.timestamp("ns", tz="UTC"))
        table = pa.table({"queue_id": ["q"] * n, "reviewed_at": times, "correct": [True] * n})
        if what == "other":
            table = table.append_column("other", pa.array(ns, pa.timestamp("ns", tz="UTC")))
        path = tmp_path / f"{what}.parquet"
        pq.write_table(table, path)
        expected = outcome(reference_output, path, ChartSpec(), LoadOptions())
        assert not isinstance(expected, str), expected
        assert outcome(columnar_output, path, ChartSpec(), LoadOptions()) == expected
    truncated = load_verdicts(tmp_path / "reviewed_at.parquet").rows[1].reviewed_at
    assert truncated.microsecond == 0  # (1 s + 999 ns: the 999 ns cut)


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet"])
def test_a_file_that_says_outcome_only_keeps_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """No correct column, or a blank one on a row: the outcome says it, on the fast path
    too (a file of outcomes was read row by row, far from the speed target)."""
    rows = generated_rows(13, 600)
    for r in rows:
        if r["correct"] and not r["outcome"]:
            incorrect = r["correct"].strip().lower() in ("false", "0", "no", "f")
            r["outcome"] = "incorrect" if incorrect else "correct"
        r["correct"] = ""
    if fmt == "parquet":
        pa = need_module("pyarrow")
        pq = need_module("pyarrow.parquet")
        path = tmp_path / "v.parquet"
        pq.write_table(pa.Table.from_pylist([{k: v for k, v in r.items() if k != "correct"}
                                             for r in rows]), path)  # fmt: skip
    elif fmt == "ndjson":
        path = write_ndjson(
            tmp_path / "v.ndjson", [{k: v for k, v in r.items() if v} for r in rows]
        )
    else:
        path = write_csv(tmp_path / "v.csv", rows, [c for c in COLUMNS if c != "correct"])
    calls = _counting_parse_row(monkeypatch)
    for spec in (ChartSpec(), ChartSpec(chart="bernoulli-cusum", by="site")):
        expected = outcome(reference_output, path, spec, LoadOptions())
        assert not isinstance(expected, str), expected
        assert outcome(columnar_output, path, spec, LoadOptions()) == expected
    assert calls[0] == 0


def test_pandas_float_correct_and_the_values_errors_show(tmp_path: Path) -> None:
    """pandas writes a 0/1 column with gaps as floats: `correct` 1.0 / 0.0 was refused, in
    Parquet and in CSV ("1.0"). And errors showed Python's reprs of the values:
    `datetime.datetime(2026, 9, 1, 0, 0, 34)`, `datetime.date(2026, 9, 1)`, `True`."""
    pa = need_module("pyarrow")
    pq = need_module("pyarrow.parquet")
    rows = generated_rows(17, 300)
    said = [None if not r["correct"] else r["correct"].strip().lower() in _TRUE for r in rows]
    table = pa.Table.from_pylist(rows)
    floats = pa.array([None if s is None else float(s) for s in said], pa.float64())
    table = table.set_column(table.schema.get_field_index("correct"), "correct", floats)
    path = tmp_path / "floats.parquet"
    pq.write_table(table, path)
    text = write_csv(tmp_path / "floats.csv", [
        {**r, "correct": "" if s is None else f"{float(s)}"} for r, s in zip(rows, said, strict=True)
    ], COLUMNS)  # fmt: skip
    for file in (path, text):
        expected = outcome(reference_output, file, ChartSpec(), LoadOptions())
        assert not isinstance(expected, str), expected
        assert outcome(columnar_output, file, ChartSpec(), LoadOptions()) == expected
    # what the errors show
    base = {"queue_id": "q", "correct": True}
    for value, kind, shown in (
        (datetime(2026, 9, 1, 0, 0, 34), pa.timestamp("us"), "2026-09-01T00:00:34"),
        (datetime(2026, 9, 1).date(), pa.date32(), "2026-09-01"),
    ):
        table = pa.table({"queue_id": ["q"], "reviewed_at": pa.array([value], kind),
                          "correct": [True]})  # fmt: skip
        pq.write_table(table, tmp_path / "t.parquet")
        message = outcome(columnar_output, tmp_path / "t.parquet", ChartSpec(), LoadOptions())
        assert isinstance(message, str)
        assert message.endswith(f"(value {shown})"), message
        assert message == outcome(reference_output, tmp_path / "t.parquet", ChartSpec(),
                                  LoadOptions())  # fmt: skip
    pq.write_table(pa.table({**{k: [v] for k, v in base.items()}, "outcome": ["incorrect"],
                             "reviewed_at": ["2026-09-01T00:00:00Z"]}), tmp_path / "d.parquet")  # fmt: skip
    message = outcome(columnar_output, tmp_path / "d.parquet", ChartSpec(), LoadOptions())
    assert message == (
        "InputError: row 1: 'correct' and 'outcome' disagree (correct true, outcome 'incorrect')"
    )


@pytest.mark.parametrize("layout", ["csv in bulk", "csv row by row", "parquet text"])
def test_zone_less_times_with_assume_utc_keep_the_fast_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    """A CSV of times without a zone, read with --assume-utc (what the option is for), went
    row by row: 2 million rows in 30 s against 2.5 with zones (a new user's trial)."""
    rows = generated_rows(19, 500)
    for r in rows:
        r["reviewed_at"] = (
            datetime.fromisoformat(r["reviewed_at"].replace("Z", "+00:00"))
            .astimezone(UTC)
            .replace(tzinfo=None)
            .isoformat(sep=" " if len(r["verdict_id"]) % 2 else "T")
        )
    if layout == "csv in bulk":  # (no \r: split with numpy)
        path = tmp_path / "v.csv"
        path.write_text("".join(_lines(rows)))
    elif layout == "csv row by row":  # (\r\n: the csv module, and the inlined fast path)
        path = write_csv(tmp_path / "v.csv", rows, COLUMNS)
    else:
        pa = need_module("pyarrow")
        pq = need_module("pyarrow.parquet")
        path = tmp_path / "v.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
    calls = _counting_parse_row(monkeypatch)
    options = LoadOptions(assume_utc=True)
    for spec in (ChartSpec(), ChartSpec(chart="bernoulli-cusum", by="site")):
        expected = outcome(reference_output, path, spec, options)
        assert not isinstance(expected, str), expected
        assert outcome(columnar_output, path, spec, options) == expected
    assert calls[0] == 0
    refused = outcome(columnar_output, path, ChartSpec(), LoadOptions())  # (without the option)
    assert isinstance(refused, str)
    assert "the timestamp has no time zone" in refused


# --------------------------------------------------------------------------------------------
# NDJSON from its columns: orjson per line, the fields as columns, the rest the reference way
# --------------------------------------------------------------------------------------------

ND_TIME = "2026-10-27T10:00:00Z"

# Lines the reference reads (some only by json, which orjson decodes otherwise or refuses);
# {line} is a generated verdict's JSON without its braces.
ND_ACCEPTED = [
    '{{{line}, "extra": NaN}}',
    '{{{line}, "extra": -Infinity, "more": [Infinity, 1e400]}}',
    '{{{line}, "extra": 123456789012345678901234567890}}',  # (orjson: a float)
    '{{{line}, "extra": -9223372036854775809, "n": 18446744073709551615}}',
    '{{{line}, "error_type": "\\ud800"}}',  # a lone surrogate (orjson refuses it)
    '{{{line}, "extra": "\\udc00x", "k\\u00e9y": "\\ud83d\\ude00"}}',
    '{{"queue_id": 5, "reviewed_at": [], {line}}}',  # repeated keys: the last value counts
    '{{{line}, "kind": 7, "extra": [1, {{"x": null}}]}}',  # (a kind that is not text: ignored)
    '{{{line}, "kind": ["verdict"]}}',
    '{{{line}, "kind": " Verdict "}}',
    '{{{line}, "error_type": "a\u2028b\u2029c"}}',  # U+2028 inside a string (lines split at \\n)
    '{{{line}, "error_type": "\\u0000", "site_id": null, "policy_id": null}}',
    "  \t{{{line}}}\t ",
    "{{{line}}}\r",  # a CRLF line end
]
ND_BLANK = ["", " ", "\t", "\r", "\u2028", "\x0c", " \x1c\u3000 "]
# Lines the reference refuses (the first in the file is the error).
ND_REFUSED = [
    "{{{line}",
    "{{{line},}}",
    '{{{line}}} {{"queue_id": "q1"}}',
    '{{{line}}}, {{"queue_id": "q1"}}',
    "{{{line}}}\u2028",
    "\ufeff{{{line}}}",
    '{{"c": [[',
    '1]]}}, {{"a": 1}}], [{{"b": 2}}',
    "123456789012345678901234567890",  # (json: an int; orjson: a float)
    "[1, 2]",
    '"text"',
    "null",
    "NaN",
    '{{{line}, "queue_id": 123456789012345678901234567890}}',
    '{{{line}, "correct": 18446744073709551616}}',
    '{{{line}, "correct": -9223372036854775809}}',
    '{{{line}, "correct": NaN}}',
    '{{{line}, "correct": 2}}',
    '{{{line}, "correct": [true]}}',
    '{{{line}, "correct": null, "outcome": 1}}',
    '{{{line}, "outcome": "wrong"}}',
    '{{{line}, "queue_id": 7}}',
    '{{{line}, "queue_id": "  "}}',
    '{{{line}, "queue_id": "\\ud800"}}',
    '{{{line}, "site_id": [1]}}',
    '{{{line}, "policy_id": {{"a": 1}}}}',
    '{{{line}, "error_type": false}}',
    '{{{line}, "verdict_id": 12}}',
    '{{{line}, "sample_type": true}}',
    '{{{line}, "reviewed_at": 1767225600}}',
    '{{{line}, "reviewed_at": "2026-10-01T10:00:00"}}',
    '{{{line}, "reviewed_at": null}}',
    '{{{line}, "kind": "DECISION"}}',
    '{{{line}, "correct": "true", "outcome": "incorrect"}}',
]


def _json_fields(record: dict[str, Any], rng: random.Random, pad: bool = True) -> str:
    """A verdict as a JSON object's members, its values in the types exporters use (``pad``:
    some with spaces around them, which the reference strips)."""
    values: dict[str, Any] = {k: v for k, v in record.items() if v or rng.random() < 0.3}
    for name in ("site_id", "sample_type", "verdict_id", "outcome", "error_type"):
        if name in values and not values[name] and rng.random() < 0.5:
            values[name] = None
    said = str(values.get("correct", "")).strip().lower()
    if said in _TRUE or said in ("false", "0", "no", "f", "n"):
        values["correct"] = rng.choice([said in _TRUE, int(said in _TRUE), float(said in _TRUE),
                                        values["correct"]])  # fmt: skip
        if values["correct"] == 0 and rng.random() < 0.2:
            values["correct"] = -0.0
    if rng.random() < 0.2:
        values["queue_id"] = rng.choice([f" {values['queue_id']} "] * pad + ["qé", "q\x00"])
    if rng.random() < 0.1:
        values["verdict_id"] = rng.choice(
            [" v 2 "] * pad + ["vé-1", "v-\u00e9\u00e9\u00e9\u00e9-long", "v\x00"]
        )
    if pad and rng.random() < 0.05:
        values["reviewed_at"] = f" {values['reviewed_at']} "
    separators = rng.choice([(", ", ": "), (",", ":")])
    return json.dumps(values, ensure_ascii=rng.random() < 0.5, separators=separators)[1:-1]


def ndjson_text(seed: int, count: int, refused: int) -> str:
    """Generated verdicts as NDJSON lines of every kind the reference reads, and ``refused``
    lines it refuses, at random places."""
    rng = random.Random(seed)
    lines: list[str] = []
    for record in generated_rows(seed, count):
        fields = _json_fields(record, rng)
        draw = rng.random()
        if draw < 0.15:
            lines.append(rng.choice(ND_ACCEPTED).format(line=fields))
        elif draw < 0.2:
            lines.append(rng.choice(ND_BLANK))
            lines.append("{" + fields + "}")
        else:
            lines.append("{" + fields + "}")
    for _ in range(refused):
        fields = _json_fields(rng.choice(generated_rows(seed, 5)), rng)
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(ND_REFUSED).format(line=fields))
    end = rng.choice(["\n", "\r\n"])
    return end.join(lines) + rng.choice([end, "", "\n\n"])


def _same_columns(path: Path, options: LoadOptions, by: str) -> None:
    """What the loaders say beside the report: the fields seen, in order, and the counts."""
    try:
        expected = load_verdicts(path, options)
    except InputError:
        return
    found = load_columns(path, options, by)
    assert (found.columns, found.rows_read, found.rows_used, found.duplicates, found.notes) == (
        expected.columns, expected.rows_read, len(expected.rows), expected.duplicates,
        expected.notes,
    )  # fmt: skip
    assert found.left_out_by_sample_type == expected.left_out_by_sample_type


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    refused=st.sampled_from([0, 0, 1, 2]),
    read=st.sampled_from([64, 200, 999, 4096, MAX_LINE_BYTES]),
)
def test_ndjson_columns_are_read_as_the_reference_reads_the_lines(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    refused: int,
    read: int,
) -> None:
    """NDJSON was read a line at a time with json.loads (~12 µs a row: 10 M rows ~125 s); it
    is now decoded by orjson and read as columns, chunk by chunk, and each line the columns
    cannot say read the reference way in its place: the same report, the same fields and
    counts, and the same first error, whatever the types, the blank lines, the line ends,
    the chunk boundaries and the places where orjson and json differ."""
    path = tmp_path_factory.mktemp("nd") / "v.ndjson"
    path.write_bytes(ndjson_text(seed, 250, refused).encode("utf-8", "surrogatepass"))
    monkeypatch.setattr(columnar, "READ_BYTES", read)
    options = LoadOptions(all_samples=seed % 3 == 0, assume_utc=seed % 5 == 0)
    for spec in (ChartSpec(chart="p"), ChartSpec(chart="bernoulli-cusum", by="site")):
        expected = outcome(reference_output, path, spec, options)
        assert outcome(columnar_output, path, spec, options) == expected, spec
        _same_columns(path, options, spec.by)


@pytest.mark.parametrize("read", [128, MAX_LINE_BYTES])
@pytest.mark.parametrize("bad", ND_REFUSED)
def test_a_refused_ndjson_line_is_reported_as_the_reference_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str, read: int
) -> None:
    """Each line the reference refuses, at a chunk boundary's place, after a row refused
    earlier (reported only if no line is bad JSON) and before one that json alone reads."""
    rng = random.Random(5)
    lines = ["{" + _json_fields(r, rng) + "}" for r in generated_rows(6, 120)]
    lines[30] = lines[30][:-1] + ', "correct": "perhaps"}'
    lines[90] = ND_ACCEPTED[0].format(line=lines[90][1:-1])
    line = '{"queue_id": "q0", "reviewed_at": "' + ND_TIME + '", "correct": true'
    lines.insert(60, bad.format(line=line[1:]))
    path = tmp_path / "v.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    monkeypatch.setattr(columnar, "READ_BYTES", read)
    spec = ChartSpec(chart="bernoulli-cusum")
    expected = outcome(reference_output, path, spec, LoadOptions())
    assert isinstance(expected, str)
    assert expected.startswith("InputError: line "), expected
    assert outcome(columnar_output, path, spec, LoadOptions()) == expected


def test_big_integers_are_shown_as_json_reads_them(tmp_path: Path) -> None:
    """orjson reads an integer beyond 64 bits as a float: the messages show the integer."""
    path = tmp_path / "v.ndjson"
    good = '{"queue_id": "q0", "reviewed_at": "' + ND_TIME + '", "correct": true}\n'
    for bad, message in (
        ('{"queue_id": 123456789012345678901234567890, "reviewed_at": "' + ND_TIME
         + '", "correct": true}', "line 2, column 'queue_id': expected a string (value "
         "123456789012345678901234567890)"),
        ("18446744073709551616", "line 2: expected one JSON object per line, got int"),
    ):  # fmt: skip
        path.write_text(good + bad + "\n" + good)
        with pytest.raises(InputError) as raised:
            load_columns(path)
        assert str(raised.value) == message


def test_ndjson_rows_keep_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The types exporters write (a boolean or 0/1 `correct`, nulls, other kinds, nested
    fields, repeated keys, CRLF, blank lines, non-ASCII text) are read from the columns; only
    a line that orjson refuses (json reads it: NaN, a lone surrogate) goes the reference
    way, by itself."""
    rng = random.Random(3)
    plain = [_json_fields(r, rng, pad=False) for r in generated_rows(21, 600)]
    by_json = {100, 101, 350}
    lines = [
        ND_ACCEPTED[0].format(line=r) if i in by_json
        else rng.choice(ND_ACCEPTED[2:4] + ND_ACCEPTED[6:10] + ND_ACCEPTED[11:]).format(line=r)
        if i % 3 == 0 else "{" + r + "}"
        for i, r in enumerate(plain)
    ]  # fmt: skip
    lines[200:200] = ["", "  ", "\r"]
    path = tmp_path / "v.ndjson"
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    monkeypatch.setattr(columnar, "READ_BYTES", 4096)
    calls = _counting_parse_row(monkeypatch)
    for spec in (ChartSpec(), ChartSpec(chart="bernoulli-cusum", by="site")):
        calls[0] = 0
        expected = outcome(reference_output, path, spec, LoadOptions())
        assert not isinstance(expected, str), expected
        assert outcome(columnar_output, path, spec, LoadOptions()) == expected
        assert calls[0] == len(by_json), calls


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
@pytest.mark.parametrize("tail", [b"", b"\xff\n"])
def test_the_rest_of_the_file_is_read_from_where_the_error_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, tail: bytes
) -> None:
    """After a refused line, the rest of the file is read for an undecodable byte (the
    reference decodes the whole file first). It was read again from the next block, the
    unfinished line of the block before dropped: a character cut by the block boundary was
    "not UTF-8", and a real bad byte's place was off by the chunk being read."""
    if fmt == "csv":
        head = b"queue_id,reviewed_at,correct\nq,2026-10-01T10:00:00Z,true,x\n"
        row = "qé,2026-10-01T10:00:00Z,true\n".encode()
    else:
        head = b'{"queue_id": "q", "reviewed_at": "2026-10-01T10:00:00Z", "correct": true\n'
        row = (
            '{"queue_id": "qé", "reviewed_at": "2026-10-01T10:00:00Z", "correct": true}\n'.encode()
        )
    path = tmp_path / f"v.{fmt}"
    path.write_bytes(head + row * 40 + tail)
    expected = outcome(reference_output, path, ChartSpec(), LoadOptions())
    assert isinstance(expected, str)
    assert ("not UTF-8" in expected) == bool(tail), expected
    for read in range(len(head) - 8, len(head) + len(row) + 8):  # (every cut of a line)
        monkeypatch.setattr(columnar, "READ_BYTES", read)
        assert outcome(columnar_output, path, ChartSpec(), LoadOptions()) == expected, read
