"""Turn untrusted bytes into validated events, or into precise, per-item errors. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
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


def validate_item(obj: Any, kind: EventKind | None) -> Decision | Verdict:
    """Validate one decoded JSON value. ``kind=None`` reads the ``kind`` discriminator.

    Raises ``ValidationError``.
    """
    if kind == "decision":
        return _DECISION.validate_python(obj)
    if kind == "verdict":
        return _VERDICT.validate_python(obj)
    return _ANY.validate_python(obj)


class BodyError(ValueError):
    """The request body as a whole could not be read (not JSON, not NDJSON, empty)."""


def parse_body(body: bytes, content_type: str) -> list[Any]:
    """Decode a request body: a JSON array (or a single object), or NDJSON (one per line).

    NDJSON lines that are not JSON become ``_Undecodable`` items so that the caller reports
    them per line instead of rejecting the whole batch.
    """
    if not body.strip():
        raise BodyError("empty body: send a JSON array of events or NDJSON, one event per line")
    if "ndjson" in content_type or "jsonl" in content_type:
        items: list[Any] = []
        for lineno, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(codec.loads(line))
            except codec.JSONDecodeError as exc:
                items.append(Undecodable(f"line {lineno} is not JSON: {exc}"))
        return items
    try:
        obj = codec.loads(body)
    except codec.JSONDecodeError as exc:
        raise BodyError(f"body is not JSON: {exc}") from exc
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict):
        return [obj]
    raise BodyError("body must be a JSON array of event objects, an object, or NDJSON")


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
