"""The message on ``qw.events.v1``: validated events of one queue, grouped.

Faust's per-message machinery costs tens of microseconds, so the scorer receives events in
batches, one message per queue per ingest poll, rather than one message per event. Ingest
writes version 2; the scorer decodes version 1 too (a topic written before an upgrade still
holds it)::

    {"v": 2, "queue_id": "...",
     "decisions": [{"decision_id": ..., "decided_at": 1793786400.25, ...}, ...],
     "verdicts": [{"verdict_id": ..., "reviewed_at": 1793790000.0, ...}, ...]}

- **v2**: an event is its validated fields without ``v``, ``kind`` and ``queue_id`` (the
  list and the batch say them; the events inside are of schema version 1) and its time
  (``decided_at``, ``reviewed_at``) as a JSON number, seconds since the Unix epoch (UTC):
  parsed once, at ingest, never again downstream. A number that is not a finite time of
  years 1-9999 is refused by the scorer for that event alone, with the reason.
- **v1**: every field as the event's JSON (``model_dump(mode="json")``), times as RFC 3339
  text.

Events inside are already validated by ingest. The decoder refuses a batch of more than
``MAX_EVENTS_PER_MESSAGE`` events of a kind, and checks again what becomes a key:
the batch's ``queue_id`` and, in every event, ``queue_id`` (the batch's, where present),
``site_id`` and ``policy_id`` follow the key-id grammar of ``shared/ids.py``, the one ingest
and the APIs use; a batch that does not (or has an unknown ``v``) goes to the dead-letter
topic whole, with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict

from shared import codec
from shared.events import Decision, Verdict
from shared.ids import is_key_id

BATCH_VERSION = 2
VERSIONS = frozenset({1, 2})
# the fields a v2 event leaves out: the batch and its lists say them
_IMPLIED = frozenset({"v", "kind", "queue_id"})
# 2,000 decisions and 2,000 verdicts with every id at its longest encode to ~4 MB, under the
# 8 MiB the events topic and the producer allow (shared/topics.py, shared/kafka.py); as ingest
# sends them, ~200 B an event, 0.8 MB
MAX_EVENTS_PER_MESSAGE = 2000
# the event times a v2 batch may carry: those of an RFC 3339 text (years 1 to 9999)
MIN_EPOCH = datetime(1, 1, 1, tzinfo=UTC).timestamp()
MAX_EPOCH = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC).timestamp()
# The earliest event time the scorer counts: an event before it is refused alone, with the
# reason (a time of year 1 or 1969 is a producer's bug, and opening a subgroup there would
# put an hour bucket at a negative epoch into the state, whose keys sort by hour)
MIN_EVENT_TIME = "2000-01-01T00:00:00Z"
MIN_EVENT_EPOCH = datetime(2000, 1, 1, tzinfo=UTC).timestamp()


class EventBatch(TypedDict):
    v: int
    queue_id: str
    decisions: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]


def item(event: Decision | Verdict) -> dict[str, Any]:
    """A validated event as a v2 batch carries it."""
    out = {k: v for k, v in event.model_dump(mode="json").items() if k not in _IMPLIED}
    if isinstance(event, Decision):
        out["decided_at"] = event.decided_at.timestamp()
    else:
        out["reviewed_at"] = event.reviewed_at.timestamp()
    return out


def group_by_queue(events: Iterable[Decision | Verdict]) -> list[EventBatch]:
    """Group validated events into v2 batches per queue (``pack``)."""
    decisions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    verdicts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        target = decisions if isinstance(e, Decision) else verdicts
        target[e.queue_id].append(item(e))
    return pack(decisions, verdicts)


def pack(
    decisions: Mapping[str, list[dict[str, Any]]], verdicts: Mapping[str, list[dict[str, Any]]]
) -> list[EventBatch]:
    """v2 batches per queue from events already in v2 form (``item``), each at most
    MAX_EVENTS_PER_MESSAGE decisions and as many verdicts."""
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


def epoch(value: Any) -> float | None:
    """A v2 event time as seconds, or None when it is not one: a JSON number (not a
    boolean), finite, within the years 1-9999 that an RFC 3339 text can name."""
    cls = value.__class__
    if (cls is float or cls is int) and MIN_EPOCH <= value <= MAX_EPOCH:  # False for NaN
        return float(value)
    return None


def decode(data: bytes) -> EventBatch:
    """Decode an events-topic message; ``ValueError`` if it is not a batch we know."""
    return check(loads(data))


def loads(data: bytes) -> Any:
    """An events-topic message's JSON; ``ValueError`` if it is not JSON."""
    try:
        return codec.loads(data)
    except codec.JSONDecodeError as exc:
        raise ValueError(f"not an EventBatch: not JSON ({exc})") from exc


def check(obj: Any) -> EventBatch:
    """A decoded events-topic message as a batch; ``ValueError`` if it is not one we know."""
    if not isinstance(obj, dict) or obj.get("v").__class__ is not int or obj["v"] not in VERSIONS:
        raise ValueError(f"not an EventBatch v{' or v'.join(map(str, sorted(VERSIONS)))}")
    queue_id = obj.get("queue_id")
    if not isinstance(queue_id, str):
        raise ValueError("EventBatch without queue_id")
    if not is_key_id(queue_id):
        raise ValueError(f"EventBatch queue_id {queue_id[:200]!r} is not a valid queue id")
    decisions, verdicts = obj.get("decisions"), obj.get("verdicts")
    if not isinstance(decisions, list) or not isinstance(verdicts, list):
        raise ValueError("EventBatch without decisions/verdicts lists")
    for kind, events in (("decisions", decisions), ("verdicts", verdicts)):
        # ingest never writes more; a producer writing to the topic directly could, and the
        # scorer's state for one batch must stay bounded (services/scorer/chunks.py)
        if len(events) > MAX_EVENTS_PER_MESSAGE:
            raise ValueError(
                f"EventBatch with {len(events)} {kind}, more than {MAX_EVENTS_PER_MESSAGE}"
            )
    valid: set[str] = set()  # key ids checked already (a batch has few sites and policies)
    for kind, events, keys in (("decision", decisions, _DECISION_KEYS), ("verdict", verdicts, ())):
        for i, e in enumerate(events):
            if not isinstance(e, dict):
                continue  # the scorer dead-letters such an item alone
            if e.get("queue_id", queue_id) != queue_id:
                raise ValueError(f"EventBatch {kind} {i} belongs to queue {e['queue_id']!r:.200}")
            for key in keys:
                value = e.get(key)
                if value.__class__ is str and value in valid:
                    continue
                if isinstance(value, str):
                    if not is_key_id(value):
                        raise ValueError(
                            f"EventBatch {kind} {i}: {key} {value[:200]!r} is not a valid key id"
                        )
                    valid.add(value)
    return obj  # type: ignore[return-value]


# the fields of a decision that become keys or labels downstream (besides its queue_id)
_DECISION_KEYS = ("site_id", "policy_id")
