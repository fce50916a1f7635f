"""``qwatch backfill`` against the real broker: an export loaded into the raw topics,
interrupted with Ctrl-C (SIGINT) half-way, resumed with the same command, every valid event
in its topic exactly once and every invalid row in the rejects file with its reason; the
rows of a queue ingest has not admitted (read from the admitted-queues topic, as ingest
reads it) rejected with ingest's reason, and sent once it is admitted."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from services import backfill
from shared import codec
from shared.admission import admit_all
from shared.analysis.load import MAX_LINE_BYTES
from shared.kafka import DEFAULT_MAX_MESSAGE_BYTES, group_members, make_consumer
from shared.settings import REPO_ROOT, KafkaSettings
from tests.factories import decision, verdict
from tests.integration.kafka_helpers import read_all

ROWS = 6000  # at --rate 1000: six seconds of load, interrupted after the first checkpoint


def _qwatch(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "backfill", *args], env=env, cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


async def test_an_interrupted_backfill_resumes_and_sends_each_event_once(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    export = tmp_path / "history.ndjson"
    bad = {7, 1500, 2999}  # rows (1-based) that are not valid events
    elsewhere = {20, 3001}  # rows of a queue not admitted yet
    with export.open("w") as f:
        for row in range(1, ROWS + 1):
            i = row // 2
            if row in elsewhere:
                f.write(json.dumps(decision(row, "spam-es")) + "\n")
            elif row in bad:
                f.write(json.dumps({"kind": "verdict", "verdict_id": f"bad{row}"}) + "\n")
            elif row % 2:
                f.write(json.dumps(verdict(i, "hate-en")) + "\n")
            else:
                f.write(json.dumps(decision(i, "hate-en", moderator_tenure_days=i % 400)) + "\n")
    state = tmp_path / "state"
    env = {**os.environ, **kafka_settings.as_env()}
    await admit_all(kafka_settings, ["hate-en"], by="test")  # as ingest takes known queues
    args = [str(export), "--rate", "1000", "--state-dir", str(state)]

    first = _qwatch(args, env)
    deadline = time.monotonic() + 60
    while not list(state.glob("history.ndjson.*.json")):  # the first checkpoint: loading
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        await asyncio.sleep(0.1)
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 130, f"{out}\n{err}"
    assert "run the same command to resume" in err, err
    # no ingest reads the raw topics here: the load says what a backlog read later risks
    assert f"its consumer group {kafka_settings.topic_prefix}qw-ingest has no member" in err, err
    (cp_file,) = state.glob("history.ndjson.*.json")
    stopped = json.loads(cp_file.read_text())
    assert 0 < stopped["rows"] < ROWS, stopped
    assert not stopped["done"]

    second = _qwatch([*args[:1], "--state-dir", str(state)], env)  # full speed now
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, f"{out}\n{err}"
    assert "loaded" in err, err
    done = json.loads(cp_file.read_text())
    assert (done["rows"], done["rejected"], done["done"]) == (ROWS, len(bad | elsewhere), True)

    t = kafka_settings.topics
    decisions = await read_all(kafka_settings.bootstrap, t.decisions_raw)
    verdicts = await read_all(kafka_settings.bootstrap, t.verdicts_raw)
    ids = Counter(json.loads(r.value)["decision_id"] for r in decisions)
    vids = Counter(json.loads(r.value)["verdict_id"] for r in verdicts)
    assert len(ids) + len(vids) == ROWS - len(bad | elsewhere)
    assert set(ids.values()) == {1}, "a decision was sent twice"
    assert set(vids.values()) == {1}, "a verdict was sent twice"
    assert {r.key for r in decisions + verdicts} == {b"hate-en"}  # keyed by queue
    rejects = [
        json.loads(x) for x in cp_file.with_suffix(".rejects.ndjson").read_text().splitlines()
    ]
    assert [r["row"] for r in rejects] == sorted(bad | elsewhere)
    assert all(r["reason"] for r in rejects)
    for r in rejects:
        not_admitted = r["reason"].startswith("queue 'spam-es' is not admitted")
        assert not_admitted is (r["row"] in elsewhere), r

    # a finished file is not loaded again; --restart would
    third = _qwatch([*args[:1], "--state-dir", str(state)], env)
    out, err = third.communicate(timeout=60)
    assert third.returncode == 0
    assert len(await read_all(kafka_settings.bootstrap, t.decisions_raw)) == len(decisions)

    # the queue admitted now (as its rejects say), the load again with --restart sends its rows
    await admit_all(kafka_settings, ["spam-es"], by="test")
    fourth = _qwatch([*args[:1], "--restart", "--state-dir", str(state)], env)
    out, err = fourth.communicate(timeout=120)
    assert fourth.returncode == 0, f"{out}\n{err}"
    again = await read_all(kafka_settings.bootstrap, t.decisions_raw)
    assert Counter(r.key for r in again)[b"spam-es"] == len(elsewhere)


def _with_notes(event: dict[str, object], size: int) -> dict[str, object]:
    """``event`` with a ``notes`` column that makes its message (as backfill sends it)
    ``size`` bytes."""
    base = len(codec.dumps({**event, "notes": ""}))
    return {**event, "notes": "x" * (size - base)}


async def test_an_event_too_large_for_its_raw_topic_is_a_rejected_row(
    kafka_settings: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export row at the 1 MiB line bound made a message the raw topic refuses
    (max.message.bytes, 1,048,588 by default): the load ended in a MessageSizeTooLargeError
    traceback, without saving the rows acknowledged since its last checkpoint. It is a
    rejected row now, whose reason names the sizes and the largest column; a message at the
    limit is sent, and one the broker refuses anyway (a limit not as described) is a
    rejected row too."""
    t = kafka_settings.topics
    await admit_all(kafka_settings, ["hate-en"], by="test")
    room = DEFAULT_MAX_MESSAGE_BYTES - backfill.RECORD_OVERHEAD - len(b"hate-en")
    export = tmp_path / "notes.ndjson"
    rows = [{**decision(i, "hate-en"), "kind": "decision"} for i in range(1, 7)]
    rows[1] = _with_notes(rows[1], room)  # the largest message the topic is said to take
    rows[3] = _with_notes(rows[3], room + 1)
    rows[4] = _with_notes(rows[4], MAX_LINE_BYTES)  # the longest line backfill reads
    export.write_bytes(b"".join(codec.dumps(r) + b"\n" for r in rows))

    cp = await backfill.load_file(
        export, kafka_settings, checkpoint_path=tmp_path / "cp.json",
        rejects_path=tmp_path / "r.ndjson",
    )  # fmt: skip
    assert (cp.done, cp.rows, cp.sent, cp.rejected) == (True, 6, 4, 2)
    rejects = [json.loads(x) for x in (tmp_path / "r.ndjson").read_text().splitlines()]
    assert rejects[0] == {
        "row": 4,
        "reason": f"the event is {room + 1:,} bytes of JSON and {t.decisions_raw} takes at "
        f"most {room:,} (its max.message.bytes is 1,048,588); its largest column, 'notes', "
        f"holds {len(codec.dumps(rows[3]['notes'])):,}: leave that column out of the export, "
        "or raise the topic's max.message.bytes",
    }
    assert rejects[1]["row"] == 5
    sent = await read_all(kafka_settings.bootstrap, t.decisions_raw)
    assert sorted(json.loads(r.value)["decision_id"] for r in sent) == sorted(
        rows[i]["decision_id"] for i in (0, 1, 2, 5)
    )
    assert max(len(r.value) for r in sent) == room

    # the broker's own refusal (a limit not as described): the load stops before that row,
    # in one line, and its checkpoint and rejects say the rows before it
    async def generous(kafka: KafkaSettings, topics: list[str]) -> dict[str, int]:
        return dict.fromkeys(topics, 8 * DEFAULT_MAX_MESSAGE_BYTES)

    monkeypatch.setattr("shared.kafka.message_limits", generous)
    rows.insert(2, {"kind": "decision", "decision_id": "not valid"})  # row 3: a reject
    export.write_bytes(b"".join(codec.dumps(r) + b"\n" for r in rows))
    before = len(await read_all(kafka_settings.bootstrap, t.decisions_raw))
    with pytest.raises(backfill.BackfillError) as refused:
        await backfill.load_file(
            export, kafka_settings, checkpoint_path=tmp_path / "cp2.json",
            rejects_path=tmp_path / "r2.ndjson",
        )  # fmt: skip
    assert str(refused.value).startswith(
        f"notes.ndjson: row 6: the broker refused its event ({MAX_LINE_BYTES:,} bytes of JSON) "
        f"as too large for {t.decisions_raw}, whose max.message.bytes was said to be 8,388,704; "
        "the load stopped after row 5: "
    ), refused.value
    saved = json.loads((tmp_path / "cp2.json").read_text())
    assert (saved["done"], saved["rows"], saved["sent"], saved["rejected"]) == (False, 5, 4, 1)
    assert [json.loads(x)["row"] for x in (tmp_path / "r2.ndjson").read_text().splitlines()] == [3]
    ids = [
        json.loads(r.value)["decision_id"]
        for r in await read_all(kafka_settings.bootstrap, t.decisions_raw)
    ][before:]
    assert ids[:4] == [rows[i]["decision_id"] for i in (0, 1, 3, 4)]


async def test_ctrl_c_stops_the_read_through_of_a_large_gzipped_export(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """A gzipped export is read through once before its load begins (its rows counted, every
    line checked): gigabytes take a minute or more, and Ctrl-C (SIGINT) was not taken until
    the read-through ended. Now the read-through says so after two seconds, and SIGINT
    stops it at once: exit status 130, nothing sent, the same command starts it again."""
    await admit_all(kafka_settings, ["hate-en"], by="test")
    block = b"".join(
        codec.dumps({**decision(i, "hate-en"), "kind": "decision"}) + b"\n" for i in range(50_000)
    )
    member = gzip.compress(block * 4, compresslevel=1)  # ~50 MB of lines, a few hundred kB
    export = tmp_path / "years.ndjson.gz"
    export.write_bytes(member * 100)  # gzip members one after the other: ~5 GB of lines
    env = {**os.environ, **kafka_settings.as_env()}
    proc = _qwatch([str(export), "--state-dir", str(tmp_path / "state")], env)
    assert proc.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    deadline = time.monotonic() + 60
    while not any("reading it through" in line for line in lines):
        assert proc.poll() is None, lines
        assert time.monotonic() < deadline, f"no line about the read-through within 60 s: {lines}"
        await asyncio.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    asked = time.monotonic()
    proc.wait(timeout=60)
    took = time.monotonic() - asked
    reader.join(timeout=10)
    assert proc.returncode == 130, lines
    assert took < 10, f"{took:.1f} s after SIGINT"
    assert lines[-1].startswith(
        "years.ndjson.gz: stopped after 0 rows (0 sent, 0 rejected, all acknowledged); run the "
        "same command to resume"
    ), lines
    assert await read_all(kafka_settings.bootstrap, kafka_settings.topics.decisions_raw) == []


async def test_the_members_of_ingests_group_are_counted(kafka_settings: KafkaSettings) -> None:
    """``group_members`` (which the backfill asks before a load, to say when no ingest reads
    the raw topics): 0 for a group nobody joined, 1 while a consumer is in it, 0 after it
    left; None for a broker it cannot reach."""
    topic = kafka_settings.topics.decisions_raw
    assert await group_members(kafka_settings, "qw-ingest") == 0
    consumer = make_consumer(kafka_settings, "qw-ingest", topic)
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment():  # joined once it is assigned its partitions
            assert time.monotonic() < deadline, "the consumer joined no group within 30 s"
            await consumer.getmany(timeout_ms=200)
        assert await group_members(kafka_settings, "qw-ingest") == 1
    finally:
        await consumer.stop()
    assert await group_members(kafka_settings, "qw-ingest") == 0  # (it left the group)
    gone = kafka_settings.model_copy(update={"bootstrap": "127.0.0.1:9"})
    assert await group_members(gone, "qw-ingest", timeout=3.0) is None
