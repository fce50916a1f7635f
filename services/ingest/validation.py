"""Turn untrusted bytes into validated events, or into precise, per-item errors. Pure."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from shared import codec
from shared.events import Decision, Verdict

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


def _format(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]


# Event times drive each queue's watermark: one event stamped in 2099 would close every
# open subgroup and expire the join's state. Times further ahead of the wall clock than a
# clock skew are refused.
MAX_FUTURE_S = 900.0


class FutureTimestampError(ValueError):
    def __init__(self, field: str, value: datetime) -> None:
        super().__init__(f"{field} {value.isoformat()} is in the future")
        self.field = field


def validate_item(obj: Any, kind: EventKind | None) -> Decision | Verdict:
    """Validate one decoded JSON value. ``kind=None`` reads the ``kind`` discriminator.

    Raises ``ValidationError``, or ``FutureTimestampError`` for a time more than
    ``MAX_FUTURE_S`` ahead of now.
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
    if when.timestamp() > time.time() + MAX_FUTURE_S:
        raise FutureTimestampError(field, when)
    return event


def _future(exc: FutureTimestampError) -> list[dict[str, Any]]:
    return [
        {
            "loc": [exc.field],
            "msg": f"{exc} (more than {MAX_FUTURE_S:.0f} s ahead of the clock)",
            "type": "future_timestamp",
        }
    ]


class BodyError(ValueError):
    """The request body as a whole could not be read (empty, or not JSON)."""


def parse_body(body: bytes, content_type: str) -> list[Any]:
    """Decode a request body: a JSON array (any other JSON value is one item), or NDJSON
    (one per line).

    NDJSON lines that are not JSON become ``_Undecodable`` items so that the caller reports
    them per line instead of rejecting the whole batch.
    """
    if "ndjson" in content_type or "jsonl" in content_type:
        # no line at all is no event, as ``[]`` is in JSON
        items: list[Any] = []
        for lineno, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(codec.loads(line))
            except codec.JSONDecodeError as exc:
                items.append(Undecodable(f"line {lineno} is not JSON: {exc}"))
        return items
    if not body.strip():
        raise BodyError("empty body: send a JSON array of events or NDJSON, one event per line")
    try:
        obj = codec.loads(body)
    except codec.JSONDecodeError as exc:
        raise BodyError(f"body is not JSON: {exc}") from exc
    # any JSON value that is not an array is one item: ``42`` is refused like ``[42]`` (422,
    # the item named), and 400 stays for a body that is not JSON at all
    return obj if isinstance(obj, list) else [obj]


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Placeholder for an NDJSON line that was not JSON."""

    reason: str


def validate_items(items: list[Any], kind: EventKind | None) -> ParseResult:
    """Validate decoded items; ``Undecodable`` NDJSON lines become item errors too."""
    result = ParseResult()
    for i, obj in enumerate(items):
        if isinstance(obj, Undecodable):
            result.errors.append(
                ItemError(i, [{"loc": [], "msg": obj.reason, "type": "json_invalid"}])
            )
            continue
        try:
            result.events.append(validate_item(obj, kind))
        except ValidationError as exc:
            result.errors.append(ItemError(i, _format(exc)))
        except FutureTimestampError as exc:
            result.errors.append(ItemError(i, _future(exc)))
    return result


def validate_message(value: bytes | None, kind: EventKind) -> Decision | Verdict | ItemError:
    """Validate one raw Kafka message (one event per message)."""
    if value is None:
        return ItemError(0, [{"loc": [], "msg": "empty message (tombstone)", "type": "missing"}])
    try:
        obj = codec.loads(value)
    except codec.JSONDecodeError as exc:
        return ItemError(0, [{"loc": [], "msg": f"not JSON: {exc}", "type": "json_invalid"}])
    try:
        return validate_item(obj, kind)
    except ValidationError as exc:
        return ItemError(0, _format(exc))
    except FutureTimestampError as exc:
        return ItemError(0, _future(exc))
