"""Write-once chunked id stores: the decision side of the join, the verdicts counted, and
the verdicts waiting for their decision.

Storing one table entry per decision would cost one changelog record per decision, the
dominant cost at 10^8 decisions a day. Instead each batch's new ids of a queue become one
*chunk*: one table entry, one changelog record (several when it is larger than
``MAX_RECORD_BYTES``: its *parts*, ``...|partition-offset.1`` and on after the first, so
that no state record nears the producer's request size). A chunk's key is
``kind|queue|hour|partition-offset``: its store, its queue, the hour of the queue's
watermark when it was written, and the input message it came from. So a chunk is unique
without any counter in the queue's state, is identical when its message is replayed (its
records merge into the same chunk, never replace it), and expires by hour.

Writes are *staged*: ``add`` makes records visible to lookups at once, ``flush`` writes them
to the table (the scorer does so before the queue's own record, see ``core.py``), and
``invalidate`` drops them after a failed batch. Lookups by id go through the table's own
index (``index.py``), kept by the store in the same write as each chunk, so nothing is
rebuilt after a restart or a rebalance and the ids need not fit in memory. A decision's
index entry carries the decision, so reading one by id decodes no chunk; a bounded cache
keeps recently read chunks for the rest (whole-queue scans, entries without records).

Exactly-once effect under replay rests on two rules, both tested in
``tests/unit/test_scorer_crash_points.py``:

- *visibility*: a chunk counts only once the queue's record names its message as applied
  (``applied``, the queue's last applied input position, at or after the chunk's). A message
  whose earlier application was cut short (its chunks reached the table, the queue's record
  did not), or several of them (a worker's own RocksDB store can be ahead of the record the
  changelog replayed into it), is applied again from the queue's last record and finds
  exactly what it found the first time; its chunks are written again, whole.
- expiry is *logical*: a chunk of an hour before the queue's ``alive_from`` is absent for
  lookups whether or not its deletion reached the table yet.

Records are small lists; their first element is the record's event time (epoch seconds).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from services.scorer.index import PART_SEP, ChunkIndex, Entry, chunk_fields

Record = list[Any]
Position = tuple[int, int]  # (partition, offset) of an input message
Chunk = dict[str, Any]  # {"q": queue_id, "r": {id: Record}}
HOUR = 3600
CACHE_RECORDS = 50_000  # records of decoded chunks kept per store (the join's hot set)
PARSED_KEYS = 8192  # chunk keys kept parsed per store (emptied when full)
# The most a chunk's changelog record may hold (its JSON value): a larger chunk is written as
# several records (parts). 2,000 decisions with every id at its longest are ~1.4 MB as one
# record, past the producer's 1 MB request size; a worker that cannot write its state dies
# and replays the same message after every restart. A part stays far below that whatever
# the input (one record is at most ~1.5 KB: ids of at most 200 characters).
MAX_RECORD_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True, eq=False)
class ChunkKey:
    kind: str
    queue_id: str
    hour: int
    batch: str  # "partition-offset" of the input message that wrote it
    part: int = 0  # which of the records a chunk larger than MAX_RECORD_BYTES was cut into
    position: Position = field(init=False, repr=False)
    text: str = field(init=False, repr=False)  # the table key

    def __post_init__(self) -> None:
        partition, _, offset = self.batch.partition("-")
        object.__setattr__(self, "position", (int(partition), int(offset)))
        # the hour zero-padded: keys of one queue sort by hour in the store
        key = f"{self.kind}|{self.queue_id}|{self.hour:011d}|{self.batch}"
        if self.part:
            key += f"{PART_SEP}{self.part}"
        object.__setattr__(self, "text", key)

    def with_part(self, part: int) -> ChunkKey:
        return ChunkKey(self.kind, self.queue_id, self.hour, self.batch, part)

    def __str__(self) -> str:
        return self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChunkKey) and other.text == self.text

    @classmethod
    def parse(cls, key: str) -> ChunkKey:
        fields = chunk_fields(key)
        if fields is None:
            raise ValueError(f"not a chunk key: {key!r}")
        return cls(*fields)


_UNKNOWN: Any = object()  # (not an index entry: an id the prefetch did not look up)


def hour_of(t: float) -> int:
    return int(t // HOUR) * HOUR


def split(chunk: Chunk, limit: int | None = None) -> list[Chunk]:
    """The chunk as the records it is written in: itself when its JSON fits in ``limit``
    bytes (``MAX_RECORD_BYTES``), otherwise parts of consecutive records, each within it.
    A function of the chunk alone (its records in their order), so a message applied again
    after a crash cuts its chunk the same way and its parts replace the earlier ones."""
    limit = MAX_RECORD_BYTES if limit is None else limit
    if len(orjson.dumps(chunk)) <= limit:
        return [chunk]
    queue_id = chunk["q"]
    overhead = len(orjson.dumps({"q": queue_id, "r": {}}))
    parts: list[Chunk] = []
    current: dict[str, Record] = {}
    size = overhead
    for record_id, record in chunk["r"].items():
        # "id":[...], with its comma
        n = len(orjson.dumps(record_id)) + len(orjson.dumps(record)) + 2
        if current and size + n > limit:
            parts.append({"q": queue_id, "r": current})
            current, size = {}, overhead
        current[record_id] = record
        size += n
    parts.append({"q": queue_id, "r": current})
    return parts


def written_by_applied(key: ChunkKey, applied: Position) -> bool:
    """Was the chunk written by a message the queue's record names as applied?"""
    if applied[0] < 0:
        return False  # no record: nothing applied yet
    return key.position[0] != applied[0] or key.position[1] <= applied[1]


class ChunkStore:
    def __init__(
        self,
        table: MutableMapping[str, Any],
        index: ChunkIndex,
        kind: str,
        applied: Callable[[str], Position],
    ) -> None:
        self._table = table
        self._index = index
        self.kind = kind  # key prefix: several stores share one table
        self._applied = applied  # queue -> the last input position its record applied
        self._staged: dict[ChunkKey, Chunk] = {}  # written at the next flush
        self._staged_ids: dict[tuple[str, str], ChunkKey] = {}  # (queue, id) -> chunk
        self._deleted: list[ChunkKey] = []
        self._cache: OrderedDict[ChunkKey, Chunk] = OrderedDict()
        self._cached_records = 0
        # chunk keys parsed, by table key: a batch's ids mostly live in a few chunks (at
        # most PARSED_KEYS, emptied when full, so its memory does not grow with the keys seen)
        self._keys: dict[str, ChunkKey] = {}
        # queue -> the hour below which this worker deleted every chunk: scans start there
        # instead of stepping over deletions RocksDB has not compacted away yet
        self._floor: dict[str, int] = {}
        # (queue, id -> index entry or None) of ``prefetch``, until the index changes
        self._prefetched: tuple[str, dict[str, Entry | None]] = ("", {})

    def invalidate(self) -> None:
        """Drop what is staged and cached (partitions moved, or a batch failed)."""
        self._prefetched = ("", {})
        self._staged.clear()
        self._staged_ids.clear()
        self._deleted.clear()
        self._cache.clear()
        self._cached_records = 0
        self._keys.clear()
        self._floor.clear()

    def _visible(self, key: ChunkKey) -> bool:
        return key in self._staged or written_by_applied(key, self._applied(key.queue_id))

    def _chunk(self, key: ChunkKey) -> Chunk | None:
        staged = self._staged.get(key)
        if staged is not None:
            return staged
        chunk = self._cache.get(key)
        if chunk is not None:
            self._cache.move_to_end(key)
            return chunk
        chunk = self._table.get(str(key))
        if chunk is not None:
            self._remember(key, chunk)
        return chunk

    def _key(self, raw: str) -> ChunkKey:
        key = self._keys.get(raw)
        if key is None:
            if len(self._keys) >= PARSED_KEYS:
                self._keys.clear()
            key = self._keys[raw] = ChunkKey.parse(raw)
        return key

    def _remember(self, key: ChunkKey, chunk: Chunk) -> None:
        self._forget(key)
        self._cache[key] = chunk
        self._cached_records += len(chunk["r"])
        while self._cached_records > CACHE_RECORDS and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_records -= len(old["r"])

    def _forget(self, key: ChunkKey) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self._cached_records -= len(old["r"])

    def batch_keys(self, batch: str) -> list[str]:
        """The table keys of the chunks this store wrote from ``batch``."""
        prefix = self.kind + "|"
        return [k for k in self._index.batch_chunks(batch) if k.startswith(prefix)]

    def chunks(self, queue_id: str, before: float | None = None) -> list[tuple[ChunkKey, Chunk]]:
        """The queue's stored and staged chunks (of hours ending by ``before``, if given)."""
        if before is None:
            limit = 2**62
        elif before == float("-inf"):
            return []
        else:
            limit = math.floor(before - HOUR) + 1  # hour + HOUR <= before
        out: dict[ChunkKey, Chunk] = {}
        floor = self._floor.get(queue_id, 0)
        for raw in self._index.queue_chunks(self.kind, queue_id, limit, floor):
            key = self._key(raw)
            if not self._visible(key):
                continue
            chunk = self._chunk(key)
            if chunk is not None:
                out[key] = chunk
        for key, chunk in self._staged.items():
            if key.queue_id == queue_id and key.hour < limit:
                out[key] = chunk
        return sorted(out.items(), key=lambda kv: (kv[0].hour, kv[0].batch, kv[0].part))

    # -- reads ------------------------------------------------------------------------------
    def prefetch(self, queue_id: str, record_ids: Iterable[str]) -> None:
        """Look the batch's ids up in the index at once (``ChunkIndex.entries_of``), for the
        ``key_of`` and ``get`` calls that follow. Valid until the next ``flush``,
        ``flush_deletes`` or ``invalidate``, the only times the index changes: staged
        records are looked up before it, as always."""
        ids = [r for r in record_ids if (queue_id, r) not in self._staged_ids]
        self._prefetched = (queue_id, self._index.entries_of(self.kind, queue_id, ids))

    def end_prefetch(self) -> None:
        self._prefetched = ("", {})

    def _find(
        self, queue_id: str, record_id: str, alive_from: float, read: bool
    ) -> tuple[ChunkKey, Record | None] | None:
        """The key of the queue's chunk holding ``record_id``, unless it expired (logically)
        at ``alive_from``, and with ``read`` the record (None without)."""
        key = self._staged_ids.get((queue_id, record_id))
        record: Record | None = None
        if key is not None:
            staged = self._staged.get(key)
            if read and staged is not None:
                record = staged["r"].get(record_id)
        else:
            pf_queue, found = self._prefetched
            if pf_queue == queue_id and record_id in found:
                entry = found[record_id]
            else:
                entry = self._index.entries_of(self.kind, queue_id, (record_id,))[record_id]
            if entry is None:
                return None
            key = self._key(entry[0])
            staged = self._staged.get(key)
            if staged is not None:
                # a chunk of the message being applied again (its earlier application was
                # cut short): what it holds now, not what the table holds from then
                if record_id not in staged["r"]:
                    return None
                record = staged["r"][record_id]
            elif not written_by_applied(key, self._applied(queue_id)):
                return None
            elif read:
                record = entry[1]
                if record is None:  # an entry without its record: the chunk has it
                    chunk = self._chunk(key)
                    if chunk is None or record_id not in chunk["r"]:
                        return None
                    record = chunk["r"][record_id]
        if key.hour + HOUR <= alive_from:
            return None
        return key, record

    def absent(self, queue_id: str, record_id: str) -> bool:
        """``key_of`` is None for sure, known without a call: the id is not staged and the
        batch's prefetch found no index entry for it (the common case of a new id: a fresh
        decision, a verdict not counted yet). False means "ask ``key_of``", not "present"."""
        pf_queue, found = self._prefetched
        return (
            pf_queue == queue_id
            and found.get(record_id, _UNKNOWN) is None
            and (queue_id, record_id) not in self._staged_ids
        )

    def key_of(self, queue_id: str, record_id: str, alive_from: float) -> ChunkKey | None:
        """The queue's chunk holding ``record_id``, unless it expired (logically) at
        ``alive_from``. Ids are scoped by queue: another queue's record of the same id is
        another record. The index is exact (``index.py``): no chunk is read."""
        found = self._find(queue_id, record_id, alive_from, False)
        return None if found is None else found[0]

    def get(
        self, queue_id: str, record_id: str, alive_from: float = float("-inf")
    ) -> Record | None:
        found = self._find(queue_id, record_id, alive_from, True)
        return None if found is None else found[1]

    # -- writes -----------------------------------------------------------------------------
    def add(
        self,
        queue_id: str,
        watermark: float,
        batch: str,
        records: dict[str, Record],
        alive_from: float = float("-inf"),
    ) -> dict[str, Record]:
        """Stage the records not known yet (alive at ``alive_from``); returns them."""
        absent = self.absent
        fresh = {
            k: r
            for k, r in records.items()
            if absent(queue_id, k) or self.key_of(queue_id, k, alive_from) is None
        }
        if not fresh:
            return fresh
        key = ChunkKey(self.kind, queue_id, hour_of(watermark), batch)
        # (a chunk of this message in the table is from a cut-short application: replaced)
        existing = self._staged.get(key)
        chunk: Chunk = {"q": queue_id, "r": {**(existing["r"] if existing else {}), **fresh}}
        self._staged[key] = chunk
        for record_id in fresh:
            self._staged_ids[(queue_id, record_id)] = key
        return fresh

    def expire(self, queue_id: str, before: float) -> list[tuple[ChunkKey, Chunk]]:
        """The queue's chunks of hours that ended by ``before`` (logically gone: lookups at
        that horizon skip them); the pending store counts what expired unanswered. They
        are deleted later, by ``purge``."""
        gone = self.chunks(queue_id, before)
        for key, _ in gone:
            staged = self._staged.pop(key, None)
            if staged is not None:
                for record_id in staged["r"]:
                    if self._staged_ids.get((queue_id, record_id)) == key:
                        del self._staged_ids[(queue_id, record_id)]
        return gone

    def purge(self, queue_id: str, before: float) -> None:
        """Stage the deletion of the queue's chunks of hours that ended by ``before``: a
        horizon of a queue record that is durable in the changelog, so that no replay,
        whatever record it starts from, can need them again (a worker's own store may be
        ahead of its changelog, deletions included)."""
        if before == float("-inf"):
            return
        limit = math.floor(before - HOUR) + 1
        floor = self._floor.get(queue_id, 0)
        if limit <= floor:
            return
        for raw in self._index.queue_chunks(self.kind, queue_id, limit, floor):
            key = self._key(raw)
            self._forget(key)
            self._deleted.append(key)
        self._floor[queue_id] = limit  # deleted by flush_deletes, in this same commit

    def flush(self) -> None:
        """Write the staged chunks to the table, each as one record or, when larger than
        ``MAX_RECORD_BYTES``, as several (its parts, keyed ``...|batch.1``, ``...|batch.2``
        after the first): a state record must stay far below the producer's request size
        whatever the input. Parts of an earlier, cut-short application of the message that
        this one does not write again are deleted, so none can outlive it."""
        for key, chunk in self._staged.items():
            parts = split(chunk)
            for i, part in enumerate(parts):
                part_key = key.with_part(i)
                self._table[str(part_key)] = part
                self._remember(part_key, part)
            stale = f"{key.text}{PART_SEP}"
            for raw in self._index.batch_chunks(key.batch):
                if raw.startswith(stale) and self._key(raw).part >= len(parts):
                    self._forget(self._key(raw))
                    self._table.pop(raw, None)
        self._staged.clear()
        self._staged_ids.clear()

    def flush_deletes(self) -> None:
        """Delete the purged chunks from the table (after the queue's record is written)."""
        for key in self._deleted:
            self._table.pop(str(key), None)
        self._deleted.clear()
