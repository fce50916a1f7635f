"""The message on ``qw.events.v1``: validated events of one queue, grouped.

Faust's per-message machinery costs tens of microseconds, so the scorer receives events in
batches, one message per queue per ingest poll, rather than one message per event. The body
is::

    {"v": 1, "queue_id": "...", "decisions": [Decision JSON...], "verdicts": [Verdict JSON...]}

Events inside are already validated by ingest; the scorer trusts this internal topic's shape
(an unknown ``v`` still goes to the dead-letter topic).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, TypedDict

from shared import codec
from shared.events import QUEUE_ID_RE, Decision, Verdict

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
    if not QUEUE_ID_RE.match(queue_id):
        raise ValueError(f"EventBatch queue_id {queue_id[:200]!r} is not a valid queue id")
    if not isinstance(obj.get("decisions"), list) or not isinstance(obj.get("verdicts"), list):
        raise ValueError("EventBatch without decisions/verdicts lists")
    return obj  # type: ignore[return-value]
