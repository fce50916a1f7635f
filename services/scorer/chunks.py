"""Write-once chunked id stores: the decision side of the join, and the verdicts counted.

Storing one table entry per decision would cost one changelog record per decision, the
dominant cost at 10^8 decisions a day. Instead each batch's new ids of a queue become one
*chunk*: one table entry, one changelog record. A chunk's key names its queue, the hour of
the queue's watermark when it was written, and the batch it came from
(``kind|queue|hour|batch``): unique without any counter in the queue's state, identical
when a batch is replayed (its records then merge into the same chunk, never replace it),
and expirable by hour. An in-memory index (id -> chunk, and (queue, hour) -> chunks) is
derived state, rebuilt from the table after recovery or a rebalance.

Records are small lists; their first element is the record's event time (epoch seconds).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import MutableMapping
from typing import Any

Record = list[Any]
Chunk = dict[str, Any]  # {"q": queue_id, "r": {id: Record}}
HOUR = 3600


class ChunkStore:
    def __init__(self, table: MutableMapping[str, Any], kind: str) -> None:
        self._table = table
        self._kind = kind  # key prefix: several stores share one table
        self._index: dict[str, str] = {}
        self._groups: dict[tuple[str, int], set[str]] = defaultdict(set)
        self._stale = True

    def invalidate(self) -> None:
        """Forget the index (partitions moved); it is rebuilt on next use."""
        self._stale = True

    def _ensure_index(self) -> None:
        if not self._stale:
            return
        self._index = {}
        self._groups = defaultdict(set)
        prefix = self._kind + "|"
        for key, chunk in list(self._table.items()):
            if key.startswith(prefix):
                self._register(key, chunk)
        self._stale = False

    def _register(self, key: str, chunk: Chunk) -> None:
        _, queue_id, hour, _ = key.split("|", 3)
        self._groups[(queue_id, int(hour))].add(key)
        for record_id in chunk["r"]:
            self._index[record_id] = key

    def __len__(self) -> int:
        self._ensure_index()
        return len(self._index)

    def __contains__(self, record_id: str) -> bool:
        self._ensure_index()
        return record_id in self._index

    def add(
        self, queue_id: str, watermark: float, batch_id: str, records: dict[str, Record]
    ) -> dict[str, Record]:
        """Store the records not known yet; returns them."""
        self._ensure_index()
        fresh = {k: r for k, r in records.items() if k not in self._index}
        if not fresh:
            return fresh
        hour = int(watermark // HOUR) * HOUR
        key = f"{self._kind}|{queue_id}|{hour}|{batch_id}"
        existing = self._table.get(key)
        chunk: Chunk = {"q": queue_id, "r": {**(existing["r"] if existing else {}), **fresh}}
        self._table[key] = chunk
        self._register(key, chunk)
        return fresh

    def get(self, record_id: str) -> Record | None:
        self._ensure_index()
        key = self._index.get(record_id)
        if key is None:
            return None
        chunk = self._table.get(key)
        return None if chunk is None else chunk["r"].get(record_id)

    def expire(self, queue_id: str, before: float) -> int:
        """Drop the queue's chunks written in hours that ended before ``before``."""
        self._ensure_index()
        dropped = 0
        for group in [g for g in self._groups if g[0] == queue_id and g[1] + HOUR <= before]:
            for key in self._groups.pop(group):
                chunk = self._table.get(key)
                if chunk is not None:
                    for record_id in chunk["r"]:
                        self._index.pop(record_id, None)
                    del self._table[key]
                    dropped += 1
        return dropped
