"""The chunk index kept inside RocksDB (services/scorer/store.py), on a real RocksDB through
Faust's own store machinery (no broker needed), against the in-memory ``IndexedTable``."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from rocksdict import Rdict

from services.scorer import store as store_module
from services.scorer.chunks import ChunkKey, ChunkStore
from services.scorer.index import ChunkIndex, IndexedTable
from services.scorer.store import (
    ID_PREFIX,
    OLD_ID_PREFIX,
    PARALLEL_GET_MIN,
    STORE_URL,
    BoundedRocksDBOptions,
    IndexedRocksDBStore,
    _multi_get,
    _prefixed,
    upgrade_index,
)


def open_store(datadir: Path) -> IndexedRocksDBStore:
    app = faust.App("store-test", datadir=str(datadir), store=STORE_URL, web_enabled=False)
    table = app.Table("state", schema=faust.Schema(key_serializer="json", value_serializer="json"))
    store = table.data
    assert isinstance(store, IndexedRocksDBStore)
    return store


def chunk(queue: str, ids: list[str]) -> dict[str, Any]:
    return {"q": queue, "r": {i: [1.0] for i in ids}}


def k(kind: str, queue: str, hour: int, batch: str, part: int = 0) -> str:
    return str(ChunkKey(kind, queue, hour, batch, part))


def table_keys(store: IndexedRocksDBStore) -> list[str]:
    """What the table's iteration yields (Faust limits it to assigned partitions)."""
    return sorted(orjson.loads(k) for db in store._dbs.values() for k in store._visible_keys(db))


def put(store: IndexedRocksDBStore, key: str, value: Any, partition: int = 0) -> None:
    store._write(partition, [(orjson.dumps(key), None if value is None else orjson.dumps(value))])


def test_index_follows_puts_and_deletes(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    a = k("d", "q1", 3600, "0-1")
    b = k("d", "q1", 7200, "0-2")
    put(store, a, chunk("q1", ["x", "y"]))
    put(store, b, chunk("q1", ["z"]))
    put(store, k("v", "q1", 3600, "0-2"), chunk("q1", ["x"]))
    put(store, k("d", "q10", 0, "0-3"), chunk("q10", ["w"]))
    put(store, "q|q1", {"applied": [0, 2]})
    put(store, "q|q10", {"applied": [0, 3]})
    assert store.chunk_of("d", "q1", "x") == a
    assert store.chunk_of("v", "q1", "x") == k("v", "q1", 3600, "0-2")
    assert store.chunk_of("d", "q1", "nope") is None
    assert store.batch_chunks("0-2") == sorted([b, k("v", "q1", 3600, "0-2")])
    assert store.queue_chunks("d", "q1", 7200) == [a]  # hours below 7200 only
    assert store.queue_chunks("d", "q1", 10**10) == [a, b]
    assert store.queue_chunks("d", "q10", 10**10) == [k("d", "q10", 0, "0-3")]
    assert store.queue_ids() == ["q1", "q10"]
    # the table's own iteration does not see the index
    assert table_keys(store) == sorted(
        [a, b, k("v", "q1", 3600, "0-2"), k("d", "q10", 0, "0-3"), "q|q1", "q|q10"]
    )
    put(store, a, None)
    assert store.chunk_of("d", "q1", "x") is None
    assert store.batch_chunks("0-1") == []
    assert store.queue_chunks("d", "q1", 10**10) == [b]


def test_the_parts_of_a_chunk_are_indexed_under_their_message(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    parts = [k("d", "q", 3600, "0-1", i) for i in range(3)]
    assert parts[1].endswith("|0-1.1")
    for i, key in enumerate(parts):
        put(store, key, chunk("q", [f"x{i}", f"y{i}"]))
    put(store, k("d", "q", 3600, "0-10"), chunk("q", ["z"]))
    assert store.batch_chunks("0-1") == sorted(parts)  # not 0-10's
    assert store.chunk_of("d", "q", "y2") == parts[2]
    assert store.queue_chunks("d", "q", 7200) == sorted([*parts, k("d", "q", 3600, "0-10")])
    assert ChunkKey.parse(parts[2]) == ChunkKey("d", "q", 3600, "0-1", 2)
    assert ChunkKey.parse(parts[2]).position == (0, 1)
    put(store, parts[2], None)
    assert store.chunk_of("d", "q", "y2") is None
    assert store.batch_chunks("0-1") == sorted(parts[:2])


def test_deleting_an_old_chunk_keeps_the_id_of_a_newer_one(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    old, new = k("v", "q", 3600, "0-1"), k("v", "q", 90000, "0-9")
    put(store, old, chunk("q", ["x"]))
    put(store, new, chunk("q", ["x"]))  # counted again after the old chunk expired
    put(store, old, None)
    assert store.chunk_of("v", "q", "x") == new


def test_recovery_from_the_changelog_builds_the_same_index_and_it_survives_a_reopen(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "a")
    a, b = k("p", "q", 3600, "1-5"), k("d", "q", 3600, "1-6")

    def event(offset: int, key: str, value: Any) -> Any:
        msg = SimpleNamespace(
            key=orjson.dumps(key), value=None if value is None else orjson.dumps(value),
            partition=1, offset=offset, tp=("state-changelog", 1),
        )  # fmt: skip
        return SimpleNamespace(message=msg)

    # one batch that writes, rewrites and deletes a key: the index sees the net effect
    batch = [
        event(0, a, chunk("q", ["v1", "v2"])),
        event(1, b, chunk("q", ["d1"])),
        event(2, a, chunk("q", ["v1"])),
        event(3, b, None),
        event(4, "q|q", {"applied": [1, 6]}),
    ]
    store.set_persisted_offset = lambda tp, offset: None  # type: ignore[method-assign]
    store.apply_changelog_batch(batch, lambda x: x, lambda x: x)
    assert store.chunk_of("p", "q", "v1") == a
    assert store.chunk_of("p", "q", "v2") is None
    assert store.chunk_of("d", "q", "d1") is None
    assert store.batch_chunks("1-6") == []
    assert store.queue_ids() == ["q"]
    # a new store on the same directory (a restarted worker): nothing to rebuild
    del store
    import gc

    gc.collect()
    again = open_store(tmp_path / "a")
    again._db_for_partition(1)
    assert again.chunk_of("p", "q", "v1") == a
    assert again.queue_chunks("p", "q", 10**10) == [a]


@pytest.mark.parametrize("seed", range(5))
def test_same_answers_as_the_in_memory_index(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = open_store(tmp_path)
    memory = IndexedTable()
    assert isinstance(memory, ChunkIndex)
    assert isinstance(store, ChunkIndex)
    keys = [
        k(
            rng.choice("dvp"),
            rng.choice(["q", "q2", "q:x"]),
            rng.randrange(5) * 3600,
            f"0-{rng.randrange(12)}",
            rng.choice([0, 0, 1, 2]),  # the parts of a chunk written as several records
        )
        for _ in range(40)
    ] + ["q|q", "q|q2"]
    ids = [f"id{i}" for i in range(30)]
    for _ in range(300):
        key = rng.choice(keys)
        if rng.random() < 0.25:
            memory.pop(key, None)
            put(store, key, None)
        else:
            value = (
                {"applied": [0, 1]}
                if key.startswith("q|")
                else {"q": "x", "r": {i: [rng.random(), "site"] for i in rng.sample(ids, 3)}}
            )
            memory[key] = value
            put(store, key, value)
    for kind in "dvp":
        for q in ["q", "q2", "q:x"]:
            for i in ids:
                assert store.chunk_of(kind, q, i) == memory.chunk_of(kind, q, i), (kind, q, i)
            assert store.entries_of(kind, q, ids) == memory.entries_of(kind, q, ids)
            for before in (0, 7200, 10**10):
                assert store.queue_chunks(kind, q, before) == memory.queue_chunks(kind, q, before)
    for batch in range(12):
        assert store.batch_chunks(f"0-{batch}") == memory.batch_chunks(f"0-{batch}")
    assert store.queue_ids() == memory.queue_ids()
    assert table_keys(store) == sorted(memory.keys())


def test_a_decisions_entry_carries_the_decision(tmp_path: Path) -> None:
    """The join reads a decision from its index entry, not from its chunk; the entries of
    counted and waiting verdicts name their chunk only. An entry written before entries
    carried records is read through its chunk, and a rewritten chunk's entries follow it."""
    store = open_store(tmp_path)
    a = k("d", "q", 3600, "0-1")
    put(store, a, {"q": "q", "r": {"x": [5.0, "s1", "m", "p", 2, "new"], "y": [6.0, "s2"]}})
    put(store, k("v", "q", 3600, "0-1"), {"q": "q", "r": {"w": [7.0]}})
    assert store.entries_of("d", "q", ["x", "y", "z"]) == {
        "x": (a, [5.0, "s1", "m", "p", 2, "new"]),
        "y": (a, [6.0, "s2"]),
        "z": None,
    }
    assert store.entries_of("v", "q", ["w"]) == {"w": (k("v", "q", 3600, "0-1"), None)}
    # the chunk rewritten without y and with a new x: y's entry goes, x's follows
    put(store, a, {"q": "q", "r": {"x": [9.0, "s9"]}})
    assert store.entries_of("d", "q", ["x", "y"]) == {"x": (a, [9.0, "s9"]), "y": None}

    # as an older scorer wrote the entry: the chunk's key alone
    db = store._db_for_partition(0)
    db.put(ID_PREFIX + b"d|q|x", orjson.dumps(a))
    assert store.entries_of("d", "q", ["x"]) == {"x": (a, None)}
    table: dict[str, Any] = {a: {"q": "q", "r": {"x": [9.0, "s9"]}}}
    reads: list[str] = []

    class Table(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            reads.append(key)
            return table.get(key, default)

    decisions = ChunkStore(Table(), store, "d", lambda q: (0, 5))
    assert decisions.get("q", "x") == [9.0, "s9"]  # through the chunk
    assert reads == [a]
    put(store, a, {"q": "q", "r": {"x": [9.0, "s9"]}})  # written again: the entry has it
    decisions.invalidate()
    assert decisions.get("q", "x") == [9.0, "s9"]
    assert reads == [a]  # no chunk read
    assert decisions.key_of("q", "y", float("-inf")) is None
    # not visible: written by a message after the one the queue's record applied last
    assert ChunkStore(Table(), store, "d", lambda q: (0, 0)).get("q", "x") is None


def test_a_chunk_applied_again_answers_with_what_it_holds_now(tmp_path: Path) -> None:
    """A message whose first application was cut short wrote its chunk to the table; while
    it is applied again, its staged chunk answers, not the table's copy (which the index
    entries describe)."""
    store = open_store(tmp_path)
    a = k("d", "q", 3600, "0-3")
    put(store, a, {"q": "q", "r": {"x": [1.0], "y": [2.0]}})
    table: dict[str, Any] = {}
    decisions = ChunkStore(table, store, "d", lambda q: (0, 2))  # 0-3 not applied yet
    assert decisions.get("q", "x") is None  # the cut-short application is not visible
    decisions.add("q", 3600.0, "0-3", {"y": [2.0]})  # this time only y is new
    decisions.prefetch("q", ["x", "y"])
    assert decisions.get("q", "x") is None
    assert decisions.get("q", "y") == [2.0]


def test_the_same_id_in_two_queues_is_indexed_twice(tmp_path: Path) -> None:
    """Queues share partitions: the index holds an id per queue (it used to hold one chunk
    per id, so one queue's decision answered for another's)."""
    store = open_store(tmp_path)
    a, b = k("d", "burst1", 3600, "0-1"), k("d", "burst2", 3600, "0-2")
    put(store, a, chunk("burst1", ["b-1"]))
    put(store, b, chunk("burst2", ["b-1"]))
    assert store.chunk_of("d", "burst1", "b-1") == a
    assert store.chunk_of("d", "burst2", "b-1") == b
    put(store, b, None)
    assert store.chunk_of("d", "burst1", "b-1") == a
    assert store.chunk_of("d", "burst2", "b-1") is None


def test_a_database_indexed_before_ids_were_scoped_by_queue_is_upgraded_on_open(
    tmp_path: Path,
) -> None:
    """The old index (``\\0i|kind|record_id``) is rewritten when the partition is opened:
    lookups answer per queue, the old entries are gone, and a second open does nothing."""
    store = open_store(tmp_path)
    a, b = k("d", "q1", 3600, "0-1"), k("v", "q2", 7200, "0-2")
    put(store, a, chunk("q1", ["x", "y"]))
    put(store, b, chunk("q2", ["x"]))
    db = store._db_for_partition(0)
    new_keys = list(_prefixed(db, ID_PREFIX))
    assert len(new_keys) == 3
    for key in new_keys:  # as a scorer before the change wrote them
        kind, _, record_id = key[len(ID_PREFIX) :].decode().split("|", 2)
        db.put(OLD_ID_PREFIX + f"{kind}|{record_id}".encode(), db.get(key))
        db.delete(key)
    assert store.chunk_of("d", "q1", "x") is None  # unreadable before the upgrade
    del store, db
    import gc

    gc.collect()
    again = open_store(tmp_path)
    again._db_for_partition(0)
    assert again.chunk_of("d", "q1", "x") == a
    assert again.chunk_of("d", "q1", "y") == a
    assert again.chunk_of("v", "q2", "x") == b
    assert again.chunk_of("d", "q2", "x") is None
    db = again._db_for_partition(0)
    assert list(_prefixed(db, OLD_ID_PREFIX)) == []
    assert upgrade_index(db) == 0


def test_values_are_encoded_once_to_the_bytes_fausts_json_serializer_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's table keeps raw values that the scorer encodes (``JsonValues``): the
    bytes in RocksDB (and so in the changelog) are those Faust's json serializer wrote, so a
    store or changelog from before reads the same, and what is read is what was written."""
    import weakref

    from faust.serializers import codecs
    from faust.streams import _current_event

    from services.scorer.store import JsonValues

    app = faust.App("store-raw", datadir=str(tmp_path), store=STORE_URL, web_enabled=False)
    table = app.Table("state", value_type=bytes)  # as the worker's (services/scorer/app.py)
    store = table.data
    assert isinstance(store, IndexedRocksDBStore)
    assert (store.key_serializer, store.value_serializer) == ("json", "raw")
    serializers = (table.key_serializer, table.value_serializer)  # type: ignore[attr-defined]
    assert serializers == ("json", "raw")  # the changelog's

    class Event:  # the message in hand, as the agent's stream sets it
        message = SimpleNamespace(partition=0)

    event = Event()
    _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    values = JsonValues(store)  # the store under the table, with the table's serializers
    record = {
        "v": 3, "queue_id": "spam-en", "buckets": {"1767225600": [12, 1, {"dublin": [3, 1]}]},
        "rate": 1234.5, "watermark": 1767229200.25, "applied": [0, 17], "outbox": [],
        "site": "münchen", "ratio": 1e-12, "none": None,
    }  # fmt: skip
    key = "q|spam-en"
    values[key] = record
    raw = store._db_for_partition(0).get(orjson.dumps(key))
    assert raw == codecs.dumps("json", record)  # Faust's json serializer's own bytes
    assert values[key] == record
    assert values.get(key) == record
    assert values.get("q|nobody") is None
    assert key in values
    chunk_key = k("d", "spam-en", 3600, "0-1")
    values[chunk_key] = chunk("spam-en", ["a", "b"])
    assert store.chunk_of("d", "spam-en", "a") == chunk_key  # the index reads the same bytes
    values.pop(chunk_key, None)
    assert store.chunk_of("d", "spam-en", "a") is None
    assert values.pop("q|nobody", None) is None

    # the index entries of a chunk written through JsonValues come from the value it
    # encoded (not decoded again); bytes written any other way are decoded
    loads = orjson.loads
    decoded: list[bytes] = []

    def counted(raw: Any) -> Any:
        if raw[:1] == b"{":  # (a value; keys are JSON strings)
            decoded.append(raw)
        return loads(raw)

    monkeypatch.setattr(orjson, "loads", counted)  # (the module store.py imports)
    c1, c2 = k("d", "spam-en", 3600, "0-2"), k("d", "spam-en", 3600, "0-3")
    values[c1] = chunk("spam-en", ["c"])
    assert decoded == []
    other = codecs.dumps("json", chunk("spam-en", ["d"]))
    store[c2] = other  # (what a changelog's recovery writes: bytes only)
    assert decoded == [other]
    monkeypatch.undo()
    assert (store.chunk_of("d", "spam-en", "c"), store.chunk_of("d", "spam-en", "d")) == (c1, c2)


def test_a_long_list_of_ids_is_looked_up_in_two_halves_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``_multi_get``: past ``PARALLEL_GET_MIN`` ids, half on the lookup thread; the values
    come back in the order asked, absent ids as None, an id asked twice twice; read from
    table files, as in the worker (not only from the memtable)."""
    db = Rdict(str(tmp_path / "db"), options=BoundedRocksDBOptions(use_rocksdict=True).as_options())
    threads: list[tuple[str, int]] = []
    get_list = store_module._get_list

    def recorded(db: Rdict, keys: list[bytes]) -> list[bytes | None]:
        threads.append((threading.current_thread().name, len(keys)))
        return get_list(db, keys)

    monkeypatch.setattr(store_module, "_get_list", recorded)
    try:
        rng = random.Random(5)
        present = {f"id{i}".encode(): f"v{i}".encode() for i in range(0, 2000, 3)}
        for key, value in present.items():
            db[key] = value
        db[b"empty"] = b""
        db.flush()
        for n in (0, 1, 2, PARALLEL_GET_MIN - 1, PARALLEL_GET_MIN, 1001):
            keys = [f"id{rng.randrange(2000)}".encode() for _ in range(n)]
            threads.clear()
            assert _multi_get(db, keys) == [present.get(key) for key in keys], n
            on_lookup_thread = [k for name, k in threads if name.startswith("qw-index-lookups")]
            assert on_lookup_thread == ([n - n // 2] if n >= PARALLEL_GET_MIN else []), n
        assert _multi_get(db, [b"id0"] * PARALLEL_GET_MIN) == [b"v0"] * PARALLEL_GET_MIN
        assert _multi_get(db, [b"empty", b"nope"]) == [b"", None]
    finally:
        db.close()


class HalfFails:
    """A database whose list get fails for the half that begins with ``bad``, after the
    other half, slower, has finished."""

    def __init__(self, bad: bytes) -> None:
        self.bad = bad
        self.finished: list[bytes] = []

    def get(self, keys: list[bytes]) -> list[bytes]:
        if keys[0] == self.bad:
            raise OSError(f"cannot read {self.bad!r}")
        time.sleep(0.05)
        self.finished.append(keys[0])
        return keys


@pytest.mark.parametrize("bad_half", ["first", "second"])
def test_a_failing_half_fails_the_lookup_once_the_other_half_is_done(bad_half: str) -> None:
    keys = [b"%04d" % i for i in range(PARALLEL_GET_MIN)]
    half = len(keys) // 2
    bad = keys[0] if bad_half == "first" else keys[half]
    db = HalfFails(bad)
    with pytest.raises(OSError, match="cannot read"):
        _multi_get(db, keys)  # type: ignore[arg-type]
    assert db.finished == [keys[half] if bad_half == "first" else keys[0]]


def test_after_the_executor_is_shut_down_a_long_list_is_looked_up_on_this_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gone = ThreadPoolExecutor(1)
    gone.shutdown()
    monkeypatch.setattr(store_module, "LOOKUP_THREAD", gone)
    keys = [b"%04d" % i for i in range(PARALLEL_GET_MIN)]
    assert _multi_get(SimpleNamespace(get=list), keys) == keys  # type: ignore[arg-type]


def _child_lookup(keys: list[bytes]) -> None:
    assert _multi_get(SimpleNamespace(get=list), keys) == keys  # type: ignore[arg-type]


def test_a_forked_child_gets_a_lookup_thread_of_its_own() -> None:
    """The executor's thread does not survive ``os.fork``: a child that used the parent's
    executor would wait forever for its second half."""
    keys = [b"%04d" % i for i in range(PARALLEL_GET_MIN)]
    assert _multi_get(SimpleNamespace(get=list), keys) == keys  # type: ignore[arg-type]
    child = multiprocessing.get_context("fork").Process(target=_child_lookup, args=(keys,))
    child.start()
    child.join(30)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0


def test_the_agents_lookups_of_a_batch_answer_as_the_in_memory_index(tmp_path: Path) -> None:
    """In the agent (one partition's database), ``entries_of`` looks a batch's ids up at once
    (in two halves past ``PARALLEL_GET_MIN``): the same answers, decisions carried."""
    store = open_store(tmp_path)
    memory = IndexedTable()
    rng = random.Random(9)
    ids = [f"id{i}" for i in range(3 * PARALLEL_GET_MIN)]
    for batch in range(12):
        key = k("d", "q", batch * 3600, f"0-{batch}")
        value = {"q": "q", "r": {i: [float(batch), "site"] for i in rng.sample(ids, 40)}}
        memory[key] = value
        put(store, key, value)
    one = store._db_for_partition(0)
    one.flush()  # (read from table files, as in the worker)
    store._dbs_to_search = lambda: [one]  # type: ignore[method-assign]
    asked = [rng.choice(ids) for _ in range(2 * PARALLEL_GET_MIN)]
    got = store.entries_of("d", "q", asked)
    assert got == memory.entries_of("d", "q", asked)
    assert sum(entry is not None for entry in got.values()) > 50


@pytest.mark.parametrize("seed", range(30))
def test_absent_answers_only_what_key_of_would(seed: int) -> None:
    """``ChunkStore.absent`` (the join's shortcut for a new id) is True only for an id that
    ``key_of`` finds nowhere, at any horizon: not staged, and looked up by the batch's
    prefetch without an index entry; anything else is left to ``key_of``."""
    rng = random.Random(seed)
    table = IndexedTable()
    ids = [f"id{i}" for i in range(40)]
    applied = (0, 1_000)
    store = ChunkStore(table, table, "d", lambda q: applied)
    for offset in range(3):  # stored chunks, of hours 0-2, in both queues
        for queue in ("q", "r"):
            chosen = rng.sample(ids, 8)
            store.add(queue, 3600.0 * offset, f"0-{offset}", {i: [1.0] for i in chosen})
        store.flush()
    store.add("q", 3 * 3600.0, "0-9", {i: [2.0] for i in rng.sample(ids, 6)})  # staged
    store.prefetch("q", rng.sample(ids, 25))
    shortcuts = 0
    for record_id in ids:
        for queue in ("q", "r"):
            if store.absent(queue, record_id):
                shortcuts += 1
                for alive_from in (float("-inf"), 3600.0, 7200.0):
                    assert store.key_of(queue, record_id, alive_from) is None
    assert shortcuts > 0  # (the shortcut was taken for some ids)
    assert not store.absent("r", ids[0])  # another queue than the prefetch's: not known


def test_a_reopened_partition_keeps_its_block_cache_and_bloom_filters(tmp_path: Path) -> None:
    """rocksdict opened an existing database's column family with what its OPTIONS file
    says, which holds neither a block cache nor a filter policy: after a restart the worker
    read with RocksDB's default 8 MiB cache, whatever QW_SCORER_ROCKSDB_BLOCK_CACHE_MB said,
    and with no Bloom filter; and a changed QW_SCORER_ROCKSDB_WRITE_BUFFER_MB was not taken."""
    path = tmp_path / "p0.db"
    for cache_mb, buffer_mb in ((24, 4), (24, 4), (16, 8)):  # created, then opened again
        options = BoundedRocksDBOptions(
            block_cache_size=cache_mb << 20, write_buffer_size=buffer_mb << 20, use_rocksdict=True
        )
        db = options.open(path)
        db[b"k"] = b"v"
        assert db.property_int_value("rocksdb.block-cache-capacity") == cache_mb << 20
        db.flush()
        db.close()
        newest = max(path.glob("OPTIONS-*"), key=lambda p: int(p.name.split("-")[1]))
        in_use = newest.read_text()
        assert "filter_policy=bloomfilter" in in_use
        assert f"block_size={store_module.BLOCK_SIZE}" in in_use
        assert f"write_buffer_size={buffer_mb << 20}\n" in in_use
