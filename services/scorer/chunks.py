"""Write-once chunked id stores: the decision side of the join, the verdicts counted, and
the verdicts waiting for their decision.

Storing one table entry per decision would cost one changelog record per decision, the
dominant cost at 10^8 decisions a day. Instead each batch's new ids of a queue become one
*chunk*: one table entry, one changelog record. A chunk's key is
``kind|queue|hour|partition-offset``: its store, its queue, the hour of the queue's
watermark when it was written, and the input message it came from. So a chunk is unique
without any counter in the queue's state, is identical when its message is replayed (its
records merge into the same chunk, never replace it), and expires by hour.

Writes are *staged*: ``add`` makes records visible to lookups at once, ``flush`` writes them
to the table (the scorer does so before the queue's own record, see ``core.py``), and
``discard`` drops them after a failed batch. An in-memory index (id -> chunk) is derived
state, rebuilt from the table after recovery, a rebalance or a discard.

Exactly-once effect under replay rests on two rules, both tested in
``tests/unit/test_scorer_crash_points.py``:

- ``forget_batch``: a message whose earlier application was cut short (its chunks reached
  the table, the queue's record did not) is first forgotten, then applied again from the
  queue's last record, so it finds exactly what it found the first time.
- expiry is *logical*: a chunk of an hour before the queue's ``alive_from`` is absent for
  lookups whether or not its deletion reached the table yet.

Records are small lists; their first element is the record's event time (epoch seconds).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

Record = list[Any]
Chunk = dict[str, Any]  # {"q": queue_id, "r": {id: Record}}
HOUR = 3600


@dataclass(frozen=True, slots=True)
class ChunkKey:
    kind: str
    queue_id: str
    hour: int
    batch: str

    def __str__(self) -> str:
        return f"{self.kind}|{self.queue_id}|{self.hour}|{self.batch}"

    @classmethod
    def parse(cls, key: str) -> ChunkKey:
        """Parse a chunk key; the queue id sits between the first separator and the last two,
        so even an id with a ``|`` (which the queue-id grammar refuses) cannot shift the
        fields."""
        kind, rest = key.split("|", 1)
        queue_id, hour, batch = rest.rsplit("|", 2)
        return cls(kind, queue_id, int(hour), batch)


def hour_of(t: float) -> int:
    return int(t // HOUR) * HOUR


class ChunkStore:
    def __init__(self, table: MutableMapping[str, Any], kind: str) -> None:
        self._table = table
        self.kind = kind  # key prefix: several stores share one table
        self._index: dict[str, ChunkKey] = {}
        self._chunks: dict[ChunkKey, Chunk] = {}  # staged and stored chunks, by key
        # queue -> hour -> its chunks: expiry looks at one queue's hours, not every group
        self._groups: dict[str, dict[int, set[ChunkKey]]] = defaultdict(dict)
        self._by_batch: dict[str, set[ChunkKey]] = defaultdict(set)
        self._staged: set[ChunkKey] = set()
        self._deleted: list[ChunkKey] = []
        self._stale = True

    # -- index ------------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Forget the index (partitions moved, or a batch failed); rebuilt on next use."""
        self._stale = True
        self._staged.clear()
        self._deleted.clear()

    def ensure_index(self) -> None:
        if not self._stale:
            return
        self._index, self._chunks = {}, {}
        self._groups, self._by_batch = defaultdict(dict), defaultdict(set)
        prefix = self.kind + "|"
        for key, chunk in list(self._table.items()):
            if isinstance(key, str) and key.startswith(prefix):
                self._register(ChunkKey.parse(key), chunk)
        self._stale = False

    def _register(self, key: ChunkKey, chunk: Chunk) -> None:
        self._chunks[key] = chunk
        self._groups[key.queue_id].setdefault(key.hour, set()).add(key)
        self._by_batch[key.batch].add(key)
        for record_id in chunk["r"]:
            self._index[record_id] = key

    def _unregister(self, key: ChunkKey) -> Chunk | None:
        chunk = self._chunks.pop(key, None)
        self._groups.get(key.queue_id, {}).get(key.hour, set()).discard(key)
        self._by_batch.get(key.batch, set()).discard(key)
        if chunk is not None:
            for record_id in chunk["r"]:
                if self._index.get(record_id) == key:
                    del self._index[record_id]
        return chunk

    def forget_batch(self, batch: str) -> None:
        """Drop from the index what an earlier, cut-short application of ``batch`` stored:
        it is about to be applied again and must not find its own records."""
        self.ensure_index()
        for key in list(self._by_batch.pop(batch, ())):
            self._unregister(key)

    def has_batch(self, batch: str) -> bool:
        self.ensure_index()
        return bool(self._by_batch.get(batch))

    def chunks(self, queue_id: str | None = None) -> Iterator[tuple[ChunkKey, Chunk]]:
        self.ensure_index()
        for key, chunk in self._chunks.items():
            if queue_id is None or key.queue_id == queue_id:
                yield key, chunk

    def __len__(self) -> int:
        self.ensure_index()
        return len(self._index)

    # -- reads ------------------------------------------------------------------------------
    def key_of(self, record_id: str, alive_from: float) -> ChunkKey | None:
        """The chunk holding ``record_id``, unless it expired (logically) at ``alive_from``."""
        self.ensure_index()
        key = self._index.get(record_id)
        if key is None or key.hour + HOUR <= alive_from:
            return None
        return key

    def get(self, record_id: str, alive_from: float = float("-inf")) -> Record | None:
        key = self.key_of(record_id, alive_from)
        if key is None:
            return None
        record: Record | None = self._chunks[key]["r"].get(record_id)
        return record

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
        self.ensure_index()
        fresh = {k: r for k, r in records.items() if self.key_of(k, alive_from) is None}
        if not fresh:
            return fresh
        key = ChunkKey(self.kind, queue_id, hour_of(watermark), batch)
        existing = self._chunks.get(key)
        chunk: Chunk = {"q": queue_id, "r": {**(existing["r"] if existing else {}), **fresh}}
        self._register(key, chunk)
        self._staged.add(key)
        return fresh

    def expire(self, queue_id: str, before: float) -> list[tuple[ChunkKey, Chunk]]:
        """Stage the deletion of the queue's chunks of hours that ended by ``before``;
        returns them (the pending store counts what expired unanswered)."""
        self.ensure_index()
        gone = []
        hours = self._groups.get(queue_id, {})
        for hour in [h for h in hours if h + HOUR <= before]:
            for key in list(hours.pop(hour)):
                chunk = self._unregister(key)
                self._staged.discard(key)
                if chunk is not None:
                    gone.append((key, chunk))
                    self._deleted.append(key)
        return gone

    def flush(self) -> None:
        """Write the staged chunks to the table."""
        for key in self._staged:
            chunk = self._chunks.get(key)
            if chunk is not None:
                self._table[str(key)] = chunk
        self._staged.clear()

    def flush_deletes(self) -> None:
        """Delete the expired chunks from the table (after the queue's record is written:
        until then a replay may still need them, and logical expiry hides them anyway)."""
        for key in self._deleted:
            self._table.pop(str(key), None)
        self._deleted.clear()
