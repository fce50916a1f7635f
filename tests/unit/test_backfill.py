"""``qwatch backfill``'s reading and checking (services/backfill.py), without a broker; the
load itself, interrupted and resumed, is tests/integration/test_backfill_kafka.py."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from services import backfill
from shared.settings import KafkaSettings
from tests.conftest import need_module
from tests.factories import decision, verdict

pa = need_module("pyarrow")
pq = need_module("pyarrow.parquet")


def test_ndjson_rows_are_read_checked_and_classified(tmp_path: Path) -> None:
    f = tmp_path / "x.ndjson"
    d = decision(1, moderator_tenure_days=12)
    v = {k: val for k, val in verdict(1).items() if k != "kind"}  # no kind: a verdict by its id
    f.write_text(f"{json.dumps(d)}\n\n{json.dumps(v)}\n[1]\nnot json\n")
    rows = list(backfill.read_rows(f, "ndjson"))
    assert [r.number for r in rows] == [1, 2, 3, 4]  # blank lines are not rows
    assert rows[2].problem == "a row must be a JSON object, not list"
    assert rows[3].problem is not None
    assert rows[3].problem.startswith("not JSON")
    assert rows[0].event is not None
    assert rows[1].event is not None
    assert backfill.check(rows[0].event)[0] == "decision"
    kind, message = backfill.check(rows[1].event)
    assert (kind, json.loads(message)["kind"]) == ("verdict", "verdict")
    # the count is for the progress bar, without parsing: the rows the reader gives (blank
    # lines are none: a finished load read "3,000/3,001 rows" for one blank line)
    assert backfill.count_rows(f, "ndjson") == len(rows) == 4
    f.write_text(f"{json.dumps(d)}\n \r\n\n{json.dumps(v)}\n  \t")  # (and a blank last line)
    assert backfill.count_rows(f, "ndjson") == len(list(backfill.read_rows(f, "ndjson"))) == 2


def test_csv_cells_become_typed_fields_and_blanks_are_absent(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text(
        "kind,decision_id,content_id,queue_id,moderator_id,site_id,policy_id,action,"
        "decided_at,severity,moderator_tenure_days,market\n"
        "decision,d1,c1,spam-en,m1,dublin,spam.v3,remove,2026-11-02T00:00:00Z,1,45,\n"
        "decision,d2,c2,spam-en,m1,dublin,spam.v3,remove,2026-11-02T00:00:00Z,high,,en\n"
        "decision,d3\n"
    )
    rows = list(backfill.read_rows(f, "csv"))
    assert rows[0].event is not None
    assert rows[0].event["severity"] == 1
    assert rows[0].event["moderator_tenure_days"] == 45
    assert "market" not in rows[0].event
    backfill.check(rows[0].event)
    assert rows[1].event is not None
    with pytest.raises(ValueError, match="severity"):
        backfill.check(rows[1].event)
    assert rows[2].problem == "2 cells for 12 columns"
    assert backfill.count_rows(f, "csv") == 3
    # blank lines (and lines of blank cells) are no rows, as analyze reads them: they were
    # rejected rows ("0 cells for 12 columns")
    lines = f.read_text().splitlines(keepends=True)
    f.write_text("".join([lines[0], "\n", lines[1], ' \r\n,"",,,,,,,,,,\n', *lines[2:], '\n"",']))
    again = list(backfill.read_rows(f, "csv"))
    assert [(r.number, r.event, r.problem) for r in again] == [
        (r.number, r.event, r.problem) for r in rows
    ]
    assert backfill.count_rows(f, "csv") == 3


def test_gzip_and_parquet(tmp_path: Path) -> None:
    events = [decision(i) for i in range(5)] + [verdict(i) for i in range(5)]
    gz = tmp_path / "x.ndjson.gz"
    with gzip.open(gz, "wt") as out:
        out.writelines(json.dumps(e) + "\n" for e in events)
    present = [{k: v for k, v in e.items() if v is not None} for e in events]  # null: absent
    assert [r.event for r in backfill.read_rows(gz, "ndjson")] == present
    assert backfill.count_rows(gz, "ndjson") == 10  # read through, decompressed
    with pytest.raises(backfill.ReadStoppedError):  # Ctrl-C, asked between blocks
        backfill.count_rows(gz, "ndjson", lambda: True)
    pq_file = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist([decision(i) for i in range(3)]), pq_file)
    rows = list(backfill.read_rows(pq_file, "parquet"))
    with pytest.raises(backfill.ReadStoppedError):
        backfill.count_rows(pq_file, "parquet", lambda: True)
    assert [r.event for r in rows] == [decision(i) for i in range(3)]
    assert backfill.count_rows(pq_file, "parquet") == 3


def test_what_is_not_a_decision_or_verdict_says_why() -> None:
    with pytest.raises(ValueError, match="kind 'appeal'"):
        backfill.check({"kind": "appeal"})
    with pytest.raises(ValueError, match="decided_at"):
        backfill.check(decision(1, decided_at="yesterday"))
    with pytest.raises(ValueError, match="error_type"):
        backfill.check(verdict(1, correct=False, error_type=None))


def test_a_checkpoint_refuses_a_changed_file(tmp_path: Path) -> None:
    f = tmp_path / "x.ndjson"
    f.write_text("{}\n")
    path = backfill.Checkpoint.path_for(tmp_path / "state", f, KafkaSettings())
    cp = backfill.Checkpoint.load_or_new(path, f, restart=False)
    cp.rows = 1
    cp.save(path)
    assert backfill.Checkpoint.load_or_new(path, f, restart=False).rows == 1
    f.write_text("{}\n{}\n")
    with pytest.raises(backfill.BackfillError, match="changed since its checkpoint"):
        backfill.Checkpoint.load_or_new(path, f, restart=False)
    assert backfill.Checkpoint.load_or_new(path, f, restart=True).rows == 0
    path.write_text("{")
    with pytest.raises(backfill.BackfillError, match="not a checkpoint"):
        backfill.Checkpoint.load_or_new(path, f, restart=False)
