"""Control records: operator commands that travel on ``qw.events.v1`` beside the event
batches, so the scorer applies them in order with the queue's events and exactly once.

One kind so far, the **baseline reset** (a new Phase I for a queue after a policy change or
a migration; docs/statistics.md, "Re-baselining a queue")::

    {"v": 1, "kind": "baseline_reset", "queue_id": "spam-en",
     "request_id": "7f0c2a4e9b1d4c3a8e5f6a7b8c9d0e1f", "reason": "policy spam.v4 in force",
     "actor": "key 3f9c0a1b (ops lead)", "requested_at": 1793613600.0,
     "effective_at": 1793610000.0}

The alerts service's ``POST /v1/queues/{id}/baseline:reset`` writes it, keyed by the queue
like a batch (``shared.topics.queue_key``), so it lands in the queue's partition. An event
batch has no ``kind``; a message with one is a control record, and one this module does not
accept (an unknown ``kind`` or ``v``, a missing, extra or ill-typed field) goes to the
dead-letter topic whole, with the reason, like an undecodable batch.

- ``request_id``: 1-64 of ``A-Za-z0-9_-``; the scorer applies a request id once per queue
  (a retried request that was produced twice resets once).
- ``reason`` 1-2,000 characters, ``actor`` 1-200: who and why, kept with the queue's state.
- ``requested_at``: when it was asked (epoch seconds, wall clock); ``effective_at``: null,
  or the event time from which the new Phase I learns (epoch seconds): the first subgroup
  starting at or after it (null: the queue's watermark when the scorer applies it).
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypedDict

from shared import batches, codec
from shared.batches import AnyBatch, epoch
from shared.ids import is_key_id
from shared.text import clean_text
from shared.topics import partition_of, queue_key

CONTROL_VERSION = 1
BASELINE_RESET = "baseline_reset"
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
REASON_MAX = 2000
ACTOR_MAX = 200
_FIELDS = frozenset(
    {"v", "kind", "queue_id", "request_id", "reason", "actor", "requested_at", "effective_at"}
)


class BaselineReset(TypedDict):
    v: int
    kind: Literal["baseline_reset"]
    queue_id: str
    request_id: str
    reason: str
    actor: str
    requested_at: float
    effective_at: float | None


def baseline_reset(
    queue_id: str,
    *,
    request_id: str,
    reason: str,
    actor: str,
    requested_at: float,
    effective_at: float | None = None,
) -> BaselineReset:
    """A baseline reset, checked as the scorer will check it (``ValueError`` if it is not
    one the scorer accepts)."""
    return validate(
        {
            "v": CONTROL_VERSION,
            "kind": BASELINE_RESET,
            "queue_id": queue_id,
            "request_id": request_id,
            "reason": reason,
            "actor": actor,
            "requested_at": requested_at,
            "effective_at": effective_at,
        }
    )


def encode(record: BaselineReset) -> bytes:
    return codec.dumps(record)


def is_control(obj: Any) -> bool:
    """Is this decoded message a control record (rather than an event batch)?"""
    return isinstance(obj, dict) and "kind" in obj


def validate(obj: dict[str, Any]) -> BaselineReset:
    """The control record, or ``ValueError`` saying what is wrong with it."""
    kind = obj.get("kind")
    if kind != BASELINE_RESET:
        raise ValueError(f"control record of unknown kind {str(kind)[:100]!r}")
    if obj.get("v").__class__ is not int or obj["v"] != CONTROL_VERSION:
        raise ValueError(f"baseline_reset: version {str(obj.get('v'))[:20]!r}, not 1")
    missing = sorted(_FIELDS - obj.keys())
    if missing:
        raise ValueError(f"baseline_reset: missing fields {missing}")
    extra = sorted(obj.keys() - _FIELDS)
    if extra:
        raise ValueError(f"baseline_reset: unknown fields {[k[:50] for k in extra][:10]}")
    queue_id = obj["queue_id"]
    if not isinstance(queue_id, str) or not is_key_id(queue_id):
        raise ValueError(f"baseline_reset: queue_id {str(queue_id)[:200]!r} is not a queue id")
    request_id = obj["request_id"]
    if not isinstance(request_id, str) or REQUEST_ID_RE.fullmatch(request_id) is None:
        raise ValueError("baseline_reset: request_id must be 1-64 of A-Za-z0-9_-")
    for name, limit in (("reason", REASON_MAX), ("actor", ACTOR_MAX)):
        value = obj[name]
        if not isinstance(value, str) or not 1 <= len(value) <= limit or not value.strip():
            raise ValueError(f"baseline_reset: {name} must be a text of 1-{limit} characters")
        try:
            clean_text(value)
        except ValueError as exc:
            raise ValueError(f"baseline_reset: {name}: {exc}") from None
    if epoch(obj["requested_at"]) is None:
        raise ValueError("baseline_reset: requested_at must be a time in epoch seconds")
    if obj["effective_at"] is not None and epoch(obj["effective_at"]) is None:
        raise ValueError("baseline_reset: effective_at must be null or a time in epoch seconds")
    out = dict(obj)
    out["requested_at"] = float(obj["requested_at"])
    if obj["effective_at"] is not None:
        out["effective_at"] = float(obj["effective_at"])
    return out  # type: ignore[return-value]


def decode_record(data: bytes) -> AnyBatch | BaselineReset:
    """An events-topic message's value: an event batch or a control record; ``ValueError``
    saying why when it is neither. (Its key is checked by ``decode_input``.)"""
    obj = batches.loads(data)
    return validate(obj) if is_control(obj) else batches.check(obj)


def decode_input(
    data: bytes, key: bytes | None, partition: int | None = None, partitions: int | None = None
) -> AnyBatch | BaselineReset:
    """An events-topic message with its Kafka key: an event batch (``shared.batches``) or a
    control record; ``ValueError`` saying why when it is neither, or when its key is not its
    queue's (the scorer dead-letters it whole).

    The key decides the partition, and one queue's state lives in one partition: a message
    of queue ``q`` under another key lands where ``q``'s other messages are not, is scored
    into a second state for ``q``, and one of the two is lost after a restart. A producer
    writing to the topic directly with the wrong key is refused instead; so is one that
    chose the partition itself, under the right key but on another partition than the key
    goes to (``partition``, of the topic's ``partitions``; unchecked when either is None)."""
    record = decode_record(data)
    expected = queue_key(record["queue_id"])
    if key != expected:
        what = BASELINE_RESET if is_control(record) else "EventBatch"
        shown = "no key" if key is None else f"key {key[:200]!r}"
        raise ValueError(
            f"{what} of queue {record['queue_id']!r} under {shown}, not {expected!r}: "
            "a queue's messages must be keyed by its id (shared.topics.queue_key), or they "
            "land on another partition than its state"
        )
    if partition is not None and partitions and partition_of(key, partitions) != partition:
        what = BASELINE_RESET if is_control(record) else "EventBatch"
        raise ValueError(
            f"{what} of queue {record['queue_id']!r} on partition {partition}, but its key goes "
            f"to partition {partition_of(key, partitions)} of {partitions}: the producer chose "
            "the partition itself, and a queue's messages must all be on the one its key "
            "picks, beside its state (replaying this dead letter sends it there)"
        )
    return record
