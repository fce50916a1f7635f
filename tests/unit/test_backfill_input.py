"""``qwatch backfill`` on what a new user gives it (services/backfill.py): files it cannot
read end with one line and exit status 2 before anything is sent; rows ingest would refuse
are rejected with ingest's reason; every format reads an empty cell as absent; a file
already loaded, or of which no row was sent, says so. The broker is a fake: what was sent
is what it was given."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from services import backfill
from services.ingest.admission import QueuePolicy
from services.ingest.validation import MAX_AGE_DAYS, ItemError, validate_raw
from shared import codec
from shared.kafka import DEFAULT_MAX_MESSAGE_BYTES
from shared.runtime import INTERRUPTED
from shared.settings import KafkaSettings
from tests.conftest import need_module
from tests.factories import decision, verdict

HEADER = "kind,decision_id,content_id,queue_id,moderator_id,site_id,policy_id,action,decided_at\n"
ROW = "decision,d{i},c{i},spam-en,m1,dublin,spam.v3,remove,2026-11-02T00:00:00Z\n"


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        self.sent.append((topic, value, key))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Said:
    """A reporter that keeps what it was told."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, Any]] = []

    def progress(self, prog: backfill.Progress) -> None:
        pass

    def finished(self, prog: backfill.Progress, cp: backfill.Checkpoint, rejects: Path) -> None:
        self.lines.append(("finished", cp))

    def already_loaded(self, file: Path, cp: backfill.Checkpoint, rejects: Path) -> None:
        self.lines.append(("already_loaded", cp))

    def resuming(self, file: Path, cp: backfill.Checkpoint) -> None:
        self.lines.append(("resuming", cp.rows))

    def reading(self, file: Path) -> None:
        self.lines.append(("reading", file.name))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))

    def note(self, message: str) -> None:
        self.lines.append(("note", message))


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> FakeProducer:
    producer = FakeProducer()

    async def no_topics(kafka: KafkaSettings) -> None:
        pass

    async def limits(kafka: KafkaSettings, topics: list[str]) -> dict[str, int]:
        return dict.fromkeys(topics, DEFAULT_MAX_MESSAGE_BYTES)

    monkeypatch.setattr("shared.kafka.ensure_topics", no_topics)
    monkeypatch.setattr("shared.kafka.message_limits", limits)
    monkeypatch.setattr("shared.kafka.make_producer", lambda kafka, **kw: producer)
    return producer


async def run(files: list[Path], state: Path, **kw: Any) -> tuple[int, Said]:
    said = Said()
    code = await backfill.run_backfill(
        files, KafkaSettings(), state_dir=state, max_age_days=MAX_AGE_DAYS, reporter=said, **kw
    )
    return code, said


def errors(said: Said) -> list[str]:
    return [str(what) for kind, what in said.lines if kind == "error"]


def bad_input(path: Path) -> str:
    with pytest.raises(backfill.BackfillError) as caught:
        backfill.preflight(path)
    assert caught.value.code == backfill.BAD_INPUT == 2
    message = str(caught.value)
    assert "\n" not in message
    return message


# 1. a file that is not UTF-8 text ------------------------------------------------------------


async def test_a_gzip_file_named_csv_is_one_line_that_says_gzip(
    tmp_path: Path, broker: FakeProducer
) -> None:
    f = tmp_path / "gz.csv"
    f.write_bytes(gzip.compress((HEADER + ROW.format(i=1)).encode()))
    assert bad_input(f) == (
        "gz.csv is not UTF-8 text (line 1, byte 1: invalid start byte); it looks "
        "gzip-compressed (it starts with bytes 1f 8b): name it gz.csv.gz"
    )
    named = f.rename(tmp_path / "gz.csv.gz")  # what it says works
    assert backfill.preflight(named) == "csv"
    code, said = await run([f.with_name("ok.csv"), f], tmp_path / "state")
    assert code == 2
    assert errors(said) == [f"{f.with_name('ok.csv')}: no such file"]
    assert broker.sent == []


async def test_a_byte_that_is_not_utf8_names_the_line_and_byte(
    tmp_path: Path, broker: FakeProducer
) -> None:
    first = tmp_path / "first.csv"
    first.write_bytes(HEADER.encode() + b"\xff" + ROW.format(i=1).encode())
    assert bad_input(first) == "first.csv is not UTF-8 text (line 2, byte 86: invalid start byte)"
    # beyond the first rows (a file checked by its first rows only, before the broker is
    # asked), and past the first MiB: found when the file is read through, before its load,
    # in the words the reader would use; nothing of it sent, in plain and gzipped files
    body = (HEADER + "".join(ROW.format(i=i) for i in range(1, 20_001))).encode()
    assert len(body) > 1 << 20
    ok = tmp_path / "ok.csv"
    ok.write_text(HEADER + ROW.format(i=0))
    for name in ("later.csv", "later.csv.gz"):
        later = tmp_path / name
        data = body + b"x\xff\n" + ROW.format(i=99).encode()
        later.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        assert backfill.preflight(later) == "csv"
        broker.sent.clear()
        code, said = await run([ok, later], tmp_path / name.replace(".", "-"))
        assert code == 2
        said_line = (
            f"{name} is not UTF-8 text (line 20002, byte {len(body) + 1}: invalid start byte)"
        )
        assert errors(said) == [said_line]
        with pytest.raises(backfill.BackfillError) as caught:
            list(backfill.read_rows(later, "csv"))  # (the reader's own words: the same)
        assert str(caught.value) == said_line
        assert len(broker.sent) == 1  # the file before it only
        cp_path = backfill.Checkpoint.path_for(
            tmp_path / name.replace(".", "-"), later, KafkaSettings()
        )
        assert not cp_path.exists()


def test_a_gz_file_that_is_not_gzip_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "x.ndjson.gz"
    f.write_text(json.dumps(decision(1)) + "\n")
    assert bad_input(f).startswith(f"cannot read {f}: Not a gzipped file")


# 2. the times ingest refuses ----------------------------------------------------------------


def ingest_reason(event: dict[str, Any], max_age_days: int = MAX_AGE_DAYS) -> str:
    from services.ingest.validation import floor_for

    result = validate_raw(codec.dumps(event), event["kind"], floor=floor_for(max_age_days))
    assert isinstance(result, ItemError)
    return result.reason()


def test_times_ingest_refuses_are_rejected_with_ingests_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)  # ingest's floor: now - the max age
    future = decision(1, decided_at="2099-01-01T00:00:00Z")
    far = verdict(1, reviewed_at="9999-12-31T23:30:00-05:00")
    old = decision(2, decided_at="2020-01-01T00:00:00Z")
    for event in (future, far):
        with pytest.raises(ValueError, match="is in the future") as caught:
            backfill.check(event)
        assert str(caught.value) == ingest_reason(event)
    with pytest.raises(ValueError, match="is older than") as caught:
        backfill.check(old)
    assert str(caught.value) == (
        f"{ingest_reason(old)}; to load older history raise QW_INGEST_MAX_AGE_DAYS (now "
        f"{MAX_AGE_DAYS}) for ingest and for this command, then load the file again with "
        "--restart"
    )
    assert backfill.check(old, max_age_days=3000)[0] == "decision"  # the setting raised
    for days in (36500, MAX_AGE_DAYS):  # no setting takes it, so none is suggested
        with pytest.raises(ValueError, match=r"is before 2000-01-01$"):
            backfill.check(decision(3, decided_at="1999-12-31T00:00:00Z"), max_age_days=days)


async def test_rows_ingest_would_refuse_are_not_sent(tmp_path: Path, broker: FakeProducer) -> None:
    f = tmp_path / "x.ndjson"
    rows = [
        decision(1),
        verdict(1, reviewed_at="9999-12-31T23:30:00-05:00"),
        decision(2, decided_at="2099-01-01T00:00:00Z"),
        decision(3, decided_at="2020-01-01T00:00:00Z"),
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, said = await run([f], tmp_path / "state")
    assert code == 0
    assert [json.loads(value)["decision_id"] for _, value, _ in broker.sent] == ["d1"]
    ((kind, cp),) = said.lines
    assert (kind, cp.sent, cp.rejected) == ("finished", 1, 3)
    cp_path = backfill.Checkpoint.path_for(tmp_path / "state", f, KafkaSettings())
    rejects = [
        json.loads(x) for x in cp_path.with_suffix(".rejects.ndjson").read_text().splitlines()
    ]
    assert [r["row"] for r in rejects] == [2, 3, 4]
    assert [r["reason"] for r in rejects] == [ingest_reason(r) for r in rows[1:3]] + [
        rejects[2]["reason"]
    ]
    assert "QW_INGEST_MAX_AGE_DAYS" in rejects[2]["reason"]


# 3. one rule for an empty cell; the value in the reason; --max-rejects ---------------------


def test_an_empty_string_is_absent_in_every_format(tmp_path: Path) -> None:
    pa = need_module("pyarrow")
    pq = need_module("pyarrow.parquet")
    # as pyarrow writes a CSV export: empty cells are "", not null
    columns = sorted({*decision(1), *verdict(1)})
    d = {c: "" for c in columns} | decision(1)
    v = {c: "" for c in columns} | {k: x for k, x in verdict(1).items() if x is not None}
    v["error_type"] = ""
    f = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist([d, v]), f)
    nd = tmp_path / "x.ndjson"
    nd.write_text(json.dumps(d) + "\n" + json.dumps(v) + "\n")
    for path, fmt in ((f, "parquet"), (nd, "ndjson")):
        first, second = (r.event for r in backfill.read_rows(path, fmt))
        assert first is not None
        assert second is not None
        assert "" not in first.values()
        assert "" not in second.values()
        kind, message = backfill.check(first)
        assert kind == "decision"
        assert "verdict_id" not in json.loads(message)
        assert backfill.check(second)[0] == "verdict"


def test_parquet_integers_typed_as_text_or_whole_floats_load_as_a_csv_does(
    tmp_path: Path,
) -> None:
    pa = need_module("pyarrow")
    pq = need_module("pyarrow.parquet")
    rows = [decision(i, severity=3, moderator_tenure_days=40 + i) for i in (1, 2, 3)]
    as_text = [
        {k: str(v) if k in ("severity", "moderator_tenure_days") else v for k, v in r.items()}
        for r in rows
    ]
    as_float = [
        {
            **r,
            "severity": float(r["severity"]),
            "moderator_tenure_days": float(r["moderator_tenure_days"]),
        }
        for r in rows
    ]
    as_float[2]["moderator_tenure_days"] = None  # (pandas: an integer column with a gap)
    as_float[1]["severity"] = 2.5  # not a whole number: refused by the model
    expected = [backfill.check(r)[1] for r in rows]
    text_file, float_file = tmp_path / "text.parquet", tmp_path / "float.parquet"
    pq.write_table(pa.Table.from_pylist(as_text), text_file)
    pq.write_table(pa.Table.from_pylist(as_float), float_file)
    assert pa.types.is_string(pq.read_schema(text_file).field("severity").type)
    assert pa.types.is_floating(pq.read_schema(float_file).field("severity").type)
    # NDJSON the same way: a trial's exporter wrote "4", and 282 of 300 rows were refused
    # ("must be a JSON integer") where the same values loaded from a CSV or a Parquet file
    text_nd, float_nd = tmp_path / "text.ndjson", tmp_path / "float.ndjson"
    text_nd.write_text("".join(json.dumps(r) + "\n" for r in as_text))
    float_nd.write_text("".join(json.dumps(r) + "\n" for r in as_float))
    for fmt, as_text_file, as_float_file in (
        ("parquet", text_file, float_file),
        ("ndjson", text_nd, float_nd),
    ):
        text_events = [r.event for r in backfill.read_rows(as_text_file, fmt)]
        assert [backfill.check(e)[1] for e in text_events if e] == expected
        first, second, third = (r.event for r in backfill.read_rows(as_float_file, fmt))
        assert first is not None
        assert second is not None
        assert third is not None
        assert backfill.check(first)[1] == expected[0]
        with pytest.raises(ValueError, match=r"^severity: .*\(value severity=2\.5\)$"):
            backfill.check(second)
        assert "moderator_tenure_days" not in third
        assert json.loads(backfill.check(third)[1])["severity"] == 3
    bad = tmp_path / "bad.ndjson"
    bad.write_text(json.dumps({**rows[0], "severity": "four"}) + "\n")
    (row,) = backfill.read_rows(bad, "ndjson")
    assert row.event is not None
    with pytest.raises(ValueError, match=r"^severity: .*must be a JSON integer"):
        backfill.check(row.event)  # (text that is not an integer: the model's words)


def test_a_reason_shows_the_value_it_refuses() -> None:
    with pytest.raises(ValueError, match=r"^error_type: ") as caught:
        backfill.check(verdict(1, correct=False, error_type="bogus"))
    assert str(caught.value).startswith("error_type: Input should be ")
    assert str(caught.value).endswith("(value error_type='bogus')")
    with pytest.raises(ValueError, match=r"\(value severity='high'\)$"):
        backfill.check(decision(1, severity="high"))


async def test_max_rejects_stops_the_command_before_the_next_file(
    tmp_path: Path, broker: FakeProducer
) -> None:
    broken, after = tmp_path / "oct-01.csv", tmp_path / "oct-02.csv"
    broken.write_text(HEADER + ROW.format(i=1) + "decision,x\n" * 3 + ROW.format(i=2))
    after.write_text(HEADER + ROW.format(i=3))
    code, said = await run([broken, after], tmp_path / "state", max_rejects=2)
    assert code == 1
    (message,) = errors(said)
    assert message.startswith(
        "oct-01.csv: more than 2 rows rejected, so the load stops here (the first: row 2: "
        "2 cells for 9 columns; all the reasons are in "
    )
    assert [json.loads(value)["decision_id"] for _, value, _ in broker.sent] == ["d1"]
    assert not backfill.Checkpoint.path_for(tmp_path / "state", after, KafkaSettings()).exists()
    assert message.endswith(
        "Rejected rows are sent only by a load with --restart: fix what the reasons say (the "
        "export, or e.g. admit the queue), then load the file again with --restart; or, to go "
        "on without the rejected rows, run the same command with a higher --max-rejects"
    )
    # the same command again: the same words, and not one more row (a trial's rerun sent one
    # row a time and lost the first reason)
    for _ in range(2):
        code, said = await run([broken, after], tmp_path / "state", max_rejects=2)
        assert (code, errors(said)) == (1, [message])
        assert len(broker.sent) == 1
    # a higher --max-rejects goes on without them; --restart starts the rejects anew
    code, _ = await run([broken, after], tmp_path / "state", max_rejects=5)
    assert code == 0
    assert [json.loads(value)["decision_id"] for _, value, _ in broker.sent] == ["d1", "d2", "d3"]
    (rejects,) = (tmp_path / "state").glob("oct-01.csv.*.rejects.ndjson")
    assert len(rejects.read_text().splitlines()) == 3
    broken.write_text(HEADER + ROW.format(i=1) + ROW.format(i=2))  # the export fixed
    code, _ = await run([broken], tmp_path / "state", restart=True)
    assert code == 0
    assert not rejects.exists()  # (no stale reasons beside a checkpoint of 0 rejected)


def test_the_state_folder_does_not_depend_on_the_working_directory(
    tmp_path: Path, broker: FakeProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints were kept in ./var/backfill: the same command from another directory
    sent a loaded file again. The default is $QW_STATE_DIR/backfill (else the project's
    var/backfill), whatever the working directory."""
    from typer.testing import CliRunner

    from services import cli

    monkeypatch.setattr(cli, "_broker_answers", lambda kafka: None)
    monkeypatch.setenv("QW_INGEST_QUEUES", "open")
    monkeypatch.setenv("QW_STATE_DIR", str(tmp_path / "state"))
    export = tmp_path / "hist.csv"
    export.write_text(HEADER + ROW.format(i=1))
    for cwd in (tmp_path, tmp_path / "elsewhere"):
        cwd.mkdir(exist_ok=True)
        monkeypatch.chdir(cwd)
        result = CliRunner().invoke(cli.app, ["backfill", str(export)])
        assert result.exit_code == 0, result.output
    assert "already loaded" in result.stderr
    assert len(broker.sent) == 1
    assert list((tmp_path / "state" / "backfill").glob("hist.csv.*.json"))
    assert not (tmp_path / "var").exists()


async def test_ctrl_c_ends_the_wait_of_a_slow_rate(tmp_path: Path, broker: FakeProducer) -> None:
    """--rate 0.01 (a row every 100 s) slept through Ctrl-C and SIGTERM (a new user's
    trial had to SIGKILL it); the wait now ends when the load is told to stop."""
    export = tmp_path / "slow.csv"
    export.write_text(HEADER + ROW.format(i=1) + ROW.format(i=2) + ROW.format(i=3))
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.5, stop.set)
    started = time.monotonic()
    cp = await backfill.load_file(
        export, KafkaSettings(), checkpoint_path=tmp_path / "cp.json",
        rejects_path=tmp_path / "r.ndjson", rate=0.01, stop=stop,
    )  # fmt: skip
    assert time.monotonic() - started < 5
    assert not cp.done
    assert cp.rows == 1  # the first row, acknowledged and saved
    assert len(broker.sent) == 1


# 4, 5. a name backfill cannot read --------------------------------------------------------


async def test_an_unknown_extension_names_the_extensions_not_an_option(
    tmp_path: Path, broker: FakeProducer
) -> None:
    f = tmp_path / "x.txt"
    f.write_text(HEADER + ROW.format(i=1))
    message = bad_input(f)
    assert "--format" not in message
    assert message == (
        "cannot tell the format of 'x.txt' from its extension: name it .csv, .ndjson, .jsonl "
        "or .parquet (.csv.gz, .ndjson.gz when gzipped)"
    )
    code, said = await run([f], tmp_path / "state")
    assert (code, errors(said)) == (2, [message])


def test_a_directory_is_said_to_be_one(tmp_path: Path) -> None:
    assert bad_input(tmp_path) == (
        f"{tmp_path} is a directory: name the export files in it (e.g. {tmp_path}/*.csv)"
    )
    assert bad_input(tmp_path / "none.csv") == f"{tmp_path / 'none.csv'}: no such file"


# 6. a file loaded before --------------------------------------------------------------------


async def test_a_file_loaded_before_is_said_to_be_and_nothing_is_sent(
    tmp_path: Path, broker: FakeProducer
) -> None:
    f = tmp_path / "hist.csv"
    f.write_text(HEADER + ROW.format(i=1) + ROW.format(i=2))
    assert (await run([f], tmp_path / "state"))[0] == 0
    assert len(broker.sent) == 2
    code, said = await run([f], tmp_path / "state")
    assert code == 0
    ((kind, cp),) = said.lines
    assert (kind, cp.rows, cp.sent) == ("already_loaded", 2, 2)
    assert len(broker.sent) == 2
    code, said = await run([f], tmp_path / "state", restart=True)
    assert [kind for kind, _ in said.lines] == ["finished"]
    assert len(broker.sent) == 4


async def test_a_resumed_load_says_where_it_resumes(
    tmp_path: Path, broker: FakeProducer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A load run again after an interruption said nothing of where it went on from (a new
    user's trial): now one line, before any row is sent."""
    f = tmp_path / "hist.csv"
    f.write_text(HEADER + "".join(ROW.format(i=i) for i in range(1, 4)))
    st = f.stat()
    interrupted = backfill.Checkpoint(str(f.resolve()), st.st_size, st.st_mtime_ns, 2, 2, 0)
    interrupted.save(backfill.Checkpoint.path_for(tmp_path / "state", f, KafkaSettings()))
    code, said = await run([f], tmp_path / "state")
    assert (code, [kind for kind, _ in said.lines]) == (0, ["resuming", "finished"])
    assert said.lines[0][1] == 2
    assert len(broker.sent) == 1  # (the third row only)
    reporter = backfill.RichReporter()
    reporter.resuming(tmp_path / "[hist].csv", interrupted)
    reporter.close()
    assert capsys.readouterr().err == (
        "[hist].csv: resuming after row 2 (its checkpoint: 2 events sent, 0 rejected); "
        "--restart loads it from the first row\n"
    )


def test_the_terminal_line_of_a_file_loaded_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reporter = backfill.RichReporter()
    cp = backfill.Checkpoint("hist.csv", 1, 1, rows=90_069, sent=90_069, done=True)
    reporter.already_loaded(tmp_path / "[hist].csv", cp, tmp_path / "r.ndjson")
    reporter.close()
    assert capsys.readouterr().err == (
        "[hist].csv: already loaded (its checkpoint: 90,069 rows, 90,069 events sent, 0 "
        "rejected): nothing sent now; --restart loads it again\n"
    )


def test_the_piped_progress_line_says_the_time_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/operations.md: the progress says the time left, on a terminal (the bar's ETA) and
    in the lines written when it is not one (which had none: a new user's trial)."""
    start = time.monotonic() - 10.0  # 1,000 rows in 10 s: 100 rows/s
    prog = backfill.Progress(tmp_path / "h.csv", rows=1_500, total=7_500, t0=start, rows0=500)
    assert prog.left() in ("0:01:00 left", "0:01:01 left")
    reporter = backfill.RichReporter()
    reporter.progress(prog)
    reporter.close()
    line = capsys.readouterr().err
    assert line.startswith("h.csv: 1,500/7,500 rows, 0 sent, 0 rejected, 100 rows/s, 0:01:0")
    assert line.rstrip().endswith(" left")
    unknown = backfill.Progress(tmp_path / "h.csv.gz", rows=1_500, t0=start, rows0=500)
    assert unknown.left() == ""  # a gzipped file's rows are not counted first
    assert backfill.Progress(tmp_path / "h.csv", total=10, t0=start).left() == ""


# 7. nothing to load, nothing loaded ---------------------------------------------------------


def test_a_file_without_data_rows_is_one_line(tmp_path: Path) -> None:
    pa = need_module("pyarrow")
    pq = need_module("pyarrow.parquet")
    cases = {
        "empty.csv": ("", "empty.csv is empty"),
        "header.csv": (HEADER, "header.csv has a header row but no data rows"),
        "blank.ndjson": ("\n \n", "blank.ndjson is empty"),
        # blank lines alone were "a header row but no data rows"; analyze says empty
        "blank.csv": ("\n \n,\n", "blank.csv is empty"),
        "late.csv": (
            "\n" + HEADER + ROW.format(i=1),
            (
                "late.csv: line 1 is blank; a CSV export's first line is its header row (the "
                "column names)"
            ),
        ),
    }
    for name, (text, said) in cases.items():
        (tmp_path / name).write_text(text)
        assert bad_input(tmp_path / name) == said
    f = tmp_path / "none.parquet"
    pq.write_table(pa.Table.from_pylist([decision(1)]).slice(0, 0), f)
    assert bad_input(f) == "none.parquet has no rows"


async def test_a_file_of_which_no_row_was_sent_fails(tmp_path: Path, broker: FakeProducer) -> None:
    f = tmp_path / "old.ndjson"
    f.write_text(
        "".join(json.dumps(decision(i, decided_at="2020-01-01T00:00:00Z")) + "\n" for i in range(3))
    )
    after = tmp_path / "next.ndjson"
    after.write_text(json.dumps(decision(9)) + "\n")
    code, said = await run([f, after], tmp_path / "state")
    assert code == 1
    (message,) = errors(said)
    assert message.startswith(
        "old.ndjson: no row sent: all 3 rows were rejected (the first: row 1: "
    )
    assert message.endswith(
        "fix the export (or what the reason names), then load it again with --restart"
    )
    assert "QW_INGEST_MAX_AGE_DAYS" in message
    assert broker.sent == []
    code, said = await run([f, after], tmp_path / "state")  # not "loaded": it stops again
    assert code == 1
    assert errors(said)[0].startswith("old.ndjson: no row sent: all 3 rows were rejected")
    assert broker.sent == []


# through the command line: one line, the exit status ---------------------------------------


async def test_rows_of_a_queue_ingest_does_not_admit_are_rejected_with_its_reason(
    tmp_path: Path, broker: FakeProducer
) -> None:
    f = tmp_path / "q.ndjson"
    f.write_text("".join(json.dumps(decision(i, q)) + "\n" for i, q in enumerate("aabcx")))
    allow = QueuePolicy("allowlist", ["a", "x*"])
    code, said = await run([f], tmp_path / "state", queues=allow)
    assert code == 0, said.lines
    assert [json.loads(v)["queue_id"] for _, v, _ in broker.sent] == ["a", "a", "x"]
    (rejects,) = (tmp_path / "state").glob("q.ndjson.*.rejects.ndjson")
    assert [json.loads(r) for r in rejects.read_text().splitlines()] == [
        {"row": n, "reason": f"{allow.refusal(q)}; ingest would dead-letter its events (this "
         "command checks queues with the QW_INGEST_QUEUES settings it is given, as ingest "
         "does)"}
        for n, q in ((3, "b"), (4, "c"))
    ]  # fmt: skip
    # open: every ingest process counts its own queues, so nothing is refused here
    broker.sent.clear()
    code, _ = await run([f], tmp_path / "open", queues=QueuePolicy("open", open_max=1))
    assert (code, len(broker.sent)) == (0, 5)


def test_the_command_says_one_line_with_exit_2_or_1(
    tmp_path: Path, broker: FakeProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from services import cli

    monkeypatch.setattr(cli, "_broker_answers", lambda kafka: None)
    monkeypatch.setenv("QW_INGEST_MAX_AGE_DAYS", "400")  # ingest's setting (tests/conftest.py)
    # ingest's queues, as the command reads them (a static list: no broker asked)
    monkeypatch.setenv("QW_INGEST_QUEUES", "allowlist")
    monkeypatch.setenv("QW_INGEST_QUEUES_ALLOW", '["spam-*"]')
    gz, txt, empty, old, other, good = (
        tmp_path / n for n in ("gz.csv", "x.txt", "h.csv", "old.ndjson", "o.csv", "hist.csv")
    )
    gz.write_bytes(gzip.compress(HEADER.encode()))
    txt.write_text(HEADER + ROW.format(i=1))
    empty.write_text(HEADER)
    old.write_text(json.dumps(decision(1, decided_at="2020-01-01T00:00:00Z")) + "\n")
    good.write_text(HEADER + ROW.format(i=1))
    other.write_text(HEADER + ROW.format(i=2).replace("spam-en", "hate-en"))
    state = ["--state-dir", str(tmp_path / "state")]
    for f, code, start in (
        (gz, 2, "qwatch: gz.csv is not UTF-8 text (line 1, byte 1"),
        (txt, 2, "qwatch: cannot tell the format of 'x.txt'"),
        (empty, 2, "qwatch: h.csv has a header row but no data rows"),
        (old, 1, "qwatch: old.ndjson: no row sent: its one row was rejected"),
        (other, 1, "qwatch: o.csv: no row sent: its one row was rejected"),
        (good, 0, "hist.csv: loaded, 1 row: 1 event sent"),
        (good, 0, "hist.csv: already loaded (its checkpoint: 1 row, 1 event sent"),
    ):
        result = CliRunner().invoke(cli.app, ["backfill", str(f), *state])
        assert result.exit_code == code, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 or code != 2, lines  # a load (0, 1) prints its progress too
        assert lines[-1].startswith(start), lines
    assert len(broker.sent) == 1


def test_a_parquet_binary_column_is_named_in_the_reason(tmp_path: Path) -> None:
    """Some exporters write text as Parquet binary: the reason was "not an event: Type is
    not JSON serializable: bytes", naming no column."""
    pa = need_module("pyarrow")
    pq = need_module("pyarrow.parquet")
    row = decision(1)
    table = pa.Table.from_pylist([row]).set_column(
        list(row).index("site_id"), "site_id", pa.array([row["site_id"].encode()], pa.binary())
    )
    f = tmp_path / "bin.parquet"
    pq.write_table(table, f)
    (read,) = backfill.read_rows(f, "parquet")
    assert read.event is not None
    with pytest.raises(ValueError, match=r"^site_id: a Parquet bytes value") as caught:
        backfill.check(read.event)
    assert str(caught.value).endswith("export the column as text (a string column)")


def test_piped_progress_says_a_line_once_and_no_rate_from_the_first_instants(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A trial saw each stop print its progress line twice, and a load stopped at once
    say "12 rows/s, 1:22:48 left" (the rate taken over the file's read-through too); the
    rate is now of the sending, and said after its first second."""
    reporter = backfill.RichReporter()
    prog = backfill.Progress(Path("h.csv"), rows=12, sent=12, total=60_000, t0=time.monotonic())
    reporter.progress(prog)
    reporter.progress(prog)  # (a stop settles twice)
    reporter.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    # no rate and no time left from a fraction of a second
    assert lines == ["h.csv: 12/60,000 rows, 12 sent, 0 rejected"]
    prog.t0 -= 2.0
    assert prog.left().endswith(" left")


# the bounds of a Parquet file: a cell, a row group ------------------------------------------


async def test_a_parquet_cell_past_the_line_bound_stops_before_its_row_is_sent(
    tmp_path: Path, broker: FakeProducer
) -> None:
    """A CSV or NDJSON line past MAX_LINE_BYTES is refused; a Parquet cell of any size was
    read whole and sent. Now the same bound, in analyze's words (shared/analysis/load.py),
    found by the read-through before the file's load (as a text file's bad byte or long
    line), so nothing of the file is sent; in the first rows, before the broker is asked
    anything."""
    pa = need_module("pyarrow")
    pq = need_module("pyarrow.parquet")
    from shared.analysis.load import MAX_LINE_BYTES

    rows = [decision(i) for i in range(1, 10_006)]
    rows[10_002]["site_id"] = "x" * (MAX_LINE_BYTES + 1)  # row 10003: the second batch
    said_line = (
        f"big.parquet: row 10003, column 'site_id': a value of {MAX_LINE_BYTES + 1:,} bytes, "
        f"more than the {MAX_LINE_BYTES:,} a cell may hold (as a CSV or NDJSON line); no field "
        "of a verdict or a decision is that long"
    )
    f = tmp_path / "big.parquet"
    pq.write_table(pa.Table.from_pylist(rows), f)
    assert backfill.preflight(f) == "parquet"  # (its first rows are fine)
    code, said = await run([f], tmp_path / "state")
    assert (code, errors(said)) == (2, [said_line])
    assert broker.sent == []  # (the first batch was sent before the read-through)
    assert not backfill.Checkpoint.path_for(tmp_path / "state", f, KafkaSettings()).exists()
    # in the first rows: refused before the broker is asked anything, binary cells too
    early = tmp_path / "early.parquet"
    table = pa.Table.from_pylist(rows[:3]).append_column(
        "blob", pa.array([b"", b"x" * (MAX_LINE_BYTES + 1), b""], pa.binary())
    )
    pq.write_table(table, early)
    assert bad_input(early).startswith("early.parquet: row 2, column 'blob': a value of ")


async def test_a_value_repeated_through_a_parquet_dictionary_is_refused(
    tmp_path: Path, broker: FakeProducer
) -> None:
    """A file of a few kilobytes whose dictionary-encoded column says 300 cells of almost
    1 MiB: every cell within the bound, the row group ~1 MB encoded, 300 MB decoded at once.
    Refused in analyze's words (shared/analysis/load.py, MAX_BATCH_TEXT_BYTES), nothing
    sent."""
    pa = need_module("pyarrow")
    pq = need_module("pyarrow.parquet")
    from shared.analysis.load import MAX_BATCH_TEXT_BYTES, MAX_LINE_BYTES

    table = pa.Table.from_pylist([decision(i) for i in range(300)])
    big = pa.DictionaryArray.from_arrays(  # (never decoded in this process either)
        pa.array([0] * 300, pa.int32()), pa.array(["x" * (MAX_LINE_BYTES - 100)])
    )
    f = tmp_path / "bomb.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("site_id"), "site_id", big), f)
    said = bad_input(f)
    assert said.startswith("bomb.parquet: rows 1 to 300 hold "), said
    assert f"bytes of text, more than the {MAX_BATCH_TEXT_BYTES:,} read at once" in said
    with pytest.raises(backfill.BackfillError, match=r"bomb\.parquet: rows 1 to 300 hold "):
        backfill.count_rows(f, "parquet")
    code, _ = await run([f], tmp_path / "state")
    assert (code, broker.sent) == (2, [])


def test_an_absurd_parquet_row_group_is_refused_before_anything_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pa = need_module("pyarrow")
    pq = need_module("pyarrow.parquet")
    from shared.analysis import load

    f = tmp_path / "groups.parquet"
    pq.write_table(pa.Table.from_pylist([decision(i) for i in range(5)]), f, row_group_size=3)
    meta = pq.read_metadata(f)
    size = meta.row_group(1).total_byte_size
    monkeypatch.setattr(load, "MAX_ROW_GROUP_BYTES", size - 1)  # (1 GiB of test file: no)
    assert bad_input(f) == (
        f"groups.parquet: row group 1 of 2 (rows 1 to 3) is "
        f"{meta.row_group(0).total_byte_size:,} bytes uncompressed, more than the {size - 1:,} "
        "read at once; write the file again with smaller row groups (e.g. pyarrow's "
        "row_group_size=100_000)"
    )


# the admitted queues: read only for rows to send, a broker failure or Ctrl-C there ----------


class FakeAdmissionLog:
    """The admitted-queues topic, read by ``queue_refusal``: ``started`` counts the reads;
    ``start`` does what ``behaviour`` says (nothing, raise, or wait until cancelled)."""

    started = 0
    stopped = 0
    behaviour: BaseException | asyncio.Event | None = None

    def __init__(self, kafka: KafkaSettings, on_change: Any) -> None:
        self.on_change = on_change

    async def start(self) -> None:
        type(self).started += 1
        if isinstance(self.behaviour, BaseException):
            raise self.behaviour
        if isinstance(self.behaviour, asyncio.Event):
            await self.behaviour.wait()  # (a broker that does not answer)
        self.on_change("spam-en", {"by": "test"})

    async def stop(self) -> None:
        type(self).stopped += 1


@pytest.fixture
def admission_log(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmissionLog]:
    log = type("Log", (FakeAdmissionLog,), {"started": 0, "stopped": 0, "behaviour": None})
    monkeypatch.setattr("shared.admission.AdmissionLog", log)
    return log


async def test_a_rerun_after_a_complete_load_does_not_read_the_admitted_queues(
    tmp_path: Path, broker: FakeProducer, admission_log: type[FakeAdmissionLog]
) -> None:
    f = tmp_path / "hist.csv"
    f.write_text(HEADER + ROW.format(i=1))
    admitted = QueuePolicy("admitted")
    code, said = await run([f], tmp_path / "state", queues=admitted)
    assert (code, [kind for kind, _ in said.lines]) == (0, ["finished"])
    assert (admission_log.started, len(broker.sent)) == (1, 1)
    code, said = await run([f], tmp_path / "state", queues=QueuePolicy("admitted"))
    assert (code, [kind for kind, _ in said.lines]) == (0, ["already_loaded"])
    assert admission_log.started == 1  # every file loaded: no broker round trip
    code, _ = await run([f], tmp_path / "state", queues=QueuePolicy("admitted"), restart=True)
    assert (code, admission_log.started, len(broker.sent)) == (0, 2, 2)
    # a file with rows left among loaded ones: read, once
    g = tmp_path / "next.csv"
    g.write_text(HEADER + ROW.format(i=2))
    code, _ = await run([f, g], tmp_path / "state", queues=QueuePolicy("admitted"))
    assert (code, admission_log.started, len(broker.sent)) == (0, 3, 3)


async def test_a_broker_failure_reading_the_admitted_queues_is_one_line(
    tmp_path: Path, broker: FakeProducer, admission_log: type[FakeAdmissionLog]
) -> None:
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

    f = tmp_path / "hist.csv"
    f.write_text(HEADER + ROW.format(i=1))
    kafka = KafkaSettings()
    said_start = (
        f"cannot read the admitted queues ({kafka.topics.queues}) from the Kafka broker at "
        f"{kafka.bootstrap} (QW_KAFKA_BOOTSTRAP): "
    )
    for failure, reason, code_expected in (
        (  # unreachable: exit 2, as the command says of a broker it cannot reach
            KafkaConnectionError("Unable to bootstrap from\n[('127.0.0.1', 9)]"),
            "KafkaConnectionError: Unable to bootstrap from [('127.0.0.1', 9)]",  # one line
            2,
        ),
        (KafkaTimeoutError(), "KafkaTimeoutError", 1),
    ):
        admission_log.behaviour = failure
        code, said = await run([f], tmp_path / "state", queues=QueuePolicy("admitted"))
        assert (code, errors(said)) == (
            code_expected,
            [f"{said_start}{reason}; nothing was sent"],
        )
    assert admission_log.stopped == admission_log.started == 2  # (its client closed)
    assert broker.sent == []
    assert not backfill.Checkpoint.path_for(tmp_path / "state", f, KafkaSettings()).exists()


async def test_ctrl_c_while_the_admitted_queues_are_read_stops_cleanly(
    tmp_path: Path, broker: FakeProducer, admission_log: type[FakeAdmissionLog]
) -> None:
    """The admitted queues were read before Ctrl-C was taken: a broker slow to answer
    there made Ctrl-C a KeyboardInterrupt and a traceback. Now a clean stop, nothing sent."""
    import os
    import signal

    f = tmp_path / "hist.csv"
    f.write_text(HEADER + ROW.format(i=1))
    admission_log.behaviour = asyncio.Event()  # never set: the read waits for Ctrl-C
    caught: list[int] = []  # (without the command's handler, a SIGINT lands here: no
    before = signal.signal(signal.SIGINT, lambda sig, frame: caught.append(sig))  # pytest stop)
    try:
        asyncio.get_running_loop().call_later(0.3, os.kill, os.getpid(), signal.SIGINT)
        code, said = await asyncio.wait_for(
            run([f], tmp_path / "state", queues=QueuePolicy("admitted")), 10
        )
    finally:
        signal.signal(signal.SIGINT, before)
    assert caught == []  # the command's own handler took it
    assert (code, errors(said)) == (
        INTERRUPTED,
        [
            "stopped while reading the admitted queues, before the load began: nothing was "
            "sent; run the same command to load the files"
        ],
    )
    assert admission_log.stopped == 1  # the read was ended, its client closed
    assert broker.sent == []
    assert not backfill.Checkpoint.path_for(tmp_path / "state", f, KafkaSettings()).exists()


# a terminal: the line that says the load stopped is the last thing on it --------------------


def test_on_a_terminal_the_stop_line_is_the_last_thing_drawn(tmp_path: Path) -> None:
    """rich drew the progress bar again below "stopped after ..." (and below the line of
    --max-rejects): the bar now ends, in its last state, before the line."""
    import io

    from rich.console import Console

    for stop in ("ctrl-c", "max-rejects"):
        out = io.StringIO()
        reporter = backfill.RichReporter(Console(file=out, force_terminal=True, width=120))
        assert reporter.live
        prog = backfill.Progress(tmp_path / "h.csv", rows=5, sent=5, total=10, t0=time.monotonic())
        reporter.progress(prog)
        time.sleep(0.25)  # (rich redraws the bar ten times a second)
        if stop == "ctrl-c":
            cp = backfill.Checkpoint("h.csv", 1, 1, rows=5, sent=5)
            reporter.finished(prog, cp, tmp_path / "r.ndjson")
            line = "h.csv: stopped after 5 rows (5 sent, 0 rejected, all acknowledged); run the "
        else:
            reporter.error("h.csv: more than 2 rows rejected, so the load stops here")
            line = "qwatch: h.csv: more than 2 rows rejected"
        time.sleep(0.25)
        reporter.close()
        text = out.getvalue()
        assert "rows/s" in text.split(line)[0]  # the bar was drawn, before the line
        after = text.split(line)[-1]
        assert "rows/s" not in after, repr(after)
        assert "━" not in after, repr(after)


async def test_a_text_line_past_the_bound_is_refused_before_its_file_is_sent(
    tmp_path: Path, broker: FakeProducer
) -> None:
    """analyze refuses a CSV or NDJSON line longer than MAX_LINE_BYTES; backfill read any
    line whole (a file of one enormous line: all of it in memory). Now the same bound: found
    in the read-through before the file's load, or in its first rows, before anything is
    sent; a line of exactly the bound is read."""
    from shared.analysis.load import MAX_LINE_BYTES

    def padded(event: dict[str, Any], size: int) -> bytes:
        text = json.dumps(event).encode()
        return text + b" " * (size - len(text)) + b"\n"  # (JSON takes trailing blanks)

    ok = tmp_path / "ok.ndjson"
    ok.write_bytes(codec_line(decision(0)) + padded(decision(1), MAX_LINE_BYTES))
    for name in ("long.ndjson", "long.ndjson.gz"):
        data = codec_line(decision(2)) + padded(decision(3), MAX_LINE_BYTES + 1)
        f = tmp_path / name
        f.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        assert backfill.preflight(f) == "ndjson"  # (its first row is fine)
        broker.sent.clear()
        code, said = await run([ok, f], tmp_path / name.replace(".", "-"))
        assert (code, errors(said)) == (
            2,
            [f"{name}: line 2 is longer than {MAX_LINE_BYTES:,} bytes; no decision or "
             "verdict is that long (a free-text column? leave out of the export the columns "
             "QualityWatch does not read: docs/events.md lists those it does)"],
        )  # fmt: skip
        assert [json.loads(v)["decision_id"] for _, v, _ in broker.sent] == ["d0", "d1"]
        with pytest.raises(backfill.BackfillError) as caught:
            list(backfill.read_rows(f, "ndjson"))  # (the reader's own words: the same)
        assert str(caught.value) == errors(said)[0]
    # in the first rows (a CSV header here), and a line with no end at all: at once
    header = tmp_path / "header.csv"
    header.write_text("kind," + "x" * MAX_LINE_BYTES + "\n" + ROW.format(i=1))
    assert bad_input(header).startswith("header.csv: line 1 is longer than ")
    endless = tmp_path / "endless.ndjson"
    endless.write_bytes(codec_line(decision(1)) + b"x" * (3 * MAX_LINE_BYTES))
    assert backfill.count_rows(tmp_path / "ok.ndjson", "ndjson") == 2
    with pytest.raises(backfill.BackfillError, match=r"^endless.ndjson: line 2 is longer"):
        backfill.count_rows(endless, "ndjson")


def codec_line(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode() + b"\n"


async def test_a_file_loaded_to_one_destination_is_loaded_whole_to_another(
    tmp_path: Path, broker: FakeProducer
) -> None:
    """A checkpoint is of a file *and* a destination (the broker, the raw topics): loading
    staging, then production (another prefix or cluster), sends every row to each, and a
    rerun to either says it is loaded. (One checkpoint per file sent nothing to the second,
    and said 'loaded'.)"""
    f = tmp_path / "h.ndjson"
    f.write_text("".join(json.dumps(decision(i)) + "\n" for i in range(1, 6)))
    state = tmp_path / "state"

    async def load(kafka: KafkaSettings) -> list[str]:
        said = Said()
        broker.sent.clear()
        code = await backfill.run_backfill(
            [f], kafka, state_dir=state, max_age_days=MAX_AGE_DAYS, reporter=said
        )
        assert code == 0
        return [kind for kind, _ in said.lines]

    staging = KafkaSettings(topic_prefix="staging.")
    production = KafkaSettings(topic_prefix="prod.")
    elsewhere = KafkaSettings(bootstrap="10.0.0.7:9092", topic_prefix="staging.")
    assert await load(staging) == ["finished"]
    assert {topic for topic, _, _ in broker.sent} == {"staging.qw.decisions.raw.v1"}
    assert len(broker.sent) == 5
    for kafka in (production, elsewhere):
        assert await load(kafka) == ["finished"]
        assert len(broker.sent) == 5  # every row, to this destination too
    assert {topic for topic, _, _ in broker.sent} == {"staging.qw.decisions.raw.v1"}
    for kafka in (staging, production, elsewhere):
        assert await load(kafka) == ["already_loaded"]
        assert broker.sent == []
    assert not backfill.to_send(f, state, production, restart=False)
    assert backfill.to_send(f, state, KafkaSettings(topic_prefix="new."), restart=False)


def test_on_a_terminal_a_finished_load_ends_on_its_result_lines(tmp_path: Path) -> None:
    """A file's bar gives way to its 'loaded' line: after two files, the terminal ends on
    their two lines, not on the bars (which rich drew again below them)."""
    import io

    from rich.console import Console

    out = io.StringIO()
    reporter = backfill.RichReporter(Console(file=out, force_terminal=True, width=120))
    for name in ("a.csv", "b.csv"):
        prog = backfill.Progress(tmp_path / name, rows=4, sent=4, total=4, t0=time.monotonic())
        reporter.progress(prog)
        time.sleep(0.25)  # (rich redraws the bar ten times a second)
        cp = backfill.Checkpoint(name, 1, 1, rows=4, sent=4, done=True)
        reporter.finished(prog, cp, tmp_path / "r.ndjson")
    time.sleep(0.25)
    reporter.close()
    text = out.getvalue()
    last = "b.csv: loaded, 4 rows: 4 events sent, 0 rejected"
    assert "rows/s" in text.split("a.csv: loaded")[0]  # the bar was drawn
    after = text.split(last)[-1]
    assert "rows/s" not in after, repr(after)
    assert "━" not in after, repr(after)


async def test_a_send_that_fails_stops_the_load_before_its_row(
    tmp_path: Path, broker: FakeProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send the broker fails (here row 4's) once made the checkpoint stay where it was,
    rows acknowledged since included; the checkpoint now says the rows before it, and the
    rejects of rows after it are taken back (the same command reads those rows again)."""
    export = tmp_path / "h.csv"
    rows = [ROW.format(i=i) for i in range(1, 8)]
    rows[1] = rows[5] = "decision,,,,,,,,\n"  # rows 2 and 6: rejected
    export.write_text(HEADER + "".join(rows))
    sent = broker.send

    async def failing(topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        if b'"d4"' not in value:
            return await sent(topic, value, key)
        failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        failed.set_exception(KafkaTimeoutError("no answer"))
        return failed

    monkeypatch.setattr(broker, "send", failing)
    with pytest.raises(KafkaTimeoutError):
        await backfill.load_file(
            export, KafkaSettings(), checkpoint_path=tmp_path / "cp.json",
            rejects_path=tmp_path / "r.ndjson",
        )  # fmt: skip
    saved = json.loads((tmp_path / "cp.json").read_text())
    assert (saved["done"], saved["rows"], saved["sent"], saved["rejected"]) == (False, 3, 2, 1)
    assert [json.loads(x)["row"] for x in (tmp_path / "r.ndjson").read_text().splitlines()] == [2]


async def test_a_csv_field_of_many_lines_is_one_row_and_one_too_long_is_refused_first(
    tmp_path: Path, broker: FakeProducer
) -> None:
    """A quoted CSV field may hold line ends: the read-through counted lines, so a note of
    40,000 lines made the progress bar's total 40,300 rows; and a field past the csv
    module's limit was found by the load, after the 199 rows before it had been sent. The
    records are counted as the load reads them now, and the refusal comes first."""
    header = HEADER.rstrip("\n") + ",notes\n"
    row = ROW.rstrip("\n") + ",{notes}\n"
    ok = tmp_path / "notes.csv"
    ok.write_text(
        header + "".join(row.format(i=i, notes='"a\n\nnote, of lines"') for i in range(5))
    )
    assert backfill.count_rows(ok, "csv") == len(list(backfill.read_rows(ok, "csv"))) == 5
    code, said = await run([ok], tmp_path / "state")
    assert (code, len(broker.sent)) == (0, 5)

    long = tmp_path / "long.csv"
    notes = ['"' + "line\n" * 40_000 + '"' if i == 200 else "ok" for i in range(1, 301)]
    long.write_text(header + "".join(row.format(i=i, notes=n) for i, n in enumerate(notes, 1)))
    code, said = await run([long], tmp_path / "state")
    assert (code, errors(said)) == (
        2,
        [
            "long.csv: line 26415: not valid CSV: a field longer than 131,072 characters (a free-text column? leave out of "
            "the export the columns QualityWatch does not read: docs/events.md lists those it does)"
        ],
    )
    assert len(broker.sent) == 5  # none of this file


# found by a new user's trial (helper-64) -------------------------------------------------


async def test_a_cell_that_is_not_an_integer_is_a_rejected_row(
    tmp_path: Path, broker: FakeProducer
) -> None:
    """'²' passed str.isdigit and int() raised (a traceback, after the rows before it were
    sent, and no checkpoint: every rerun the same); 5,000 digits passed int()'s check too
    and it raised past 4,300; '٣' was sent as 3. Each is a rejected row now, in the model's
    words, and the load goes on."""
    header = HEADER.rstrip("\n") + ",severity\n"
    row = ROW.rstrip("\n") + ",{s}\n"
    cells = ["2", "²", "--2", "1" * 5000, "٣", " 3 "]
    export = tmp_path / "sev.csv"
    export.write_text(header + "".join(row.format(i=i, s=s) for i, s in enumerate(cells, 1)))
    code, said = await run([export], tmp_path / "state")
    assert code == 0, said.lines
    assert [json.loads(v)["severity"] for _, v, _ in broker.sent] == [2, 3]
    (rejects,) = (tmp_path / "state").rglob("sev.csv.*.rejects.ndjson")
    reasons = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert [r["row"] for r in reasons] == [2, 3, 4, 5]
    assert all(
        r["reason"].startswith("severity: Value error, must be a JSON integer") for r in reasons
    )
    assert len(reasons[2]["reason"]) < 400  # the 5,000 digits cut short
    assert reasons[2]["reason"].endswith("... (5,002 characters))")


def test_a_message_past_the_producers_bound_is_said_so() -> None:
    """A topic may allow more than a QualityWatch producer sends (8 MiB); the row was
    checked against the topic's limit alone, and the producer refused it with a traceback.
    And when the largest column is not what makes it too large, leaving it out is not the
    advice."""
    event = {f"n{i}": "x" * 100_000 for i in range(100)}
    value = codec.dumps(event)
    said = backfill._too_large(event, value, b"q", "raw", 20_000_000)
    assert said is not None
    assert said.startswith(f"the event is {len(value):,} bytes of JSON and raw takes at most ")
    assert "(8,388,608, the most a QualityWatch producer sends)" in said
    assert "leaving it out is not enough" in said
    assert "max.message.bytes" not in said
    one = {"notes": "x" * 2_000_000}
    said = backfill._too_large(one, codec.dumps(one), b"q", "raw", 1_048_588)
    assert said is not None
    assert said.endswith(
        "(its max.message.bytes is 1,048,588); its largest column, 'notes', holds 2,000,002: "
        "leave that column out of the export, or raise the topic's max.message.bytes"
    )


async def test_a_long_unquoted_field_is_refused_before_any_row_is_sent(
    tmp_path: Path, broker: FakeProducer
) -> None:
    """The CSV parser's read-through ran only for a file with a quote in it: a field of
    200,000 characters in a file without one stopped the load at its row, 90 rows sent."""
    header = HEADER.rstrip("\n") + ",notes\n"
    row = ROW.rstrip("\n") + ",{notes}\n"
    notes = ["n" * 200_000 if i == 91 else "ok" for i in range(1, 101)]
    export = tmp_path / "unq.csv"
    export.write_text(header + "".join(row.format(i=i, notes=n) for i, n in enumerate(notes, 1)))
    code, said = await run([export], tmp_path / "state")
    assert (code, errors(said)) == (
        2,
        [
            "unq.csv: line 92: not valid CSV: a field longer than 131,072 characters (a free-text column? leave out of "
            "the export the columns QualityWatch does not read: docs/events.md lists those it does)"
        ],
    )
    assert broker.sent == []


async def test_ctrl_c_is_taken_while_a_resumed_load_skips_to_its_checkpoint(
    tmp_path: Path, broker: FakeProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed load reads the rows before its checkpoint again without a pause: 5 million
    of them took 36 s, with Ctrl-C not taken until the first row past it (which was sent)."""
    export = tmp_path / "h.csv"
    export.write_text(HEADER + "".join(ROW.format(i=i) for i in range(1, 50_001)))
    cp_path = tmp_path / "cp.json"
    cp = backfill.Checkpoint.load_or_new(cp_path, export, restart=False)
    cp.rows = 49_000
    cp.save(cp_path)
    read = [0]
    rows = backfill.read_rows

    def counted(path: Path, fmt: str) -> Any:
        for row in rows(path, fmt):
            read[0] += 1
            yield row

    monkeypatch.setattr(backfill, "read_rows", counted)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_soon(stop.set)  # Ctrl-C, as the skip begins
    cp = await backfill.load_file(
        export, KafkaSettings(), checkpoint_path=cp_path, rejects_path=tmp_path / "r.ndjson",
        stop=stop,
    )  # fmt: skip
    assert (cp.done, cp.rows) == (False, 49_000)
    assert broker.sent == []
    assert read[0] <= backfill.SKIP_YIELD_ROWS


def test_the_time_left_under_rate_is_at_the_rate() -> None:
    """Under --rate the first rows go at once: 1 row in 2 s made 0.5 rows/s, and 49 rows
    at --rate 0.01 '0:01:39 left' (the trial saw 0:02:43) instead of 1:21:40."""
    prog = backfill.Progress(Path("x.csv"), rows=1, total=50, t0=time.monotonic() - 2, limit=0.01)
    assert prog.left() == "1:21:40 left"
    assert backfill.Progress(Path("x.csv"), rows=1, total=50, t0=time.monotonic() - 2).left() == (
        "0:01:39 left"
    )


def test_a_header_that_repeats_a_column_is_refused(tmp_path: Path) -> None:
    """``queue_id`` twice: the last cell was taken without a word; analyze refuses it."""
    f = tmp_path / "dup.csv"
    f.write_text("kind,decision_id,queue_id,queue_id\ndecision,d1,a,b\n")
    assert bad_input(f) == "dup.csv: line 1: the header repeats column(s) 'queue_id'"


def test_lines_that_end_in_cr_alone_say_what_to_change(tmp_path: Path) -> None:
    """A file whose lines end in a carriage return alone (old Mac exports) is one line to
    the reader; the csv module's words for it ("universal-newline mode") speak to a
    programmer, so the refusal says what the file's maker should change, and how."""
    f = tmp_path / "mac.csv"
    f.write_bytes((HEADER + ROW.format(i=1) + ROW.format(i=2)).replace("\n", "\r").encode())
    said = bad_input(f)
    assert said.startswith("mac.csv: line 1: not valid CSV: a carriage return (CR) outside")
    assert "tr '\\r' '\\n' < old.csv > new.csv" in said
    assert "universal-newline" not in said
    # the same file with CRLF line ends loads
    f.write_bytes((HEADER + ROW.format(i=1)).replace("\n", "\r\n").encode())
    assert backfill.preflight(f) == "csv"


async def test_the_line_that_ends_a_load_names_every_queue_not_admitted(
    tmp_path: Path, broker: FakeProducer
) -> None:
    """A trial's export of 8 queues, none admitted, stopped at --max-rejects naming only
    the first queue (the others were in 1,001 lines of the rejects file), and the advice to
    load again with --restart twice. The line now names the queues, once each."""
    f = tmp_path / "q.ndjson"
    f.write_text("".join(json.dumps(decision(i, q)) + "\n" for i, q in enumerate("bcbdcea")))
    allow = QueuePolicy("allowlist", ["a"])
    code, said = await run([f], tmp_path / "state", queues=allow, max_rejects=3)
    assert code == 1
    (message,) = errors(said)
    assert "the rows of 3 queues not admitted were rejected: b c d)" in message, message
    assert message.count("--restart") == 2  # (the advice, and "a load with --restart")
    # every row refused: none sent, the same list
    g = tmp_path / "none.ndjson"
    g.write_text("".join(json.dumps(decision(i, q)) + "\n" for i, q in enumerate("xyx")))
    code, said = await run([g], tmp_path / "state", queues=allow)
    assert code == 1
    (message,) = errors(said)
    assert "; the rows of 2 queues not admitted were rejected: x y; fix the export" in message
    # past SHOWN_QUEUES, the rest are counted
    shown = backfill._refused_queues([f"q{i}" for i in range(backfill.SHOWN_QUEUES + 3)])
    assert shown.endswith(f"q{backfill.SHOWN_QUEUES - 1} and 3 more")


def test_a_load_stopped_under_restart_says_to_resume_without_it(tmp_path: Path) -> None:
    """The same command, --restart included, would load the file from its first row
    again: the line says to run it without --restart."""
    import io

    from rich.console import Console

    for restart, again in (
        (True, "the same command without --restart"),
        (False, "the same command"),
    ):
        out = io.StringIO()
        reporter = backfill.RichReporter(Console(file=out, width=200), restart=restart)
        prog = backfill.Progress(tmp_path / "h.csv", rows=5, sent=5, total=10, t0=time.monotonic())
        reporter.finished(prog, backfill.Checkpoint("h.csv", 1, 1, rows=5, sent=5), tmp_path / "r")
        reporter.close()
        assert f"all acknowledged); run {again} to resume\n" in out.getvalue(), out.getvalue()


async def test_a_load_says_when_no_ingest_reads_the_raw_topics(
    tmp_path: Path, broker: FakeProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial loaded three days of history before starting ingest, and saw nothing
    counted until it did (and, read as a backlog before ingest held decisions back, most
    verdicts late). The load now says so when nobody is in ingest's group (0 members), and
    nothing when someone is or the broker does not say (None)."""
    import shared.kafka

    f = tmp_path / "h.ndjson"
    f.write_text(json.dumps(decision(1)) + "\n")
    asked: list[str] = []
    for members, said_it in ((0, True), (1, False), (None, False)):

        async def count(kafka: KafkaSettings, group: str, n: int | None = members) -> int | None:
            asked.append(group)
            return n

        monkeypatch.setattr(shared.kafka, "group_members", count)
        code, said = await run([f], tmp_path / f"s{members}", ingest_group="qw-ingest")
        assert code == 0
        notes = [what for kind, what in said.lines if kind == "note"]
        assert notes == ([backfill.no_ingest("qw-ingest")] if said_it else []), notes
    assert asked == ["qw-ingest"] * 3
    # a rerun after a complete load sends nothing: the broker is not asked
    await run([f], tmp_path / "s0", ingest_group="qw-ingest")
    assert len(asked) == 3
