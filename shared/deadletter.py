"""The dead-letter record: why a message was rejected, where it came from, its exact bytes.

Every stage that rejects input builds its record here, so an operator reading
``qw.deadletter.v1`` sees one shape, and can replay ``value_b64`` after a fix.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from shared import codec


def record(
    *,
    stage: str,
    reason: str,
    value: bytes | None,
    source_topic: str | None,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> bytes:
    return codec.dumps(
        {
            "v": 1,
            "stage": stage,
            "reason": reason,
            "errors": errors or [],
            "source_topic": source_topic,
            "partition": partition,
            "offset": offset,
            "key": key.decode("utf-8", "replace") if key is not None else None,
            "value_b64": base64.b64encode(value).decode() if value is not None else None,
            "dead_lettered_at": datetime.now(UTC),
        }
    )


STAGES = ("ingest", "scorer", "other")
# what a dead letter is, for a metric label (bounded): the time and admission refusals by
# name, any other refusal of an event as "invalid", a scorer's as "refused"
KINDS = ("queue_not_admitted", "future_timestamp", "past_timestamp", "invalid", "refused")


def classify(raw: bytes | None) -> tuple[str, str]:
    """(stage, kind) of a dead-letter record, each from a fixed set (``STAGES``, ``KINDS``):
    labels for counting them, whatever the topic holds."""
    try:
        obj = codec.loads(raw) if raw is not None else None
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        return "other", "invalid"
    stage = obj.get("stage")
    if stage == "scorer":
        return "scorer", "refused"
    errors = obj.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    kind = first.get("type") if isinstance(first, dict) else None
    return (
        "ingest" if stage == "ingest" else "other",
        kind if kind in KINDS[:3] else "invalid",
    )
