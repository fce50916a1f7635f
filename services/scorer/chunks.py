"""Write-once chunked id stores: the decision side of the join, and the verdicts counted.

Storing one table entry per decision would cost one changelog record per decision, the
dominant cost at 10^8 decisions a day. Instead each batch's new ids of a queue become one
*chunk*: one table entry, written once, one changelog record. An in-memory index maps id
to chunk; it is derived state, rebuilt from the table after recovery or a rebalance.
Chunks expire whole when their newest record is older than the store's time-to-live.

Records are small lists; their first element is the record's event time (epoch seconds).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

Record = list[Any]
Chunk = dict[str, Any]  # {"q": queue_id, "t": newest record time, "r": {id: Record}}


class ChunkStore:
    def __init__(self, table: MutableMapping[str, Any], kind: str) -> None:
        self._table = table
        self._kind = kind  # key prefix: several stores can share one table
        self._index: dict[str, str] = {}
        self._stale = True

    def invalidate(self) -> None:
        """Forget the index (partitions moved); it is rebuilt on next use."""
        self._stale = True

    def _ensure_index(self) -> None:
        if not self._stale:
            return
        prefix = self._kind + "|"
        self._index = {
            record_id: key
            for key, chunk in list(self._table.items())
            if key.startswith(prefix)
            for record_id in chunk["r"]
        }
        self._stale = False

    def __len__(self) -> int:
        self._ensure_index()
        return len(self._index)

    def __contains__(self, record_id: str) -> bool:
        self._ensure_index()
        return record_id in self._index

    def chunk_key(self, queue_id: str, seq: int) -> str:
        return f"{self._kind}|{queue_id}|{seq}"

    def add(self, key: str, queue_id: str, records: dict[str, Record]) -> dict[str, Record]:
        """Store the records not known yet as one chunk under ``key``; returns them."""
        self._ensure_index()
        fresh = {k: r for k, r in records.items() if k not in self._index}
        if fresh:
            self._table[key] = {"q": queue_id, "t": max(r[0] for r in fresh.values()), "r": fresh}
            for record_id in fresh:
                self._index[record_id] = key
        return fresh

    def get(self, record_id: str) -> Record | None:
        self._ensure_index()
        key = self._index.get(record_id)
        if key is None:
            return None
        chunk = self._table.get(key)
        return None if chunk is None else chunk["r"].get(record_id)

    def drop(self, key: str) -> None:
        chunk = self._table.get(key)
        if chunk is not None:
            for record_id in chunk["r"]:
                self._index.pop(record_id, None)
            del self._table[key]
