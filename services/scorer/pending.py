"""Verdicts waiting for their decision (a verdict may arrive first), kept in chunks.

The waiting verdicts of a batch become one ``p|...`` chunk (``chunks.py``), never part of the
queue's own record, so a queue flooded with orphan verdicts cannot grow its record past the
producer's request size. Which of them still wait is derived: a chunk's verdict waits until
its id is counted (its decision arrived) or its chunk expires (it is then dropped and
counted as such). Which verdicts wait is derived per queue, from its pending chunks, the first
time the queue is seen after a start, a rebalance or a failed batch.
"""

from __future__ import annotations

from collections.abc import Callable, Container, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from services.scorer.chunks import HOUR, ChunkStore, Record
from services.scorer.index import ChunkIndex

# [reviewed_at, decision_id, outcome, error_type, sample_type]
Horizons = Callable[[str], tuple[float, float]]  # queue -> (alive_from, pending_alive_from)


@dataclass(slots=True)
class _Waiting:
    by_verdict: dict[str, str] = field(default_factory=dict)  # verdict_id -> decision_id
    by_decision: dict[str, dict[str, Record]] = field(default_factory=dict)

    def put(self, verdict_id: str, record: Record) -> None:
        decision_id = record[1]
        self.by_verdict[verdict_id] = decision_id
        self.by_decision.setdefault(decision_id, {})[verdict_id] = record

    def drop(self, verdict_id: str) -> bool:
        decision_id = self.by_verdict.pop(verdict_id, None)
        if decision_id is None:
            return False
        waiting = self.by_decision.get(decision_id, {})
        waiting.pop(verdict_id, None)
        if not waiting:
            self.by_decision.pop(decision_id, None)
        return True


class PendingStore:
    def __init__(
        self,
        table: MutableMapping[str, Any],
        index: ChunkIndex,
        counted: ChunkStore,
        horizons: Horizons,
        applied: Callable[[str], tuple[int, int]],
    ) -> None:
        self.chunks = ChunkStore(table, index, "p", applied)
        self._counted = counted
        self._horizons = horizons
        self._queues: dict[str, _Waiting] = {}  # loaded queues
        self._staged: dict[str, dict[str, Record]] = {}  # queue -> this batch's new waiters

    def invalidate(self) -> None:
        self._queues.clear()
        self._staged.clear()
        self.chunks.invalidate()

    def _waiting(self, queue_id: str) -> _Waiting:
        w = self._queues.get(queue_id)
        if w is not None:
            return w
        w = self._queues[queue_id] = _Waiting()
        alive_from, pending_alive_from = self._horizons(queue_id)
        for key, chunk in self.chunks.chunks(queue_id):
            if key.hour + HOUR <= pending_alive_from:
                continue  # expired; its deletion may not have reached the table
            for verdict_id, record in chunk["r"].items():
                if self._counted.key_of(queue_id, verdict_id, alive_from) is None:
                    w.put(verdict_id, record)
        return w

    def count(self, queue_id: str) -> int:
        return len(self._waiting(queue_id).by_verdict)

    def waiting(self, queue_id: str, verdict_id: str) -> bool:
        return verdict_id in self._waiting(queue_id).by_verdict

    def hold(self, queue_id: str, verdict_id: str, record: Record) -> None:
        self._waiting(queue_id).put(verdict_id, record)
        self._staged.setdefault(queue_id, {})[verdict_id] = record

    def decisions_waited_for(self, queue_id: str) -> Container[str]:
        """The ids of the decisions the queue's waiting verdicts wait for (live: a
        ``release`` takes its decision out), to skip ``release`` for the others."""
        return self._waiting(queue_id).by_decision

    def release(self, queue_id: str, decision_id: str) -> list[tuple[str, Record]]:
        """The verdicts that waited for ``decision_id``; they no longer wait."""
        w = self._waiting(queue_id)
        if decision_id not in w.by_decision:
            return []
        released = sorted(w.by_decision[decision_id].items())
        for verdict_id, _ in released:
            w.drop(verdict_id)
            self._staged.get(queue_id, {}).pop(verdict_id, None)
        return released

    def stage(self, queue_id: str, watermark: float, batch: str, pending_alive_from: float) -> None:
        """Stage this batch's new waiters as one chunk."""
        new = self._staged.pop(queue_id, None)
        if new:
            self.chunks.add(queue_id, watermark, batch, new, pending_alive_from)

    def expire(self, queue_id: str, before: float) -> int:
        """Expire the chunks of hours ended by ``before``; returns how many of their verdicts
        were still waiting (dropped)."""
        w = self._waiting(queue_id)
        dropped = 0
        for _, chunk in self.chunks.expire(queue_id, before):
            for verdict_id in chunk["r"]:
                if w.drop(verdict_id):
                    dropped += 1
        return dropped
