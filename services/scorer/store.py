"""The scorer's table store: Faust's RocksDB store (through rocksdict) that also keeps the
chunk index (``index.py``) in each partition's database.

Every chunk written, whether by the agent or by the recovery of the table from its
changelog, goes into the partition's RocksDB in one write batch together with its index
entries; a deleted chunk takes its entries with it. So after a crash the index is exactly as
current as the chunks, a restart reads nothing up front, and a revoked partition's state and
index leave together (Faust closes that partition's database).

Index entries live under keys that begin with a NUL byte, which no JSON-encoded table key
does, and are hidden from the table's own iteration:

- ``\\0k|kind|queue|record_id`` -> the chunk's table key (JSON bytes): record ids are
  scoped by queue (queue ids hold no ``|``); for a kind in ``index.RECORD_KINDS`` (the
  decisions) followed by a NUL byte and the record's JSON (an entry written before entries
  carried records has none, and its reader decodes the chunk instead);
- ``\\0b|batch|<chunk key>`` -> empty: the chunks written from one input message (every
  part of each: a chunk larger than ``chunks.MAX_RECORD_BYTES`` is written as several).

A database written before ids were scoped by queue has ``\\0i|kind|record_id`` entries
instead; ``upgrade_index`` rewrites them when the partition's database is opened (one pass
over its chunks, restartable: the old entries go last).

Chunk keys are JSON strings ``"kind|queue|hour|batch[.part]"`` with a zero-padded hour, so one
queue's chunks of one kind sort by hour, and queue records ``"q|queue"`` sort together:
both are read by seeking to a prefix.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import Any, cast

import orjson
from faust.stores import STORES, rocksdb
from faust.streams import current_event
from faust.types import TP, EventT
from rocksdict import (
    AccessType,
    BlockBasedOptions,
    Cache,
    DBCompressionType,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
)

from services.scorer.index import CHUNK_KINDS, QUEUE_PREFIX, RECORD_KINDS, Entry, split_batch

log = logging.getLogger(__name__)
NUL = b"\x00"
ID_PREFIX = NUL + b"k|"
OLD_ID_PREFIX = NUL + b"i|"  # (kind, record_id) entries, before ids were scoped by queue
UPGRADE_WRITE_BATCH = 10_000
BATCH_PREFIX = NUL + b"b|"
_CHUNK_PREFIXES = tuple(f'"{k}|'.encode() for k in sorted(CHUNK_KINDS))


# Faust's json serializer (faust.utils.json.dumps): the bytes a table value had before
# ``JsonValues``, so a store or changelog written then reads the same now
VALUE_JSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z


class JsonValues(MutableMapping[str, Any]):
    """The worker's table (``value_serializer="raw"``) with its values encoded here, once.

    With Faust's json value serializer each write encoded the value twice, once for the
    RocksDB store and once for the changelog record, and each read decoded it through a
    str; here the value is encoded once (the same bytes go to the store and to the
    changelog) and decoded straight from bytes. The bytes are the json serializer's, so a
    store or a changelog written before reads the same (``tests/unit/test_scorer_store.py``).
    """

    def __init__(self, table: MutableMapping[str, bytes]) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        return orjson.loads(self.table[key])

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.table.get(key)
        return default if raw is None else orjson.loads(raw)

    def __setitem__(self, key: str, value: Any) -> None:
        global _encoded
        raw = orjson.dumps(value, option=VALUE_JSON)
        _encoded = (raw, value)
        self.table[key] = raw

    def __delitem__(self, key: str) -> None:
        del self.table[key]

    def __contains__(self, key: object) -> bool:
        return key in self.table

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)


# The value ``JsonValues`` encoded last, beside its bytes. Writing them to the store follows
# at once, on the same thread, and the index entries of a chunk are made from its records:
# ``_Batch.set`` takes them from here instead of decoding the bytes it was handed (2.4% of
# the worker's time, bench/README.md). It is matched by identity, and one tuple is read and
# replaced at once: bytes from anywhere else (a changelog's recovery) are decoded.
_encoded: tuple[object, Any] = (object(), None)


def _records(value: bytes) -> dict[str, Any]:
    """A chunk's records (its ``r``), from the bytes written."""
    raw, decoded = _encoded
    records: dict[str, Any] = (decoded if raw is value else orjson.loads(value))["r"]
    return records


def _json_key(key: str) -> bytes:
    return orjson.dumps(key)


def _chunk_parts(key: bytes) -> tuple[str, str, str] | None:
    """(kind, queue, batch) of a JSON-encoded chunk key, or None; ``batch`` is the input
    message (``partition-offset``), whichever part of its chunk the key names."""
    if not key.startswith(_CHUNK_PREFIXES):
        return None
    text: str = orjson.loads(key)
    queue_id, _, field = text[2:].rsplit("|", 2)
    return text[0], queue_id, split_batch(field)[0]


def _key_text(raw: bytes) -> str:
    """A table key (JSON) as its text: the chunk keys have nothing to escape (queue ids
    follow the key-id grammar), so the quotes are cut off; anything else is parsed."""
    if raw[:1] == b'"' and b"\\" not in raw:
        return raw[1:-1].decode()
    key: str = orjson.loads(raw)
    return key


def _entry(value: bytes | None) -> Entry | None:
    """An id entry's value as (chunk key, its record or None): the key's JSON, then, if the
    entry carries the record, a NUL byte (never in JSON) and the record's JSON."""
    if value is None:
        return None
    cut = value.find(NUL)
    if cut < 0:
        return _key_text(value), None
    return _key_text(value[:cut]), orjson.loads(value[cut + 1 :])


def _names(entry: bytes | None, key: bytes) -> bool:
    """Does the id entry name the chunk ``key`` (JSON)?"""
    return (
        entry is not None
        and entry[: len(key)] == key
        and entry[len(key) : len(key) + 1] in (b"", NUL)
    )


def _id_key(kind: str, queue_id: str, record_id: str) -> bytes:
    return ID_PREFIX + f"{kind}|{queue_id}|{record_id}".encode()


class _Batch:
    """One atomic write batch, and reads that see the writes staged in it."""

    def __init__(self, db: Rdict) -> None:
        self.db = db
        self.wb = WriteBatch(raw_mode=True)
        self.view: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.view:
            return self.view[key]
        value: bytes | None = self.db.get(key)
        return value

    def put(self, key: bytes, value: bytes) -> None:
        self.wb.put(key, value)
        self.view[key] = value

    def delete(self, key: bytes) -> None:
        self.wb.delete(key)
        self.view[key] = None

    def set(self, key: bytes, value: bytes | None) -> None:
        """A table write, with its index entries."""
        parts = _chunk_parts(key)
        if parts is not None:
            kind, queue_id, batch = parts
            old = self.get(key)
            if old is not None:
                for record_id in orjson.loads(old)["r"]:
                    id_key = _id_key(kind, queue_id, record_id)
                    if _names(self.get(id_key), key):  # not if a newer chunk holds the id now
                        self.delete(id_key)
                self.delete(BATCH_PREFIX + batch.encode() + b"|" + key)
        if value is None:
            self.delete(key)
            return
        self.put(key, value)
        if parts is not None:
            kind, queue_id, batch = parts
            prefix = _id_key(kind, queue_id, "")
            put, view = self.wb.put, self.view  # (self.put, inlined: one entry per id)
            records = _records(value)
            if kind in RECORD_KINDS:
                head, dumps = key + NUL, orjson.dumps
                for record_id, record in records.items():
                    id_key = prefix + record_id.encode()
                    entry = head + dumps(record)
                    put(id_key, entry)
                    view[id_key] = entry
            else:
                for record_id in records:
                    id_key = prefix + record_id.encode()
                    put(id_key, key)
                    view[id_key] = key
            self.put(BATCH_PREFIX + batch.encode() + b"|" + key, b"")


def _prefixed(db: Rdict, prefix: bytes, start: bytes | None = None) -> Iterator[bytes]:
    """Keys with ``prefix``, from ``start`` (at or after the prefix) on."""
    it = db.iter()
    it.seek(start or prefix)
    while it.valid():
        key: bytes = it.key()
        if not key.startswith(prefix):
            return
        yield key
        it.next()


def upgrade_index(db: Rdict) -> int:
    """Rewrite the id index of a database written before record ids were scoped by queue
    (``\\0i|`` entries): the new entries from every chunk, then the old ones deleted, in
    bounded write batches, so an interrupted upgrade runs again from the start. Returns the
    number of chunks indexed (0: nothing to upgrade)."""
    if next(_prefixed(db, OLD_ID_PREFIX), None) is None:
        return 0
    chunks = 0
    wb, ops = WriteBatch(raw_mode=True), 0
    for prefix in _CHUNK_PREFIXES:
        for key in _prefixed(db, prefix):  # (an iterator reads a snapshot)
            parts = _chunk_parts(key)
            value = db.get(key)
            if parts is None or value is None:
                continue
            kind, queue_id, _ = parts
            chunks += 1
            for record_id in orjson.loads(value)["r"]:
                wb.put(_id_key(kind, queue_id, record_id), key)
                ops += 1
            if ops >= UPGRADE_WRITE_BATCH:
                db.write(wb)
                wb, ops = WriteBatch(raw_mode=True), 0
    for old in _prefixed(db, OLD_ID_PREFIX):
        wb.delete(old)
        ops += 1
        if ops >= UPGRADE_WRITE_BATCH:
            db.write(wb)
            wb, ops = WriteBatch(raw_mode=True), 0
    db.write(wb)
    return chunks


# How the tables are laid out on disk. Data blocks of 16 KiB, uncompressed (Faust's: 4 KiB,
# Snappy). The join's lookups land all over the id index (ids are random, not in time
# order), so most read a block that the 8 MiB cache does not hold: uncompressed it is a
# copy from the operating system's page cache instead of a Snappy decode as well, and larger
# blocks make the index blocks that share the cache fewer. In one process at 2,000,000
# events (bench/README.md) the state path spent 28.0-29.7 µs an event against 40.6 with
# Faust's blocks; the files are ~2.3x larger on disk (360 MB against 156 MB there).
# Bloom filters and table files are Faust's (3 bits a key, 64 MiB). Larger filters need
# smaller files: a file's filter is one block, read through the cache, whose shards hold
# 512 KiB (8 MiB / 16), and a 64 MiB file's filter at 10 bits a key (~750 KiB) fits none,
# so every lookup reads it again. 10 bits, 8 MiB files and 4 KiB blocks make a lookup
# 0.75x (a hit) and 0.5x (a miss) as costly, but were not faster end to end (bench/README.md, "Bloom filters
# that fit the cache"; bench/index_lookups.py).
BLOCK_SIZE = 16 * 1024
BLOOM_BITS = 3
TARGET_FILE_BYTES = 64 * 1024 * 1024


class BoundedRocksDBOptions(rocksdb.RocksDBOptions):
    """Faust's options, with each table file's index and filter blocks kept in the block
    cache (and so bounded by it) instead of beside it, where their memory grows with the
    number and size of the files; level-0 ones stay pinned there, as they are read on
    every lookup. Blocks are larger and uncompressed (``BLOCK_SIZE``; the layout's three
    settings are attributes, which ``bench/index_lookups.py`` varies)."""

    block_size = BLOCK_SIZE
    bloom_bits = BLOOM_BITS
    target_file_bytes = TARGET_FILE_BYTES

    def as_options(self) -> Options:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_open_files(-1 if self.max_open_files is None else self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_target_file_size_base(self.target_file_bytes)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_compression_type(DBCompressionType.none())
        table = BlockBasedOptions()
        table.set_block_size(self.block_size)
        table.set_bloom_filter(self.bloom_bits, True)
        table.set_block_cache(Cache(self.block_cache_size))
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(table)
        return options

    def open(self, path: Path, *, read_only: bool = False) -> Rdict:
        """The partition's database with these options, on every open. (Faust passes them as
        the database's options alone; rocksdict then opens an existing database's column
        family with what its OPTIONS file can say, and that file cannot say a block cache or
        a filter policy: a reopened database read with RocksDB's default 8 MiB cache whatever
        QW_SCORER_ROCKSDB_BLOCK_CACHE_MB said, and without its Bloom filters.) ``read_only``
        is ignored, as Faust's rocksdict path does."""
        options = self.as_options()
        access = AccessType.read_write() if self.ttl is None else AccessType.with_ttl(self.ttl)
        db = Rdict(
            str(path), options=options, column_families={"default": options}, access_type=access
        )
        db.set_read_options(ReadOptions())
        return db


# A batch's index lookups (``entries_of``): most read a block that the cache does not hold
# (the ids are random), and RocksDB's MultiGet runs without the GIL, so a long list is
# looked up in two halves at once, one on this thread and one on LOOKUP_THREAD, on the
# core that ingest and the broker leave free. Both finish before the call returns, so the
# partition's database cannot change or close under either half. bench/README.md, "Index
# lookups on two cores".
PARALLEL_GET_MIN = 256


def _new_lookup_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="qw-index-lookups")


LOOKUP_THREAD = _new_lookup_thread()


def _after_fork() -> None:
    """A child of ``os.fork`` has the executor but not its thread, and a task it submitted
    would never run: it gets an executor of its own."""
    global LOOKUP_THREAD
    LOOKUP_THREAD = _new_lookup_thread()


os.register_at_fork(after_in_child=_after_fork)


def _get_list(db: Rdict, keys: list[bytes]) -> list[bytes | None]:
    """The values of ``keys`` (None: absent), in order: one MultiGet."""
    return cast(list[bytes | None], db.get(cast(list[Any], keys)))


def _finish(task: Future[Any]) -> None:
    """Wait until ``task`` has run, through an interrupt too (raised again after it): a
    half still reading must not outlive the call that owns its database."""
    interrupted: BaseException | None = None
    while not task.done():
        try:
            futures_wait([task])
        except BaseException as exc:  # (KeyboardInterrupt, in a script)
            interrupted = exc
    if interrupted is not None:
        raise interrupted


def _multi_get(db: Rdict, keys: list[bytes]) -> list[bytes | None]:
    """The values of ``keys`` (None: absent), in order."""
    if len(keys) < PARALLEL_GET_MIN:
        if len(keys) == 1:
            return [db.get(keys[0])]
        return _get_list(db, keys) if keys else []
    half = len(keys) // 2
    try:
        second = LOOKUP_THREAD.submit(_get_list, db, keys[half:])
    except RuntimeError:  # the executor is shut down (the interpreter exits): on this thread
        return _get_list(db, keys)
    try:
        first = _get_list(db, keys[:half])
    finally:
        _finish(second)  # (waited for even when the first half failed)
    return first + second.result()


class IndexedRocksDBStore(rocksdb.Store):
    """``rocksdb://`` with the chunk index; also implements ``index.ChunkIndex``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.use_rocksdict:
            raise RuntimeError("the scorer's store needs rocksdict, not python-rocksdb")
        # what is left of the table's options once Faust took read_only and driver out
        self.rocksdb_options = BoundedRocksDBOptions(**(self.options or {}), use_rocksdict=True)

    def _open_for_partition(self, partition: int) -> Rdict:
        db: Rdict = super()._open_for_partition(partition)
        if not self.read_only:
            upgraded = upgrade_index(db)
            if upgraded:
                log.warning(
                    "partition %s: chunk index of %s chunks rewritten with ids scoped by queue",
                    partition, upgraded,
                )  # fmt: skip
        return db

    def _write(self, partition: int, ops: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Apply puts (value) and deletes (None) to one partition, with their index entries,
        in one atomic write batch."""
        batch = _Batch(self._db_for_partition(partition))
        for key, value in ops:
            batch.set(key, value)
        batch.db.write(batch.wb)

    def _set(self, key: bytes, value: bytes | None) -> None:
        event = current_event()
        assert event is not None
        partition = event.message.partition
        self._key_index[key] = partition
        self._write(partition, [(key, value)])

    def _del(self, key: bytes) -> None:
        for partition, db in list(self._dbs.items()):
            if db.get(key) is not None:
                self._write(partition, [(key, None)])

    def apply_changelog_batch(
        self,
        batch: Iterable[EventT[Any]],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        ops: dict[int, list[tuple[bytes, bytes | None]]] = defaultdict(list)
        offsets: dict[TP, int] = {}
        for event in batch:
            msg = event.message
            if msg.key is None:
                raise TypeError(f"changelog record without a key: {msg}")
            offsets[msg.tp] = max(msg.offset, offsets.get(msg.tp, -1))
            ops[msg.partition].append((msg.key, msg.value))
        for partition, changes in ops.items():
            self._write(partition, changes)
        for tp, offset in offsets.items():
            self.set_persisted_offset(tp, offset)

    def _visible_keys(self, db: Rdict) -> Iterator[bytes]:
        for key in super()._visible_keys(db):
            if not key.startswith(NUL):
                yield key

    def _visible_items(self, db: Rdict) -> Iterator[tuple[bytes, bytes]]:
        for key, value in super()._visible_items(db):
            if not key.startswith(NUL):
                yield key, value

    # -- ChunkIndex -------------------------------------------------------------------------
    def _dbs_to_search(self) -> list[Rdict]:
        event = current_event()
        if event is not None:  # the agent's lookups stay in the message's partition
            return [self._db_for_partition(event.message.partition)]
        return list(self._dbs.values())

    def chunk_of(self, kind: str, queue_id: str, record_id: str) -> str | None:
        entry = self.entries_of(kind, queue_id, (record_id,))[record_id]
        return None if entry is None else entry[0]

    def entries_of(
        self, kind: str, queue_id: str, record_ids: Iterable[str]
    ) -> dict[str, Entry | None]:
        prefix = _id_key(kind, queue_id, "")
        dbs = self._dbs_to_search()
        if len(dbs) == 1:  # the agent's case: one partition, the batch's ids at once
            ids = list(record_ids)
            values = _multi_get(dbs[0], [prefix + r.encode() for r in ids])
            return {r: _entry(v) for r, v in zip(ids, values, strict=True)}
        out: dict[str, Entry | None] = {}
        for r in record_ids:
            id_key = prefix + r.encode()
            out[r] = next((_entry(v) for db in dbs if (v := db.get(id_key)) is not None), None)
        return out

    def batch_chunks(self, batch: str) -> list[str]:
        prefix = BATCH_PREFIX + batch.encode() + b"|"
        return sorted(
            orjson.loads(k[len(prefix) :])
            for db in self._dbs_to_search()
            for k in _prefixed(db, prefix)
        )

    def queue_chunks(
        self, kind: str, queue_id: str, before_hour: int, from_hour: int = 0
    ) -> list[str]:
        prefix = f'"{kind}|{queue_id}|'.encode()
        start = prefix + f"{max(from_hour, 0):011d}".encode()
        out: list[str] = []
        for db in self._dbs_to_search():
            for raw in _prefixed(db, prefix, start):
                key: str = orjson.loads(raw)
                if int(key.rsplit("|", 2)[1]) >= before_hour:
                    break  # the hour is zero-padded: the rest are later
                out.append(key)
        return out

    def queue_ids(self) -> list[str]:
        prefix = f'"{QUEUE_PREFIX}'.encode()
        return sorted(
            orjson.loads(k)[len(QUEUE_PREFIX) :]
            for db in list(self._dbs.values())
            for k in _prefixed(db, prefix)
        )


# Faust finds a store by its URL's scheme
STORE_URL = "qwrocksdb://"
STORES.aliases.setdefault("qwrocksdb", f"{__name__}:IndexedRocksDBStore")
