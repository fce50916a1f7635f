"""The message on ``qw.events.v1``: validated events of one queue, grouped.

Faust's per-message machinery costs tens of microseconds, so the scorer receives events in
batches, one message per queue per ingest poll, rather than one message per event. The body
is::

    {"v": 1, "queue_id": "...", "decisions": [Decision JSON...], "verdicts": [Verdict JSON...]}

Events inside are already validated by ingest. The decoder checks again what becomes a key:
the batch's ``queue_id`` and, in every event, ``queue_id`` (the batch's), ``site_id`` and
``policy_id`` follow the key-id grammar of ``shared/ids.py``, the one ingest and the APIs use; a
batch that does not (or has an unknown ``v``) goes to the dead-letter topic whole, with the
reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, TypedDict

from shared import codec
from shared.events import Decision, Verdict
from shared.ids import is_key_id

BATCH_VERSION = 1
# 500 decisions and 500 verdicts with long ids encode to ~350 KB: well under the 1 MB a
# broker accepts by default (the events topic also allows 8 MiB, see shared/topics.py)
MAX_EVENTS_PER_MESSAGE = 500


class EventBatch(TypedDict):
    v: int
    queue_id: str
    decisions: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]


def group_by_queue(events: Iterable[Decision | Verdict]) -> list[EventBatch]:
    """Group validated events into batches per queue, each at most MAX_EVENTS_PER_MESSAGE."""
    decisions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    verdicts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        target = decisions if isinstance(e, Decision) else verdicts
        target[e.queue_id].append(e.model_dump(mode="json"))
    out: list[EventBatch] = []
    for q in sorted(decisions.keys() | verdicts.keys()):
        ds, vs = decisions.get(q, []), verdicts.get(q, [])
        step = MAX_EVENTS_PER_MESSAGE
        for i in range(0, max(len(ds), len(vs)), step):
            out.append(
                EventBatch(
                    v=BATCH_VERSION,
                    queue_id=q,
                    decisions=ds[i : i + step],
                    verdicts=vs[i : i + step],
                )
            )
    return out


def encode(batch: EventBatch) -> bytes:
    return codec.dumps(batch)


def decode(data: bytes) -> EventBatch:
    """Decode an events-topic message; ``ValueError`` if it is not a batch we know."""
    try:
        obj = codec.loads(data)
    except codec.JSONDecodeError as exc:
        raise ValueError(f"not an EventBatch: not JSON ({exc})") from exc
    if not isinstance(obj, dict) or obj.get("v") != BATCH_VERSION:
        raise ValueError(f"not an EventBatch v{BATCH_VERSION}")
    queue_id = obj.get("queue_id")
    if not isinstance(queue_id, str):
        raise ValueError("EventBatch without queue_id")
    if not is_key_id(queue_id):
        raise ValueError(f"EventBatch queue_id {queue_id[:200]!r} is not a valid queue id")
    decisions, verdicts = obj.get("decisions"), obj.get("verdicts")
    if not isinstance(decisions, list) or not isinstance(verdicts, list):
        raise ValueError("EventBatch without decisions/verdicts lists")
    for kind, events, keys in (("decision", decisions, _DECISION_KEYS), ("verdict", verdicts, ())):
        for i, e in enumerate(events):
            if not isinstance(e, dict):
                continue  # the scorer dead-letters such an item alone
            if e.get("queue_id", queue_id) != queue_id:
                raise ValueError(f"EventBatch {kind} {i} belongs to queue {e['queue_id']!r:.200}")
            for key in keys:
                value = e.get(key)
                if isinstance(value, str) and not is_key_id(value):
                    raise ValueError(
                        f"EventBatch {kind} {i}: {key} {value[:200]!r} is not a valid key id"
                    )
    return obj  # type: ignore[return-value]


# the fields of a decision that become keys or labels downstream (besides its queue_id)
_DECISION_KEYS = ("site_id", "policy_id")
