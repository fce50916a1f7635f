from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.validation import (
    EPOCH_FLOOR,
    SCAN_ABOVE_BYTES,
    BodyError,
    EventKind,
    ItemError,
    TooManyItemsError,
    Undecodable,
    fast_item,
    floor_for,
    ndjson_items,
    parse_body,
    top_level_items,
    validate_items,
    validate_message,
    validate_raw,
)
from shared import codec
from shared.events import Decision, Verdict
from tests.factories import decision, verdict


def test_valid_decision_and_verdict_pass() -> None:
    result = validate_items([decision(1), verdict(1)], None)
    assert result.errors == []
    assert isinstance(result.events[0], Decision)
    assert isinstance(result.events[1], Verdict)


def test_an_optional_integer_may_be_null_and_a_required_one_may_not() -> None:
    """The published schema allows ``"moderator_tenure_days": null`` (schemathesis sends it);
    ``severity`` has no null in its schema and is refused."""
    ok = validate_items([decision(1, moderator_tenure_days=None)], None)
    assert ok.errors == []
    assert ok.events[0].moderator_tenure_days is None  # type: ignore[union-attr]
    bad = validate_items([decision(1, severity=None), decision(2, moderator_tenure_days="3")], None)
    assert [(e.index, e.reason().split(":")[0]) for e in bad.errors] == [
        (0, "decision.severity"), (1, "decision.moderator_tenure_days"),
    ]  # fmt: skip


def test_each_bad_item_is_named_with_its_index_and_field() -> None:
    items = [
        decision(1),
        decision(2, decided_at="2026-11-02T10:00:00"),  # naive time
        verdict(3, correct=False, error_type=None),  # incorrect without error type
        {"kind": "verdict"},
        decision(5, action="delete"),
    ]
    result = validate_items(items, None)
    assert [e.index for e in result.errors] == [1, 2, 3, 4]
    assert len(result.events) == 1
    reasons = {e.index: e.reason() for e in result.errors}
    assert "time zone" in reasons[1]
    assert "error_type" in reasons[2]
    assert "verdict_id" in reasons[3]
    assert "action" in reasons[4]


@pytest.mark.parametrize(
    ("event", "says"),
    [
        (verdict(1, correct=False, error_type=None), "an incorrect verdict needs an error_type"),
        (verdict(1, error_type="technical"), "a correct verdict cannot have an error_type"),
    ],
)
def test_an_error_type_that_does_not_fit_the_outcome_is_refused_at_error_type(
    event: dict[str, object], says: str
) -> None:
    """The refusal names the field, on every path: a typed endpoint, /v1/events (the
    kind first) and a raw message (its dead letter's reason)."""
    for kind, loc in (("verdict", ["error_type"]), (None, ["verdict", "error_type"])):
        (err,) = validate_items([event], kind).errors  # type: ignore[arg-type]
        assert [e["loc"] for e in err.errors] == [loc]
        assert says in err.errors[0]["msg"]
    raw = validate_raw(codec.dumps(event), "verdict")
    assert isinstance(raw, ItemError)
    assert raw.reason().startswith("error_type: ")
    assert says in raw.reason()


def test_a_refused_outcome_is_named_once_not_again_at_error_type() -> None:
    (err,) = validate_items([verdict(1, outcome="maybe", error_type=None)], "verdict").errors
    assert [e["loc"] for e in err.errors] == [["outcome"]]


def test_kind_is_enforced_per_endpoint() -> None:
    result = validate_items([verdict(1)], "decision")
    assert len(result.errors) == 1


def test_an_item_without_a_kind_or_with_another_is_refused_at_kind() -> None:
    """POST /v1/events reads each item's ``kind``: pydantic's refusal of the discriminated
    union named no field (loc []) and, for a missing kind, said 'Unable to extract tag using
    discriminator 'kind'' (a new user's trial)."""
    bare = decision(1, "q")
    bare.pop("kind", None)
    result = validate_items([bare, {**decision(2, "q"), "kind": "report"}], None)
    assert [(e.index, e.errors) for e in result.errors] == [
        (0, [{"loc": ["kind"], "msg": "Field required: 'decision' or 'verdict'",
              "type": "union_tag_not_found"}]),
        (1, [{"loc": ["kind"], "msg": "Input tag 'report' found using 'kind' does not match "
              "any of the expected tags: 'decision', 'verdict'", "type": "union_tag_invalid"}]),
    ]  # fmt: skip


def test_ndjson_bad_line_is_reported_per_line() -> None:
    body = codec.dumps(decision(1)) + b"\n{oops\n" + codec.dumps(decision(2)) + b"\n"
    items = parse_body(body, "application/x-ndjson")
    result = validate_items(items, "decision")
    assert len(result.events) == 2
    assert result.errors[0].index == 1
    assert "line 2 is not JSON" in result.errors[0].reason()


@pytest.mark.parametrize("body", [b"", b"   ", b"not json", b"[1"])
def test_unreadable_body_is_a_body_error(body: bytes) -> None:
    with pytest.raises(BodyError):
        parse_body(body, "application/json")


@pytest.mark.parametrize(("body", "items"), [(b"42", [42]), (b"[42]", [42]), (b'"x"', ["x"])])
def test_a_json_value_that_is_not_an_array_is_one_item(body: bytes, items: list[object]) -> None:
    # ``42`` and ``[42]`` are refused alike: one item that is not an event (422, named)
    assert parse_body(body, "application/json") == items
    assert validate_items(items, "decision").errors[0].index == 0


def test_single_object_body_is_one_item() -> None:
    assert len(parse_body(codec.dumps(decision(1)), "application/json")) == 1


def test_raw_message_errors() -> None:
    assert isinstance(validate_message(codec.dumps(decision(1)), "decision"), Decision)
    bad = validate_message(b"{", "decision")
    assert not isinstance(bad, Decision | Verdict)
    assert "not JSON" in bad.reason()
    tomb = validate_message(None, "verdict")
    assert not isinstance(tomb, Decision | Verdict)
    assert "tombstone" in tomb.reason()


def test_unknown_schema_version_is_rejected() -> None:
    result = validate_items([decision(1, v=2)], "decision")
    assert result.errors
    assert "v" in result.errors[0].reason()


EVENTS_DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


@pytest.mark.parametrize(("kind", "model", "build"), [
    ("decision", Decision, decision), ("verdict", Verdict, verdict),
])  # fmt: skip
def test_the_schema_version_is_optional_and_means_1_as_documented(
    kind: EventKind, model: type[Decision | Verdict], build: Callable[..., dict[str, Any]]
) -> None:
    """docs/events.md and the model agree, for decisions and verdicts alike: ``v`` may be
    left out (then 1) on every path; any other value is refused, naming ``v``."""
    text = " ".join(EVENTS_DOC.read_text().split())
    assert "`v` (schema version) is optional in a decision and in a verdict alike" in text
    schema = model.model_json_schema()
    assert "v" not in schema["required"]
    assert schema["properties"]["v"]["default"] == 1
    event = build(1)
    assert "v" not in event
    (http,) = validate_items([event], kind).events
    assert http.v == 1
    raw = codec.dumps(event)
    assert fast_item(raw, kind, time.time() + 900) is not None  # the fast path takes it too
    assert validate_raw(raw, kind) == validate_raw(codec.dumps({**event, "v": 1}), kind)
    for bad in (2, 0, None, "1", True):
        refused = validate_raw(codec.dumps({**event, "v": bad}), kind)
        assert isinstance(refused, ItemError)
        assert refused.reason().startswith("v: "), (bad, refused.reason())


def test_far_future_timestamps_are_refused() -> None:
    result = validate_items(
        [
            decision(1, decided_at="2099-01-01T00:00:00Z"),
            verdict(2, reviewed_at="2099-01-01T00:00:00Z"),
        ],
        None,
    )
    assert [e.index for e in result.errors] == [0, 1]
    assert result.errors[0].errors[0]["loc"] == ["decided_at"]
    assert "in the future" in result.errors[1].reason()
    # the field is named once, by its loc: "reviewed_at: 2099-01-01T00:00:00+00:00 is ..."
    assert result.errors[1].reason().startswith("reviewed_at: 2099-01-01T00:00:00+00:00 is in")
    bad = validate_message(codec.dumps(decision(1, decided_at="2099-01-01T00:00:00Z")), "decision")
    assert not isinstance(bad, Decision | Verdict)
    assert bad.errors[0]["type"] == "future_timestamp"


def test_times_from_long_ago_are_refused() -> None:
    """A time before 2000, or older than QW_INGEST_MAX_AGE_DAYS, would open a subgroup
    there (the first point of the queue's chart): refused as past_timestamp."""
    now = datetime(2026, 12, 2, tzinfo=UTC).timestamp()
    floor = floor_for(400, now)
    assert floor == now - 400 * 86400
    assert floor_for(3650, now=datetime(2005, 1, 1, tzinfo=UTC).timestamp()) == EPOCH_FLOOR
    items = [
        decision(1, decided_at="0001-01-01T00:00:00Z"),
        decision(2, decided_at="1969-12-31T23:00:00Z"),
        verdict(3, reviewed_at="2025-10-01T00:00:00Z"),  # 427 days before now
        decision(4, decided_at="2025-11-01T00:00:00Z"),  # 396 days: taken
    ]
    result = validate_items(items, None, floor)
    assert [e.index for e in result.errors] == [0, 1, 2]
    assert {e.errors[0]["type"] for e in result.errors} == {"past_timestamp"}
    assert result.errors[0].errors[0]["loc"] == ["decided_at"]
    assert "QW_INGEST_MAX_AGE_DAYS" in result.errors[2].reason()
    assert [e.decision_id for e in result.events if isinstance(e, Decision)] == ["d4"]
    # with a floor at 2000-01-01 (a long history allowed), 1969 is still refused
    old = validate_items([decision(2, decided_at="1969-12-31T23:00:00Z")], None, EPOCH_FLOOR)
    assert "before 2000-01-01" in old.errors[0].reason()
    assert old.errors[0].reason() == "decided_at: 1969-12-31T23:00:00+00:00 is before 2000-01-01"
    # and with the default floor (400 days back) it says so too: raising the age limit
    # would not take it, so the setting is not named
    for too_old in ("1999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"):
        reason = validate_items([decision(2, decided_at=too_old)], None, floor).errors[0].reason()
        assert "before 2000-01-01" in reason
        assert "QW_INGEST_MAX_AGE_DAYS" not in reason
    # the raw topics' path says the same, fast path or not
    raw = validate_raw(codec.dumps(items[0]), "decision", floor=floor)
    assert isinstance(raw, ItemError)
    assert raw.errors[0]["type"] == "past_timestamp"
    assert not isinstance(validate_raw(codec.dumps(items[3]), "decision", floor=floor), ItemError)


def test_ndjson_lines_are_numbered_as_splitlines_numbers_them() -> None:
    body = b'{"a": 1}\n\nnot json\r\n  \r{"b": 2}\rbad\n'
    items = parse_body(body, "application/x-ndjson")
    assert [i.reason.split(" is ")[0] if isinstance(i, Undecodable) else i for i in items] == [
        {"a": 1}, "line 3", {"b": 2}, "line 6",
    ]  # fmt: skip
    assert len(body.splitlines()) == 6


_NDJSON_BYTES = b'a{}" \t\x0b\x0c\r\n'


@settings(max_examples=400, deadline=None)
@given(
    body=st.lists(st.sampled_from(_NDJSON_BYTES), max_size=40).map(bytes),
    block=st.sampled_from([1, 2, 3, 7, 1 << 20]),
)
def test_ndjson_items_counts_the_lines_that_parse_body_takes(body: bytes, block: int) -> None:
    """Blank lines, lines of blanks, \\r\\n and \\r, a block ending between \\r and \\n."""
    assert ndjson_items(body, block) == len(parse_body(body, "application/x-ndjson"))


def test_ndjson_of_too_many_items_is_refused_with_their_number() -> None:
    body = b'{"a": 1}\n\n  \r\n' * 99_999 + b'{"a": 1}'
    with pytest.raises(TooManyItemsError, match="holds 100000 items, more than the limit of 10 "):
        parse_body(body, "application/x-ndjson", max_items=10)


# any JSON value, with strings full of what the count must not be fooled by
_TRICKY = st.text(alphabet='\\"[]{},: ab\u00e9\n', max_size=12)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TRICKY, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(
    items=st.lists(_JSON, min_size=1, max_size=8),
    indent=st.booleans(),
    block=st.sampled_from([1, 2, 3, 7, 64, 1 << 20]),
)
def test_top_level_items_counts_a_json_array_without_decoding_it(
    items: list[object], indent: bool, block: int
) -> None:
    """Exact in any blocks: a block may end inside a string, or inside an item."""
    body = json.dumps(items, indent=2 if indent else None, ensure_ascii=False).encode()
    assert top_level_items(body, block) == len(items)


def test_a_large_body_of_too_many_items_is_refused_before_it_is_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(_: bytes) -> object:
        raise AssertionError("decoded")

    body = b"[" + b",".join([b'{"a":"x,\\"[{"}'] * 100_000) + b"]"
    assert len(body) > SCAN_ABOVE_BYTES
    monkeypatch.setattr(codec, "loads", never)
    with pytest.raises(TooManyItemsError, match="holds 100000 items, more than the limit of 10"):
        parse_body(body, "application/json", max_items=10)
