"""The decision side of the verdict-to-decision join, stored in chunks.

Storing one table entry per decision would cost one changelog record per decision, the
dominant cost at 10^8 decisions a day. Instead each batch of a queue's decisions becomes one
*chunk* (one table entry, one changelog record), and an in-memory index maps decision id to
chunk. The index is derived state: it is rebuilt from the table after recovery or rebalance.

A decision record is ``[decided_at, site_id, moderator_id, policy_id, severity, verdict_ids]``;
``verdict_ids`` makes counting a verdict idempotent (a replayed verdict is not counted twice).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

Record = list[Any]
Chunk = dict[str, Any]  # {"q": queue_id, "t": newest decided_at, "d": {decision_id: Record}}

DECIDED_AT, SITE, MODERATOR, POLICY, SEVERITY, VERDICTS = range(6)


class DecisionStore:
    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self._table = table
        self._index: dict[str, str] = {}
        self._stale = True
        self._dirty: dict[str, Chunk] = {}

    def invalidate(self) -> None:
        """Forget the index (partitions moved); it is rebuilt on next use."""
        self._stale = True
        self._dirty.clear()

    def _ensure_index(self) -> None:
        if not self._stale:
            return
        self._index = {}
        for key, chunk in list(self._table.items()):
            for decision_id in chunk["d"]:
                self._index[decision_id] = key
        self._stale = False

    def __len__(self) -> int:
        self._ensure_index()
        return len(self._index)

    def add(self, chunk_key: str, queue_id: str, records: dict[str, Record]) -> dict[str, Record]:
        """Store new decisions as one chunk; returns the ones that were not known yet."""
        self._ensure_index()
        fresh = {k: r for k, r in records.items() if k not in self._index}
        if not fresh:
            return fresh
        newest = max(r[DECIDED_AT] for r in fresh.values())
        chunk: Chunk = {"q": queue_id, "t": newest, "d": fresh}
        self._dirty[chunk_key] = chunk
        for decision_id in fresh:
            self._index[decision_id] = chunk_key
        return fresh

    def get(self, decision_id: str) -> Record | None:
        self._ensure_index()
        key = self._index.get(decision_id)
        if key is None:
            return None
        chunk = self._dirty.get(key) or self._table.get(key)
        if chunk is None:
            return None
        record: Record | None = chunk["d"].get(decision_id)
        return record

    def add_verdict(self, decision_id: str, verdict_id: str) -> bool:
        """Record that ``verdict_id`` judged the decision; False if it was already counted."""
        key = self._index[decision_id]
        chunk = self._dirty.get(key)
        if chunk is None:
            chunk = self._table[key]
            self._dirty[key] = chunk
        verdicts: list[str] = chunk["d"][decision_id][VERDICTS]
        if verdict_id in verdicts:
            return False
        verdicts.append(verdict_id)
        return True

    def drop(self, chunk_key: str) -> None:
        chunk = self._dirty.pop(chunk_key, None) or self._table.get(chunk_key)
        if chunk is not None:
            for decision_id in chunk["d"]:
                self._index.pop(decision_id, None)
        if chunk_key in self._table:
            del self._table[chunk_key]

    def flush(self) -> None:
        """Write changed chunks to the table (one changelog record each)."""
        for key, chunk in self._dirty.items():
            self._table[key] = chunk
        self._dirty.clear()
