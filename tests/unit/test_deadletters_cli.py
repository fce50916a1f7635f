"""``qwatch deadletters``: the pure parts (time grammar, record decoding, replay targets)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
import typer

from services.deadletters_cli import Filter, decode, parse_since, target_of
from shared import codec, deadletter
from shared.topics import Topics

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
TOPICS = Topics()


def test_since_grammar() -> None:
    assert parse_since(None, NOW) is None
    assert parse_since("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_since("6h", NOW) == NOW - timedelta(hours=6)
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("2026-12-01T08:00:00+01:00", NOW) == datetime(2026, 12, 1, 7, tzinfo=UTC)
    for bad in ("0h", "5w", "yesterday", "2026-12-01T08:00:00", "9999999d", ""):
        with pytest.raises(typer.BadParameter):
            parse_since(bad, NOW)


def _letter(source: str | None, value: bytes | None, stage: str = "ingest") -> bytes:
    return deadletter.record(
        stage=stage, reason="queue 'x' is not admitted", value=value, source_topic=source,
        key=b"spam-xx", errors=[{"type": "queue_not_admitted", "loc": ["queue_id"], "msg": "m"}],
    )  # fmt: skip


def test_a_record_decodes_with_its_exact_bytes() -> None:
    original = b'{"kind":"decision","decision_id":"d1"}\xff'
    letter = decode(7, _letter(TOPICS.decisions_raw, original))
    assert letter is not None
    assert (letter.offset, letter.stage, letter.key, letter.value) == (
        7, "ingest", "spam-xx", original
    )  # fmt: skip
    assert letter.error_type == "queue_not_admitted"
    assert base64.b64decode(letter.as_json()["value_b64"]) == original


@pytest.mark.parametrize(
    "raw", [None, b"", b"not json", b"[]", b'{"v": 2}', b'{"v": 1, "stage": 3}',
            b'{"v":1,"stage":"ingest","reason":"r","dead_lettered_at":"t","value_b64":"@@"}'],
)  # fmt: skip
def test_anything_else_on_the_topic_is_skipped(raw: bytes | None) -> None:
    assert decode(0, raw) is None


def test_replay_targets() -> None:
    raw = decode(0, _letter(TOPICS.verdicts_raw, b"{}"))
    http_decision = decode(1, _letter(None, codec.dumps({"kind": "decision", "a": 1})))
    http_verdict = decode(2, _letter(None, codec.dumps({"kind": "verdict"})))
    good = {"v": 2, "queue_id": "spam-en", "decisions": [], "verdicts": []}
    batch = decode(3, _letter(TOPICS.events, codec.dumps(good), stage="scorer"))
    item = decode(7, _letter(TOPICS.events, codec.dumps({"decision_id": "d1"}), stage="scorer"))
    foreign = decode(4, _letter("someone.elses.topic", b"{}"))
    no_bytes = decode(5, _letter(TOPICS.decisions_raw, None))
    no_kind = decode(6, _letter(None, b'{"decision_id": "d1"}'))
    assert [target_of(x, TOPICS) for x in (raw, http_decision, http_verdict, batch)] == [  # type: ignore[arg-type]
        TOPICS.verdicts_raw, TOPICS.decisions_raw, TOPICS.verdicts_raw, TOPICS.events,
    ]  # fmt: skip
    assert [target_of(x, TOPICS) for x in (foreign, no_bytes, no_kind, item)] == [None] * 4  # type: ignore[arg-type]


def test_filters() -> None:
    letter = decode(0, _letter(TOPICS.decisions_raw, b"{}"))
    assert letter is not None
    assert Filter()(letter)
    assert Filter(stage="ingest", reason="NOT ADMITTED", queue="spam-xx")(letter)
    assert not Filter(stage="scorer")(letter)
    assert not Filter(reason="schema")(letter)
    assert not Filter(queue="spam-en")(letter)
