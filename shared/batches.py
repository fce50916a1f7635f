"""The message on ``qw.events.v1``: validated events of one queue, grouped.

Faust's per-message machinery costs tens of microseconds, so the scorer receives events in
batches, one message per queue per ingest poll, rather than one message per event. Ingest
writes version 3; the scorer decodes versions 1 and 2 too (a topic written before an upgrade
still holds them)::

    {"v": 3, "queue_id": "...",
     "decisions": {"decision_id": ["d1", "d2", ...], "decided_at": [1793786400.25, ...], ...},
     "verdicts": {"verdict_id": [...], "reviewed_at": [...], ...}}

- **v3** (columnar): the events of v2, one list per field instead of an object per event: a
  kind's columns are lists of one length, its number of events, and event ``i`` is the
  ``i``-th value of every column (a field absent from a kind's columns is absent from all its
  events). Decoding makes no object per event and the scorer checks a column at once
  (``services/scorer/core.py``); an event with a bad value is still refused alone, as the v2
  event it stands for. ``encode`` writes a v2 batch in memory as v3 when its events have the
  same fields, as ingest's always do (otherwise as v2).
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
and the APIs use; a batch that does not (or has an unknown ``v``, or v3 columns that are not
lists of one length) goes to the dead-letter topic whole, with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict, cast

from shared import codec
from shared.events import Decision, Verdict
from shared.ids import is_key_id

BATCH_VERSION = 3
VERSIONS = frozenset({1, 2, 3})
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
    """A v1 or v2 batch: an object per event. ``group_by_queue`` and ``pack`` make v2."""

    v: int
    queue_id: str
    decisions: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]


class ColumnBatch(TypedDict):
    """A v3 batch: a kind's events as one list per field (``columns``)."""

    v: int
    queue_id: str
    decisions: dict[str, list[Any]]
    verdicts: dict[str, list[Any]]


AnyBatch = EventBatch | ColumnBatch


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
    MAX_EVENTS_PER_MESSAGE decisions and as many verdicts (``encode`` writes them as v3);
    a queue's events past that are cut in event time (``aligned``)."""
    out: list[EventBatch] = []
    step = MAX_EVENTS_PER_MESSAGE
    for q in sorted(decisions.keys() | verdicts.keys()):
        ds, vs = decisions.get(q, []), verdicts.get(q, [])
        parts = [(ds, vs)] if len(ds) <= step and len(vs) <= step else aligned(ds, vs, step)
        for d_part, v_part in parts:
            # (v=2 in memory; encode writes BATCH_VERSION)
            out.append(EventBatch(v=2, queue_id=q, decisions=d_part, verdicts=v_part))
    return out


def aligned(
    ds: list[dict[str, Any]], vs: list[dict[str, Any]], step: int
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """A queue's decisions and verdicts of one poll (v2 items) cut into parts of at most
    ``step`` of each kind, in event time: the two lists are merged by time (the earlier
    head first, a decision on a tie), each kind in its own order, and a part ends where
    either kind reaches ``step``. Cut by position instead, the first part of a backlog would
    hold the first ``step`` decisions and the first ``step`` verdicts, reviewed hours after
    the last of those decisions (a queue has several times more decisions than verdicts):
    the scorer would hold them waiting for their decisions, and their times would close
    the subgroups those decisions fall in before the next part brought them: counted late,
    after their subgroup was published, and left out of a Phase I (tests/e2e/
    test_backfill_baseline.py)."""
    i = j = 0
    while i < len(ds) or j < len(vs):
        i0, j0 = i, j
        while i - i0 < step and j - j0 < step and (i < len(ds) or j < len(vs)):
            if j == len(vs) or (i < len(ds) and ds[i]["decided_at"] <= vs[j]["reviewed_at"]):
                i += 1
            else:
                j += 1
        yield ds[i0:i], vs[j0:j]


def encode(batch: AnyBatch) -> bytes:
    """A batch as the events topic carries it: a v2 batch as v3 when its events have the
    same fields (``columns``), any other as it is."""
    if batch["v"] == 2:
        cols = columns(cast(EventBatch, batch))
        if cols is not None:
            return codec.dumps(cols)
    return codec.dumps(batch)


def columns(batch: EventBatch) -> ColumnBatch | None:
    """A v2 batch as v3, or None when the events of a kind do not all have the same fields
    (v3 has no way to say that a field is absent from one event only)."""
    out: dict[str, dict[str, list[Any]]] = {}
    for kind in ("decisions", "verdicts"):
        events: list[dict[str, Any]] = batch["decisions" if kind == "decisions" else "verdicts"]
        if not events:
            out[kind] = {}
            continue
        keys = events[0].keys() if events[0].__class__ is dict else ()
        if not keys or set(map(len, events)) != {len(keys)}:
            return None
        try:  # (a missing key, or an event that is not an object)
            out[kind] = {k: [e[k] for e in events] for k in keys}
        except (KeyError, TypeError):
            return None
    return ColumnBatch(
        v=3, queue_id=batch["queue_id"], decisions=out["decisions"], verdicts=out["verdicts"]
    )


def rows(cols: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """A v3 batch's events of one kind as the v2 events they stand for (a checked batch:
    its columns are lists of one length)."""
    keys = list(cols)
    return [dict(zip(keys, values, strict=True)) for values in zip(*cols.values(), strict=True)]


def count(batch: AnyBatch, kind: str) -> int:
    """How many events of ``kind`` (``decisions``, ``verdicts``) a checked batch holds."""
    events: Any = batch[kind]  # type: ignore[literal-required]
    if events.__class__ is dict:
        return len(next(iter(events.values()), ()))
    return len(events)


def epoch(value: Any) -> float | None:
    """A v2 event time as seconds, or None when it is not one: a JSON number (not a
    boolean), finite, within the years 1-9999 that an RFC 3339 text can name."""
    cls = value.__class__
    if (cls is float or cls is int) and MIN_EPOCH <= value <= MAX_EPOCH:  # False for NaN
        return float(value)
    return None


def decode(data: bytes) -> AnyBatch:
    """Decode an events-topic message; ``ValueError`` if it is not a batch we know."""
    return check(loads(data))


def loads(data: bytes) -> Any:
    """An events-topic message's JSON; ``ValueError`` if it is not JSON."""
    try:
        return codec.loads(data)
    except codec.JSONDecodeError as exc:
        raise ValueError(f"not an EventBatch: not JSON ({exc})") from exc


def check(obj: Any) -> AnyBatch:
    """A decoded events-topic message as a batch; ``ValueError`` if it is not one we know."""
    if not isinstance(obj, dict) or obj.get("v").__class__ is not int or obj["v"] not in VERSIONS:
        raise ValueError(f"not an EventBatch v{' or v'.join(map(str, sorted(VERSIONS)))}")
    queue_id = obj.get("queue_id")
    if not isinstance(queue_id, str):
        raise ValueError("EventBatch without queue_id")
    if not is_key_id(queue_id):
        raise ValueError(f"EventBatch queue_id {queue_id[:200]!r} is not a valid queue id")
    if obj["v"] == 3:
        return _check_columns(obj, queue_id)
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
            _check_queue(kind, i, e.get("queue_id", queue_id), queue_id)
            for key in keys:
                value = e.get(key)
                if value.__class__ is not str or value not in valid:
                    _check_key(kind, i, key, value, valid)
    return obj  # type: ignore[return-value]


def _check_columns(obj: dict[str, Any], queue_id: str) -> ColumnBatch:
    """``check`` of a v3 batch: each kind an object of lists of one length, its events of
    the batch's queue, their keys valid (a bad value of another field is the scorer's to
    refuse, with that event alone)."""
    valid: set[str] = set()
    for kind, keys in (("decisions", _DECISION_KEYS), ("verdicts", ())):
        cols = obj.get(kind)
        if not isinstance(cols, dict):
            raise ValueError("EventBatch v3 without decisions/verdicts objects of columns")
        lengths = set()
        for name, col in cols.items():
            if not isinstance(col, list):
                raise ValueError(f"EventBatch v3 {kind}: column {name[:200]!r} is not a list")
            lengths.add(len(col))
        if len(lengths) > 1:
            raise ValueError(
                f"EventBatch v3 {kind}: columns of different lengths {sorted(lengths)}"
            )
        n = lengths.pop() if lengths else 0
        if n > MAX_EVENTS_PER_MESSAGE:
            raise ValueError(f"EventBatch with {n} {kind}, more than {MAX_EVENTS_PER_MESSAGE}")
        for i, q in enumerate(cols.get("queue_id", ())):
            _check_queue(kind[:-1], i, q, queue_id)
        for key in keys:
            for i, value in enumerate(cols.get(key, ())):
                if value.__class__ is not str or value not in valid:
                    _check_key(kind[:-1], i, key, value, valid)
    return obj  # type: ignore[return-value]


def _check_queue(kind: str, i: int, value: Any, queue_id: str) -> None:
    """Event ``i`` of ``kind`` (``decision``, ``verdict``) is of the batch's queue: its
    ``queue_id``, where it has one, is the batch's."""
    if value != queue_id:
        raise ValueError(f"EventBatch {kind} {i} belongs to queue {value!r:.200}")


def _check_key(kind: str, i: int, key: str, value: Any, valid: set[str]) -> None:
    """Event ``i``'s ``key`` (``site_id``, ``policy_id``), where it is text, follows the
    key-id grammar (another type is the scorer's to refuse, with that event alone); added
    to ``valid``, the values checked already in this batch, which has few sites and policies
    (its callers look a value up there before they call this)."""
    if isinstance(value, str):
        if not is_key_id(value):
            raise ValueError(f"EventBatch {kind} {i}: {key} {value[:200]!r} is not a valid key id")
        valid.add(value)


# the fields of a decision that become keys or labels downstream (besides its queue_id)
_DECISION_KEYS = ("site_id", "policy_id")
