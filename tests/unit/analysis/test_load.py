"""Reading verdict files: formats, columns, values, filters, and the errors for bad input."""

from __future__ import annotations

import gzip
import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.analysis.columnar import load_columns
from shared.analysis.errors import InputError
from shared.analysis.load import LoadOptions, Verdicts, detect_format, load_verdicts

from .helpers import verdict_rows, write_csv, write_ndjson


def test_csv_and_ndjson_give_the_same_rows(tmp_path: Path) -> None:
    rows = verdict_rows([1, 2], n=5)
    from_csv = load_verdicts(write_csv(tmp_path / "v.csv", rows))
    from_ndjson = load_verdicts(write_ndjson(tmp_path / "v.ndjson", rows))
    assert [r.incorrect for r in from_csv.rows] == [r.incorrect for r in from_ndjson.rows]
    assert [r.reviewed_at for r in from_csv.rows] == [r.reviewed_at for r in from_ndjson.rows]
    assert sum(r.incorrect for r in from_csv.rows) == 3
    assert from_csv.rows[0].line == 2  # the header is line 1
    assert from_ndjson.rows[0].line == 1
    assert from_csv.rows[0].reviewed_at.tzinfo is UTC


def test_value_spellings_and_outcome_column(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text(
        "queue_id,reviewed_at,correct,outcome\n"
        "q,2026-10-01T10:00:00+02:00,Yes,\n"
        "q,2026-10-01T10:00:00Z,0,\n"
        "q,2026-10-01 11:00:00+00:00,,incorrect\n"
        "q,2026-10-01T12:00:00.5Z,TRUE,\n"
    )
    verdicts = load_verdicts(path)
    assert [r.incorrect for r in verdicts.rows] == [False, True, True, False]
    assert verdicts.rows[0].reviewed_at == datetime(2026, 10, 1, 8, tzinfo=UTC)


def test_ndjson_accepts_json_booleans_and_numbers(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    path.write_text(
        '{"queue_id": "q", "reviewed_at": "2026-10-01T10:00:00Z", "correct": true}\n'
        "\n"
        '{"queue_id": "7", "reviewed_at": "2026-10-01T10:00:00Z", "correct": 0}\n'
        '{"queue_id": "q", "reviewed_at": "2026-10-01T10:00:00Z", "outcome": "correct"}\n'
    )
    verdicts = load_verdicts(path)
    assert [(r.queue_id, r.incorrect, r.line) for r in verdicts.rows] == [
        ("q", False, 1),
        ("7", True, 3),
        ("q", False, 4),
    ]


def _both_loaders(path: Path, options: LoadOptions | None = None) -> list[str | Verdicts]:
    """What the reference loader and the columnar one make of a file, in that order: the
    message of a refusal, else the reference's verdicts (for both, once the columnar
    result is checked to be the same verdicts, counts and notes)."""
    results: list[str | Verdicts] = []
    try:
        reference: str | Verdicts = load_verdicts(path, options)
    except InputError as exc:
        reference = str(exc)
    results.append(reference)
    try:
        columns = load_columns(path, options)
    except InputError as exc:
        results.append(str(exc))
    else:
        assert isinstance(reference, Verdicts), (reference, columns.notes)
        assert columns.rows_used == len(reference.rows)
        assert columns.incorrect.tolist() == [r.incorrect for r in reference.rows]
        assert dict(columns.left_out_by_sample_type) == dict(reference.left_out_by_sample_type)
        assert columns.notes == reference.notes
        results.append(reference)
    return results


TEXT_COLUMNS = ["queue_id", "site_id", "policy_id", "verdict_id", "error_type", "sample_type"]


@pytest.mark.parametrize("column", TEXT_COLUMNS)
@pytest.mark.parametrize("value", [7, 7.5, True])
def test_a_number_in_a_text_column_is_refused_by_both_loaders(
    tmp_path: Path, column: str, value: object
) -> None:
    """A new user's trial: {"queue_id": 7} was charted (as the queue "7") while a verdict_id
    of 7.5 was refused; the live pipeline takes strings only, in every one of these."""
    good = {"queue_id": "q", "reviewed_at": "2026-10-01T10:00:00Z", "correct": "true"}
    path = write_ndjson(tmp_path / "v.ndjson", [good, {**good, column: value}, good])
    expected = f"line 2, column {column!r}: expected a string (value {json.dumps(value)})"
    assert _both_loaders(path) == [expected, expected]


@pytest.mark.parametrize("name", ["v.csv", "v.ndjson"])
def test_correct_and_outcome_that_disagree_are_refused_by_both_loaders(
    tmp_path: Path, name: str
) -> None:
    """``correct`` used to win silently over a conflicting ``outcome``."""
    rows = verdict_rows([1, 1], n=4)
    for row in rows:  # both columns, agreeing: fine
        row["outcome"] = "incorrect" if row["correct"] == "false" else " Correct "
    write = write_csv if name == "v.csv" else write_ndjson
    agreeing = write(tmp_path / name, rows)
    (reference, _) = _both_loaders(agreeing)
    assert isinstance(reference, Verdicts)
    assert [r.incorrect for r in reference.rows].count(True) == 2

    rows[5] = {**rows[5], "correct": "true", "outcome": "incorrect"}
    rows[6] = {**rows[6], "correct": "yes", "outcome": "maybe"}
    line = 7 if name == "v.csv" else 6  # the header is line 1 of a CSV file
    expected = (
        f"line {line}: 'correct' and 'outcome' disagree (correct 'true', outcome 'incorrect')"
    )
    assert _both_loaders(write(tmp_path / name, rows)) == [expected, expected]
    # an outcome that cannot be read, beside a correct that can, is refused too
    del rows[5]
    expected = f"line {line}, column 'outcome': expected correct or incorrect (value 'maybe')"
    assert _both_loaders(write(tmp_path / name, rows)) == [expected, expected]


@pytest.mark.parametrize("name", ["v.csv", "v.ndjson"])
def test_a_blank_sample_type_is_a_random_sample_in_both_loaders(tmp_path: Path, name: str) -> None:
    """The live pipeline reads a verdict without a sample type as random; analyze used to
    leave it out as "(empty)"."""
    rows = verdict_rows([1], n=5)
    for row, kind in zip(rows, ["random", "", "  ", "targeted", None], strict=True):
        row["sample_type"] = kind
    if name == "v.ndjson":
        del rows[4]["sample_type"]  # absent, as an exporter leaves an empty field out
    else:
        rows[4]["sample_type"] = ""
    path = (write_csv if name == "v.csv" else write_ndjson)(tmp_path / name, rows)
    (reference, same) = _both_loaders(path)
    assert same is reference
    assert isinstance(reference, Verdicts)
    assert len(reference.rows) == 4
    assert reference.left_out_by_sample_type == {"targeted": 1}
    assert "3 verdict(s) without a sample_type counted as random samples" in " ".join(
        reference.notes
    )
    # with --all-samples every row counts, and nothing more is said about blank ones
    everything = load_verdicts(path, LoadOptions(all_samples=True))
    assert len(everything.rows) == 5
    assert not any("without a sample_type" in note for note in everything.notes)


def test_only_random_samples_count_by_default(tmp_path: Path) -> None:
    rows = verdict_rows([1], n=4)
    for row, kind in zip(rows, ["random", "targeted", "Random", "appeal"], strict=True):
        row["sample_type"] = kind
    path = write_csv(tmp_path / "v.csv", rows)
    verdicts = load_verdicts(path)
    assert len(verdicts.rows) == 2
    assert verdicts.left_out_by_sample_type == {"targeted": 1, "appeal": 1}
    assert any("only random samples count" in note for note in verdicts.notes)
    everything = load_verdicts(path, LoadOptions(all_samples=True))
    assert len(everything.rows) == 4
    assert any("--all-samples" in note for note in everything.notes)


def test_without_sample_type_every_row_counts_and_the_report_says_so(tmp_path: Path) -> None:
    verdicts = load_verdicts(write_csv(tmp_path / "v.csv", verdict_rows([0], n=3)))
    assert len(verdicts.rows) == 3
    assert any("no sample_type column" in note for note in verdicts.notes)


def test_repeated_verdict_ids_count_once(tmp_path: Path) -> None:
    rows = verdict_rows([1], n=3)
    path = write_csv(tmp_path / "v.csv", [*rows, rows[0]])
    verdicts = load_verdicts(path)
    assert len(verdicts.rows) == 3
    assert verdicts.duplicates == 1


def test_naive_timestamps_are_rejected_unless_assume_utc(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text(
        "queue_id,reviewed_at,correct\nq,2026-10-01T10:00:00Z,1\nq,2026-10-01T10:00:00,1\n"
    )
    with pytest.raises(
        InputError, match=r"line 3, column 'reviewed_at'.*no time zone.*--assume-utc"
    ):
        load_verdicts(path)
    verdicts = load_verdicts(path, LoadOptions(assume_utc=True))
    assert verdicts.rows[1].reviewed_at == datetime(2026, 10, 1, 10, tzinfo=UTC)


def test_time_column_can_be_renamed(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text("queue_id,qa_time,correct\nq,2026-10-01T10:00:00Z,1\n")
    assert len(load_verdicts(path, LoadOptions(time_column="qa_time")).rows) == 1
    with pytest.raises(InputError, match=r"reviewed_at.*--time-column"):
        load_verdicts(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", r"is empty"),
        ("   \n\n", r"is empty"),
        ("queue_id,reviewed_at,correct\n", r"no verdict rows"),
        (
            "queue,reviewed_at,correct\nq,2026-10-01T10:00:00Z,1\n",
            r"lacks the required columns queue_id",
        ),
        ("queue_id,reviewed_at\nq,2026-10-01T10:00:00Z\n", r"correct \(true/false\) or outcome"),
        (
            "queue_id,reviewed_at,correct\nq,2026-10-01T10:00:00Z,1\nq,2026-10-01T10:00:00Z,maybe\n",
            r"line 3, column 'correct': expected true/false, 1/0 or yes/no \(value 'maybe'\)",
        ),
        (
            "queue_id,reviewed_at,correct\nq,yesterday,1\n",
            r"line 2, column 'reviewed_at': not an ISO 8601 timestamp .*\(value 'yesterday'\)",
        ),
        (
            "queue_id,reviewed_at,outcome\nq,2026-10-01T10:00:00Z,wrong\n",
            r"line 2, column 'outcome'.*'wrong'",
        ),
        (
            "queue_id,reviewed_at,correct\n,2026-10-01T10:00:00Z,1\n",
            r"line 2, column 'queue_id': no value",
        ),
        ("queue_id,reviewed_at,correct\nq,2026-10-01T10:00:00Z,1,extra\n", r"line 2: 4 values"),
        ("queue_id,queue_id,reviewed_at,correct\n", r"repeats column"),
    ],
)
def test_bad_csv_input_names_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "v.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_verdicts(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"queue_id": "q"\n', r"line 1: not valid JSON"),
        ("[1, 2]\n", r"line 1: expected one JSON object per line, got list"),
        (
            '{"queue_id": "q", "reviewed_at": "2026-10-01T10:00:00Z", "correct": true}\n'
            '{"queue_id": "q", "reviewed_at": 1759312800, "correct": true}\n',
            r"line 2, column 'reviewed_at': expected an ISO 8601 timestamp string",
        ),
        (
            '{"queue_id": "q", "reviewed_at": "2026-10-01T10:00:00Z", "correct": 3}\n',
            r"line 1, column 'correct'.*\(value 3\)",
        ),
        (
            '{"queue_id": "q", "reviewed_at": "2026-10-01T10:00:00Z", "correct": true}\n'
            '{"queue_id": "q", "reviewed_at": "2026-10-01T10:00:00Z"}\n',
            r"line 2: neither 'correct' nor 'outcome' has a value",
        ),
    ],
)
def test_bad_ndjson_input_names_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "v.ndjson"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_verdicts(path)


def test_missing_file_unknown_extension_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_verdicts(tmp_path / "absent.csv")
    with pytest.raises(InputError, match="cannot tell the format"):
        detect_format(tmp_path / "v.txt")
    with pytest.raises(InputError, match="unknown format"):
        detect_format(tmp_path / "v.csv", "xlsx")
    assert detect_format(tmp_path / "v.txt", "jsonl") == "ndjson"
    latin = tmp_path / "v.csv"
    latin.write_bytes("queue_id,reviewed_at,correct\nqueue-é,x,1\n".encode("latin-1"))
    with pytest.raises(InputError) as caught:
        load_verdicts(latin)
    # the line too, as backfill says it (a new user found the byte alone hard to place)
    assert (
        str(caught.value) == "v.csv is not UTF-8 text (line 2, byte 35: invalid continuation byte)"
    )


def test_gzip_files_are_read(tmp_path: Path) -> None:
    plain = write_csv(tmp_path / "v.csv", verdict_rows([1], n=3))
    packed = tmp_path / "v.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert len(load_verdicts(packed).rows) == 3


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow installed")
def test_parquet_without_pyarrow_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "v.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(InputError, match="needs pyarrow"):
        load_verdicts(path)
