"""Turn untrusted bytes into validated events, or into precise, per-item errors. Pure."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, TypeAdapter, ValidationError
from pydantic_core import CoreSchema, SchemaValidator
from pydantic_core import core_schema as cs

from shared import batches, codec
from shared.events import (
    Action,
    Decision,
    ErrorType,
    Outcome,
    SampleType,
    Verdict,
)
from shared.ids import KEY_ID_MAX, KEY_ID_PATTERN, OPAQUE_ID_MAX, OPAQUE_ID_PATTERN
from shared.rfc3339 import epoch

EventKind = Literal["decision", "verdict"]

_DECISION = TypeAdapter(Decision)
_VERDICT = TypeAdapter(Verdict)
_ANY = TypeAdapter(Annotated[Decision | Verdict, Field(discriminator="kind")])


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why one item was rejected; ``index`` is its position in the request or batch."""

    index: int
    errors: list[dict[str, Any]]

    def reason(self) -> str:
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<item>'}: {e['msg']}" for e in self.errors
        )


@dataclass(slots=True)
class ParseResult:
    events: list[Decision | Verdict] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)


# the discriminated union's refusals of an item's ``kind`` name no field (loc [])
_KIND_TAG = frozenset({"union_tag_not_found", "union_tag_invalid"})


def _format(exc: ValidationError) -> list[dict[str, Any]]:
    out = []
    for e in exc.errors(include_url=False, include_input=False):
        loc, msg = list(e["loc"]), e["msg"]
        if e["type"] in _KIND_TAG and not loc:  # (pydantic: "Unable to extract tag ...")
            loc = ["kind"]
            if e["type"] == "union_tag_not_found":
                msg = "Field required: 'decision' or 'verdict'"
        out.append({"loc": loc, "msg": msg, "type": e["type"]})
    return out


# Event times drive each queue's watermark: one event stamped in 2099 would close every
# open subgroup and expire the join's state. Times further ahead of the wall clock than a
# clock skew are refused.
MAX_FUTURE_S = 900.0
# And a time from long ago would open a subgroup there, the first point of the queue's
# chart: times before 2000 are refused always, and those older than QW_INGEST_MAX_AGE_DAYS
# (a backfill's history fits in the default) too.
EPOCH_FLOOR = batches.MIN_EVENT_EPOCH  # 2000-01-01T00:00:00Z, the scorer's bound too
MAX_AGE_DAYS = 400


def floor_for(max_age_days: int = MAX_AGE_DAYS, now: float | None = None) -> float:
    """The earliest event time accepted (epoch s) with ``max_age_days``."""
    return max(EPOCH_FLOOR, (time.time() if now is None else now) - max_age_days * 86400.0)


class TimestampRangeError(ValueError):
    """An event time outside what ingest takes: too far ahead, or too old."""

    def __init__(self, field: str, value: datetime, type_: str, detail: str) -> None:
        super().__init__(f"{field} {value.isoformat()} {detail}")
        self.field = field
        self.type = type_
        self.msg = f"{value.isoformat()} {detail}"  # (under loc [field]: not named twice)


def validate_item(
    obj: Any, kind: EventKind | None, floor: float | None = None
) -> Decision | Verdict:
    """Validate one decoded JSON value. ``kind=None`` reads the ``kind`` discriminator.

    Raises ``ValidationError``, or ``TimestampRangeError`` for a time more than
    ``MAX_FUTURE_S`` ahead of now or before ``floor`` (default: 2000-01-01; the services
    pass ``floor_for(QW_INGEST_MAX_AGE_DAYS)``).
    """
    event: Decision | Verdict
    if kind == "decision":
        event = _DECISION.validate_python(obj)
    elif kind == "verdict":
        event = _VERDICT.validate_python(obj)
    else:
        event = _ANY.validate_python(obj)
    field, when = (
        ("decided_at", event.decided_at)
        if isinstance(event, Decision)
        else ("reviewed_at", event.reviewed_at)
    )
    t = when.timestamp()
    if t > time.time() + MAX_FUTURE_S:
        detail = f"is in the future (more than {MAX_FUTURE_S:.0f} s ahead of the clock)"
        raise TimestampRangeError(field, when, "future_timestamp", detail)
    floor = EPOCH_FLOOR if floor is None else floor
    if t < floor:
        detail = (
            # (before 2000 no setting takes it: QW_INGEST_MAX_AGE_DAYS is named only where
            # raising it would help)
            "is before 2000-01-01" if floor <= EPOCH_FLOOR or t < EPOCH_FLOOR
            else f"is older than the oldest time taken, {datetime.fromtimestamp(floor, UTC).isoformat()} "
            "(QW_INGEST_MAX_AGE_DAYS)"
        )  # fmt: skip
        raise TimestampRangeError(field, when, "past_timestamp", detail)
    return event


def _out_of_range(exc: TimestampRangeError) -> list[dict[str, Any]]:
    return [{"loc": [exc.field], "msg": exc.msg, "type": exc.type}]


class BodyError(ValueError):
    """The request body as a whole could not be read (empty, or not JSON)."""


class TooManyItemsError(ValueError):
    """The request body holds more items than one request may (QW_INGEST_MAX_ITEMS)."""


def parse_body(body: bytes, content_type: str, max_items: int | None = None) -> list[Any]:
    """Decode a request body: a JSON array (any other JSON value is one item), or NDJSON
    (one per line). More than ``max_items`` items raises ``TooManyItemsError`` before any item is
    validated (NDJSON: before the line after the limit is decoded).

    NDJSON lines that are not JSON become ``_Undecodable`` items so that the caller reports
    them per line instead of rejecting the whole batch.
    """
    if "ndjson" in content_type or "jsonl" in content_type:
        # no line at all is no event, as ``[]`` is in JSON
        items: list[Any] = []
        for lineno, line in _lines(body):
            if not line.strip():
                continue
            if max_items is not None and len(items) >= max_items:
                raise TooManyItemsError(_too_many(max_items, ndjson_items(body)))
            try:
                items.append(codec.loads(line))
            except codec.JSONDecodeError as exc:
                items.append(Undecodable(f"line {lineno} is not JSON: {exc}"))
        return items
    if not body.strip():
        raise BodyError("empty body: send a JSON array of events or NDJSON, one event per line")
    if max_items is not None and len(body) > SCAN_ABOVE_BYTES and body.lstrip()[:1] == b"[":
        found = top_level_items(body)
        if found > max_items:
            raise TooManyItemsError(_too_many(max_items, found))
    try:
        obj = codec.loads(body)
    except codec.JSONDecodeError as exc:
        raise BodyError(f"body is not JSON: {exc}") from exc
    # any JSON value that is not an array is one item: ``42`` is refused like ``[42]`` (422,
    # the item named), and 400 stays for a body that is not JSON at all
    if isinstance(obj, list):
        if max_items is not None and len(obj) > max_items:
            raise TooManyItemsError(_too_many(max_items, len(obj)))
        return obj
    return [obj]


# A JSON body larger than this has its items counted before it is decoded: decoding costs
# memory and time per item, and 16 MiB of ``{"a":0},`` are 2 million dicts (~320 MB and
# 0.5 s of the event loop) to refuse at the end. Below it, the worst a body can cost to
# decode is ~20 MB and ~40 ms. The count costs ~12 ns a byte (about what decoding costs),
# so only bodies above this size pay it.
SCAN_ABOVE_BYTES = 1024 * 1024

# +1 for an opening bracket or brace, -1 for a closing one
_NESTING = np.zeros(256, dtype=np.int8)
_NESTING[[ord("["), ord("{")]] = 1
_NESTING[[ord("]"), ord("}")]] = -1


def top_level_items(body: bytes, block: int = 1024 * 1024) -> int:
    """The items of a JSON array, counted without decoding it: the commas outside strings
    at nesting depth 1, plus one. Exact for a valid JSON array of at least one item; for
    anything else a number that decoding (which comes next) makes moot. Escapes are
    removed first (``\\\\`` pairs, then ``\\"``, scanning left to right as JSON pairs
    them), so the quotes left open and close the strings. Counted in blocks of ``block``
    bytes, the string and nesting state carried from one to the next: its
    arrays take ~8 bytes a byte of the block, not of the body (and a body with escapes is
    copied once to remove them)."""
    if b"\\" in body:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    found, depth, inside = 1, 0, False
    for offset in range(0, len(body), block):
        a = np.frombuffer(body, np.uint8, min(block, len(body) - offset), offset)
        nesting = _NESTING[a]
        quotes = a == ord('"')
        in_string = None
        if inside or quotes.any():
            in_string = np.logical_xor.accumulate(quotes)
            if inside:
                np.logical_not(in_string, out=in_string)
            nesting[in_string] = 0
            inside = bool(in_string[-1])
        levels = np.cumsum(nesting, dtype=np.int32)
        levels += depth
        depth = int(levels[-1])
        separators = a == ord(",")
        separators &= levels == 1
        if in_string is not None:
            separators &= ~in_string
        found += int(np.count_nonzero(separators))
    return found


# what a byte is to an NDJSON line: 0 a blank (a line of blanks only is no item, as
# ``bytes.strip`` has it), 1 a line break (``\n`` or ``\r``, as ``_lines`` splits), 2 the rest
_LINE_BYTES = np.full(256, 2, dtype=np.uint8)
_LINE_BYTES[[ord(" "), ord("\t"), 0x0B, 0x0C]] = 0
_LINE_BYTES[[ord("\n"), ord("\r")]] = 1


def ndjson_items(body: bytes, block: int = 1024 * 1024) -> int:
    """The items of an NDJSON body, counted without decoding it: the lines with anything but
    blanks in them, the ones ``parse_body`` takes (``\\n``, ``\\r\\n`` and ``\\r`` end a line;
    blank lines and a last line break count for nothing). Counted in blocks of ``block``
    bytes, whether the last byte seen ended a line carried from one to the next: ~4 ns a
    byte (~65 ms for 16 MiB), and a few bytes of memory a byte of the block."""
    found, at_line_start = 0, True
    for offset in range(0, len(body), block):
        a = np.frombuffer(body, np.uint8, min(block, len(body) - offset), offset)
        kinds = _LINE_BYTES[a]
        kinds = kinds[kinds != 0]  # without the blanks, a line starts where a break ends
        if not kinds.size:
            continue
        content = kinds == 2
        found += int(np.count_nonzero(content[1:] & ~content[:-1]))
        found += int(at_line_start and content[0])
        at_line_start = not content[-1]
    return found


def _too_many(limit: int, found: int) -> str:
    return (
        f"body holds {found} items, more than the limit of {limit} per request "
        "(QW_INGEST_MAX_ITEMS): "
        "split it into smaller requests"
    )


_LINE = re.compile(rb"[^\r\n]+")


def _lines(body: bytes) -> Iterator[tuple[int, bytes]]:
    """The non-empty lines of ``body`` with their numbers as ``body.splitlines()`` counts
    them, one at a time (a body of millions of lines is not split whole to refuse it)."""
    lineno, pos = 1, 0
    for m in _LINE.finditer(body):
        gap = body[pos : m.start()]  # the line breaks since the last line: \n, \r or \r\n
        lineno += gap.count(b"\n") + gap.count(b"\r") - gap.count(b"\r\n")
        pos = m.end()
        yield lineno, m.group()


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Placeholder for an NDJSON line that was not JSON."""

    reason: str


def validate_items(
    items: list[Any], kind: EventKind | None, floor: float | None = None
) -> ParseResult:
    """Validate decoded items; ``Undecodable`` NDJSON lines become item errors too.
    ``floor``: the earliest event time taken (default 2000-01-01)."""
    floor = EPOCH_FLOOR if floor is None else floor
    result = ParseResult()
    for i, obj in enumerate(items):
        if isinstance(obj, Undecodable):
            result.errors.append(
                ItemError(i, [{"loc": [], "msg": obj.reason, "type": "json_invalid"}])
            )
            continue
        try:
            result.events.append(validate_item(obj, kind, floor))
        except ValidationError as exc:
            result.errors.append(ItemError(i, _format(exc)))
        except TimestampRangeError as exc:
            result.errors.append(ItemError(i, _out_of_range(exc)))
    return result


def validate_message(
    value: bytes | None, kind: EventKind, floor: float | None = None
) -> Decision | Verdict | ItemError:
    """Validate one raw Kafka message (one event per message)."""
    if value is None:
        return ItemError(0, [{"loc": [], "msg": "empty message (tombstone)", "type": "missing"}])
    try:
        obj = codec.loads(value)
    except codec.JSONDecodeError as exc:
        return ItemError(0, [{"loc": [], "msg": f"not JSON: {exc}", "type": "json_invalid"}])
    try:
        return validate_item(obj, kind, floor)
    except ValidationError as exc:
        return ItemError(0, _format(exc))
    except TimestampRangeError as exc:
        return ItemError(0, _out_of_range(exc))


# -- the raw topics' fast path ------------------------------------------------------------------
# A raw message is first validated straight from its bytes (``validate_json``) by a schema
# that runs wholly in pydantic-core: no Python validator, no model, no dump. It accepts a
# subset of what ``Decision`` and ``Verdict`` accept, and gives the same values for it:
# strict JSON types (an integer is a JSON integer, a string a string), the id grammars as
# whole-text patterns, no field it does not know. The event's time is taken as text and
# read by ``shared.rfc3339.epoch`` (compiled: pydantic's datetime and ``timestamp()`` were
# an eighth of ingest's time), which gives pydantic's value or None. Whatever it refuses, a
# malformed event or merely an unusual one (an unknown field, ``2.0`` for an integer), goes
# through ``validate_message``, which decides and says why: the refusals and the reasons
# in the dead-letter topic are exactly those of the models.
# (``extra_behavior="forbid"`` also keeps what the JSON parsers disagree on out of the fast
# path: NaN, Infinity and 1e400 pass pydantic's parser but not orjson's; in a known field
# the strict types refuse them.)


def _text(pattern: str, max_length: int) -> CoreSchema:
    return cs.str_schema(pattern=pattern, min_length=1, max_length=max_length, strict=True)


def _choice(values: list[str]) -> CoreSchema:
    return cs.literal_schema(list(values))


def _field(schema: CoreSchema, default: Any = ..., *, nullable: bool = False) -> Any:
    if nullable:
        schema = cs.nullable_schema(schema)
    if default is not ...:
        return cs.typed_dict_field(cs.with_default_schema(schema, default=default), required=False)
    return cs.typed_dict_field(schema)


def _fast(kind: EventKind, fields: dict[str, Any]) -> SchemaValidator:
    common = {
        "v": _field(cs.int_schema(strict=True, ge=1, le=1), 1),
        "kind": _field(_choice([kind]), kind),
        "queue_id": _field(_text(KEY_ID_PATTERN, KEY_ID_MAX)),
    }
    return SchemaValidator(cs.typed_dict_schema({**common, **fields}, extra_behavior="forbid"))


_OPAQUE = _field(_text(OPAQUE_ID_PATTERN, OPAQUE_ID_MAX))
_KEY = _field(_text(KEY_ID_PATTERN, KEY_ID_MAX))
_TIME = _field(cs.str_schema(strict=True))  # (epoch reads it, or refuses it)
_FAST: dict[EventKind, SchemaValidator] = {
    "decision": _fast(
        "decision",
        {
            "decision_id": _OPAQUE,
            "content_id": _OPAQUE,
            "moderator_id": _OPAQUE,
            "site_id": _KEY,
            "policy_id": _KEY,
            "action": _field(_choice([a.value for a in Action])),
            "decided_at": _TIME,
            "market": _field(cs.str_schema(max_length=32, strict=True), None, nullable=True),
            "severity": _field(cs.int_schema(strict=True, ge=1, le=4), 2),
            # absent or null: unknown
            "moderator_tenure_days": _field(
                cs.int_schema(strict=True, ge=0, le=36500), None, nullable=True
            ),
        },
    ),
    "verdict": _fast(
        "verdict",
        {
            "verdict_id": _OPAQUE,
            "decision_id": _OPAQUE,
            "auditor_id": _OPAQUE,
            "reviewed_at": _TIME,
            "outcome": _field(_choice([o.value for o in Outcome])),
            "error_type": _field(_choice([e.value for e in ErrorType]), None, nullable=True),
            "sample_type": _field(_choice([s.value for s in SampleType]), SampleType.RANDOM.value),
        },
    ),
}
TIME_FIELD: dict[EventKind, str] = {"decision": "decided_at", "verdict": "reviewed_at"}


def fast_item(
    value: bytes, kind: EventKind, horizon: float, floor: float = EPOCH_FLOOR
) -> tuple[str, dict[str, Any]] | None:
    """The message as its queue and a v2 batch item (``shared.batches``), or None when the
    fast path does not accept it; ``horizon`` and ``floor``: the latest and the earliest
    event time accepted (epoch s)."""
    try:
        d: dict[str, Any] = _FAST[kind].validate_json(value)
    except ValidationError:
        return None
    # Verdict's model validator: an error type exactly when the outcome is incorrect
    if kind == "verdict" and (d["outcome"] == "incorrect") is (d["error_type"] is None):
        return None
    field = TIME_FIELD[kind]
    t = epoch(d[field])
    if t is None or t > horizon or t < floor:
        return None
    d[field] = t
    del d["v"], d["kind"]
    return d.pop("queue_id"), d


def validate_raw(
    value: bytes | None, kind: EventKind, horizon: float | None = None, floor: float | None = None
) -> tuple[str, dict[str, Any]] | ItemError:
    """One raw Kafka message as (queue, v2 batch item), or why it is refused: the fast path
    first, ``validate_message`` for what it does not accept. ``horizon`` (default: now plus
    ``MAX_FUTURE_S``) may be computed once for a whole poll: it is never later than the one
    ``validate_message`` then uses. ``floor``: the earliest event time (default 2000-01-01)."""
    floor = EPOCH_FLOOR if floor is None else floor
    if value is not None:
        horizon = time.time() + MAX_FUTURE_S if horizon is None else horizon
        fast = fast_item(value, kind, horizon, floor)
        if fast is not None:
            return fast
    result = validate_message(value, kind, floor)
    if isinstance(result, ItemError):
        return result
    return result.queue_id, batches.item(result)
