"""Reading verdict files: formats, columns, values, filters, and the errors for bad input."""

from __future__ import annotations

import gzip
import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.analysis.errors import InputError
from shared.analysis.load import LoadOptions, detect_format, load_verdicts

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
        '{"queue_id": 7, "reviewed_at": "2026-10-01T10:00:00Z", "correct": 0}\n'
        '{"queue_id": "q", "reviewed_at": "2026-10-01T10:00:00Z", "outcome": "correct"}\n'
    )
    verdicts = load_verdicts(path)
    assert [(r.queue_id, r.incorrect, r.line) for r in verdicts.rows] == [
        ("q", False, 1),
        ("7", True, 3),
        ("q", False, 4),
    ]


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
    with pytest.raises(InputError, match="not UTF-8"):
        load_verdicts(latin)


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
