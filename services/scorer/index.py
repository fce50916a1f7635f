"""The secondary index over the scorer's chunks: which chunk holds a record id, which chunks
a batch wrote, a queue's chunks in hour order, and the queues with a record.

The index is *derived* from the table and maintained by whatever stores the table, in the
same write as the chunk itself: ``services/scorer/store.py`` keeps it inside the RocksDB of
each partition (one atomic write batch per chunk, also when the table is recovered from its
changelog), ``IndexedTable`` below keeps it in memory for tests and benchmarks. So the index
is never behind or ahead of the chunks it describes, needs no rebuild after a restart, and
does not have to fit in memory: nothing is read at start-up.

Only chunk keys (``kind|queue|hour|batch[.part]``, see ``chunks.py``) and queue records (``q|queue``)
are indexed. Record ids are scoped by queue: the same decision id in two queues is two
decisions (queues share partitions). The id index is exact: rewriting a chunk (the replay
of a cut-short batch) first removes the entries its earlier content made, so an entry names
the chunk that holds its id now.

An entry of a decision id (kinds in ``RECORD_KINDS``) also carries the decision itself: the
join reads a verdict's decision from the one index lookup it makes anyway, instead of
decoding the whole chunk (a batch's decisions) when the chunk is not among the recently
read, which at 10^8 decisions a day it mostly is not. An entry written before entries
carried their records has none; readers then read the chunk, as before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any, Protocol, runtime_checkable

CHUNK_KINDS = frozenset({"d", "v", "p"})
# kinds whose id entries carry their record: a decision is read by id (the join); the ids of
# the verdicts counted and waiting are only checked for presence
RECORD_KINDS = frozenset({"d"})
Entry = tuple[str, list[Any] | None]  # (chunk key, the record if the entry carries it)
QUEUE_PREFIX = "q|"


PART_SEP = "."  # between a chunk key's batch and its part number (parts after the first)


def split_batch(field: str) -> tuple[str, int]:
    """The input message (``partition-offset``) and part number of a chunk key's last field:
    ``3-17`` is part 0 of message 3-17, ``3-17.2`` its part 2."""
    batch, _, part = field.partition(PART_SEP)
    return batch, int(part) if part else 0


def chunk_fields(key: str) -> tuple[str, str, int, str, int] | None:
    """(kind, queue, hour, batch, part) of a chunk key, or None for any other key. The queue
    id sits between the first separator and the last two, so it cannot shift the fields."""
    kind, sep, rest = key.partition("|")
    if not sep or kind not in CHUNK_KINDS:
        return None
    queue_id, hour, field = rest.rsplit("|", 2)
    batch, part = split_batch(field)
    return kind, queue_id, int(hour), batch, part


@runtime_checkable
class ChunkIndex(Protocol):
    def chunk_of(self, kind: str, queue_id: str, record_id: str) -> str | None:
        """The key of the queue's chunk the record id was last written in, if any."""

    def entries_of(
        self, kind: str, queue_id: str, record_ids: Iterable[str]
    ) -> dict[str, Entry | None]:
        """The index entries of many ids of one queue at once (a batch's), by id: the key
        of the chunk each was last written in, and for ``RECORD_KINDS`` the record."""

    def batch_chunks(self, batch: str) -> list[str]:
        """Keys of the chunks written from input message ``batch`` (``partition-offset``),
        every part of each."""

    def queue_chunks(
        self, kind: str, queue_id: str, before_hour: int, from_hour: int = 0
    ) -> list[str]:
        """Keys of the queue's chunks of ``kind`` with ``from_hour <= hour < before_hour``
        (a scan that starts past the hours already deleted need not step over their
        deletions)."""

    def queue_ids(self) -> list[str]:
        """Every queue with a record in the table."""


class IndexedTable(MutableMapping[str, Any]):
    """A mapping that maintains the chunk index in memory on every write, over a plain
    mapping it writes through to (the scorer's state in unit tests, the crash-point test and
    the pure benchmarks). What ``data`` holds already is indexed at once."""

    def __init__(self, data: MutableMapping[str, Any] | None = None) -> None:
        self.data: MutableMapping[str, Any] = {} if data is None else data
        self._ids: dict[tuple[str, str, str], Entry] = {}
        self._batches: dict[str, set[str]] = defaultdict(set)
        self._hours: dict[tuple[str, str], dict[int, set[str]]] = defaultdict(dict)
        self._queues: set[str] = set()
        for k, v in list(self.data.items()):
            self._index(k, v)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self.data:
            self._unindex(key)
        self.data[key] = value
        self._index(key, value)

    def _index(self, key: str, value: Any) -> None:
        fields = chunk_fields(key)
        if fields is not None:
            kind, queue_id, hour, batch, _ = fields
            carried = kind in RECORD_KINDS
            for record_id, record in value["r"].items():
                self._ids[(kind, queue_id, record_id)] = (key, record if carried else None)
            self._batches[batch].add(key)
            self._hours[(kind, queue_id)].setdefault(hour, set()).add(key)
        elif key.startswith(QUEUE_PREFIX):
            self._queues.add(key[len(QUEUE_PREFIX) :])

    def __delitem__(self, key: str) -> None:
        self._unindex(key)
        del self.data[key]

    def _unindex(self, key: str) -> None:
        fields = chunk_fields(key)
        if fields is not None:
            kind, queue_id, hour, batch, _ = fields
            for record_id in self.data[key]["r"]:
                entry = self._ids.get((kind, queue_id, record_id))
                if entry is not None and entry[0] == key:
                    del self._ids[(kind, queue_id, record_id)]
            self._batches[batch].discard(key)
            if not self._batches[batch]:
                del self._batches[batch]
            hours = self._hours[(kind, queue_id)]
            hours[hour].discard(key)
            if not hours[hour]:
                del hours[hour]
        elif key.startswith(QUEUE_PREFIX):
            self._queues.discard(key[len(QUEUE_PREFIX) :])

    # -- ChunkIndex -------------------------------------------------------------------------
    def chunk_of(self, kind: str, queue_id: str, record_id: str) -> str | None:
        entry = self._ids.get((kind, queue_id, record_id))
        return None if entry is None else entry[0]

    def entries_of(
        self, kind: str, queue_id: str, record_ids: Iterable[str]
    ) -> dict[str, Entry | None]:
        ids = self._ids
        return {r: ids.get((kind, queue_id, r)) for r in record_ids}

    def batch_chunks(self, batch: str) -> list[str]:
        return sorted(self._batches.get(batch, ()))

    def queue_chunks(
        self, kind: str, queue_id: str, before_hour: int, from_hour: int = 0
    ) -> list[str]:
        hours = self._hours.get((kind, queue_id), {})
        return sorted(k for h in sorted(hours) if from_hour <= h < before_hour for k in hours[h])

    def queue_ids(self) -> list[str]:
        return sorted(self._queues)
