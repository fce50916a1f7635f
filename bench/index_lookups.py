"""The scorer's id-index lookups on RocksDB, by layout: what one lookup costs when the id
is there (a verdict's decision) and when it is not (a new decision's id, a verdict's own),
with RocksDB's own count of the filter and data blocks each one read.

    .venv/bin/python bench/index_lookups.py [--ids 600000] [--lookups 200000] [--reps 3]

Each layout gets a database of ``--ids`` index entries shaped as the store writes them
(``services/scorer/store.py``: the id's key, the chunk key, a NUL byte, the decision's
JSON; random ids, written in write batches of 1,000, one memtable of 4 MiB at a time, then
left to compact), opened with ``BoundedRocksDBOptions`` (8 MiB block cache) and only the
layout's block size, bloom bits and table file size changed. Then, alternating layouts in
each repetition, ``--lookups`` gets of ids that are there and twice as many of ids that are
not, timed on this thread's CPU clock (background compaction is not counted); the figures
are the median repetition. ``filter reads`` and ``data reads`` are blocks RocksDB read
into its cache, per 1,000 lookups of each kind (its ``block.cache.*.miss`` statistics).

The layouts: ``store`` (the store's: 16 KiB blocks, 3-bit filters, 64 MiB files), ``tried``
(4 KiB blocks, 10-bit filters, 8 MiB files: a lookup costs less, but the scorer end to end
did not, bench/README.md "Bloom filters that fit the cache"), and ``10-bit, 64 MiB files``,
whose filters outgrow the cache's shards of 512 KiB and are read again on every lookup.

Then, on the store's layout, what the scorer does with a message's ids: the same present
and absent ids, shuffled, in batches of ``--batch`` (one prefetch of a message's ids, a
third of them there), looked up three ways: one ``get`` per id, one list ``get``
(RocksDB's MultiGet), and the store's ``_multi_get`` (lists of ``PARALLEL_GET_MIN`` ids or
more in two halves at once, one on a second thread: MultiGet runs without the GIL). Wall
time and this process's CPU (both threads) per id, the median repetition: the agent waits
for the wall time, the machine pays the CPU.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rocksdict import Options, Rdict, WriteBatch

from services.scorer import store as rocks

QUEUE = "queue-07"
# a chunk key, a NUL byte and a decision record (services/scorer/core.py's Record)
VALUE = (
    b'"d|queue-07|00000481234|3-1734"\x00'
    b'[1733300000.5,"site-3","moderator-123","hate-speech",3,"31-90d"]'
)


@dataclass(frozen=True)
class Layout:
    name: str
    block_size: int
    bloom_bits: int
    target_file_bytes: int


LAYOUTS = (
    Layout("store", rocks.BLOCK_SIZE, rocks.BLOOM_BITS, rocks.TARGET_FILE_BYTES),
    Layout("tried", 4 * 1024, 10, 8 << 20),
    Layout("10-bit, 64 MiB files", 4 * 1024, 10, 64 << 20),
)
_STAT = re.compile(r"^(rocksdb\.[\w.]+) COUNT : (\d+)$", re.M)


def options(layout: Layout) -> Options:
    """The store's options with the layout's three settings."""
    o = rocks.BoundedRocksDBOptions(
        block_cache_size=8 << 20, write_buffer_size=4 << 20, max_write_buffer_number=3,
        use_rocksdict=True,
    )  # fmt: skip
    o.block_size = layout.block_size
    o.bloom_bits = layout.bloom_bits
    o.target_file_bytes = layout.target_file_bytes
    opts = o.as_options()
    opts.enable_statistics()
    return opts


def counters(opts: Options) -> dict[str, int]:
    return {k: int(v) for k, v in _STAT.findall(opts.get_statistics() or "")}


def settle(db: Rdict, timeout: float = 120.0) -> None:
    """Wait for flushes and compactions to finish (bounded: past it, a warning, and the
    figures then include levels still being compacted)."""
    deadline = time.monotonic() + timeout
    while True:
        busy = sum(
            db.property_int_value(p) or 0
            for p in (
                "rocksdb.compaction-pending",
                "rocksdb.num-running-compactions",
                "rocksdb.num-running-flushes",
            )
        )
        if not busy:
            return
        if time.monotonic() >= deadline:
            print(f"warning: compactions still running after {timeout:.0f} s; measured as is")
            return
        time.sleep(0.2)


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.suffix == ".sst")


@dataclass
class Result:
    hit_us: list[float]
    miss_us: list[float]
    reads: dict[str, list[float]]  # "hit filter" ... -> blocks read a 1,000, by repetition

    def median(self, field: str, block: str) -> float:
        return statistics.median(self.reads[f"{field} {block}"])


def lookups(db: Rdict, opts: Options, keys: list[bytes], result: Result, field: str) -> None:
    get: Callable[[bytes], bytes | None] = db.get
    before = counters(opts)
    t = time.thread_time()
    for k in keys:
        get(k)
    spent = time.thread_time() - t
    after = counters(opts)
    getattr(result, f"{field}_us").append(spent / len(keys) * 1e6)
    for block in ("filter", "data"):
        stat = f"rocksdb.block.cache.{block}.miss"
        per = (after.get(stat, 0) - before.get(stat, 0)) * 1000 / len(keys)
        result.reads.setdefault(f"{field} {block}", []).append(per)


# how a batch of ids is looked up: one get per id, one MultiGet, the store's (two halves)
BatchWay = Callable[[Rdict, list[bytes]], list[bytes | None]]
BATCH_WAYS: tuple[tuple[str, BatchWay], ...] = (
    ("a get per id", lambda db, keys: [db.get(k) for k in keys]),
    ("one MultiGet", rocks._get_list),
    ("two halves at once", rocks._multi_get),
)


def batch_lookups(
    db: Rdict, keys: list[bytes], batch: int, reps: int
) -> dict[str, tuple[float, float]]:
    """Each of ``BATCH_WAYS`` over ``keys`` in batches: (wall µs, CPU µs) an id, the median
    repetition of each (alternating ways in each)."""
    wall: dict[str, list[float]] = {name: [] for name, _ in BATCH_WAYS}
    cpu: dict[str, list[float]] = {name: [] for name, _ in BATCH_WAYS}
    batches = [keys[i : i + batch] for i in range(0, len(keys), batch)]
    for _ in range(reps):
        for name, way in BATCH_WAYS:
            w, c = time.perf_counter(), time.process_time()
            for b in batches:
                way(db, b)
            wall[name].append((time.perf_counter() - w) / len(keys) * 1e6)
            cpu[name].append((time.process_time() - c) / len(keys) * 1e6)
    return {
        name: (statistics.median(wall[name]), statistics.median(cpu[name]))
        for name, _ in BATCH_WAYS
    }


def measure(
    ids: int, n_lookups: int, reps: int, seed: int, batch: int = 1000
) -> tuple[list[tuple[Layout, Result, int]], dict[str, tuple[float, float]]]:
    """Every layout's database written and looked up (module docstring): each layout's
    result and its table files' bytes; then the store's layout's batch lookups."""
    rng = random.Random(seed)

    def new_id() -> bytes:
        return uuid.UUID(int=rng.getrandbits(128), version=4).hex.encode()

    prefix = rocks._id_key("d", QUEUE, "")
    present = [prefix + new_id() for _ in range(ids)]
    hits = [rng.choice(present) for _ in range(n_lookups)]
    misses = [prefix + new_id() for _ in range(2 * n_lookups)]
    root = Path(tempfile.mkdtemp(prefix="qw-index-lookups-"))
    opened: list[tuple[Layout, Rdict, Options, Path]] = []
    try:
        for i, layout in enumerate(LAYOUTS):
            opts = options(layout)
            path = root / f"db{i}"
            db = Rdict(str(path), options=opts)
            opened.append((layout, db, opts, path))
            for start in range(0, len(present), 1000):
                wb = WriteBatch(raw_mode=True)
                for key in present[start : start + 1000]:
                    wb.put(key, VALUE)
                db.write(wb)
            settle(db)
        results = {layout.name: Result([], [], {}) for layout in LAYOUTS}
        for _ in range(reps):
            for layout, db, opts, _path in opened:
                lookups(db, opts, hits, results[layout.name], "hit")
                lookups(db, opts, misses, results[layout.name], "miss")
        mixed = hits + misses
        rng.shuffle(mixed)
        batched = batch_lookups(opened[0][1], mixed, batch, reps)
        per_layout = [
            (layout, results[layout.name], disk_bytes(path)) for layout, _, _, path in opened
        ]
        return per_layout, batched
    finally:
        for _layout, db, _opts, _path in opened:
            db.close()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--ids", type=int, default=600_000, help="index entries in each database")
    p.add_argument("--lookups", type=int, default=200_000, help="lookups of present ids")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=1000, help="ids a batch, on the store's layout")
    args = p.parse_args(argv)
    if args.ids < 1 or args.lookups < 1 or args.reps < 1 or args.batch < 1:
        p.error("--ids, --lookups, --reps and --batch must be at least 1")
    measured, batched = measure(args.ids, args.lookups, args.reps, args.seed, args.batch)
    print(
        f"{args.ids:,} index entries a database, {args.lookups:,} lookups of present ids "
        f"and {2 * args.lookups:,} of absent ones, median of {args.reps} repetitions; "
        "blocks read a 1,000 lookups (present/absent)"
    )
    print(
        f"{'layout':<22} {'block':>5} {'bits':>4} {'files':>5} {'µs hit':>7} {'µs miss':>7} "
        f"{'filter reads':>13} {'data reads':>11} {'disk MB':>7}"
    )
    for layout, r, disk in measured:
        filters = f"{r.median('hit', 'filter'):.0f}/{r.median('miss', 'filter'):.0f}"
        data = f"{r.median('hit', 'data'):.0f}/{r.median('miss', 'data'):.0f}"
        print(
            f"{layout.name:<22} {layout.block_size // 1024:>3}Ki {layout.bloom_bits:>4} "
            f"{layout.target_file_bytes >> 20:>3}Mi {statistics.median(r.hit_us):>7.2f} "
            f"{statistics.median(r.miss_us):>7.2f} {filters:>13} {data:>11} {disk / 1e6:>7.1f}"
        )
    store, tried = measured[0][1], measured[1][1]
    print(
        "tried / store: a hit "
        f"{statistics.median(tried.hit_us) / statistics.median(store.hit_us):.2f}x, a miss "
        f"{statistics.median(tried.miss_us) / statistics.median(store.miss_us):.2f}x"
    )
    print(
        f"\nthe store's layout, batches of {args.batch:,} ids (a third there), "
        f"{3 * args.lookups:,} ids; µs an id"
    )
    print(f"{'lookup':<22} {'wall':>7} {'CPU':>7}")
    for name, (wall, cpu) in batched.items():
        print(f"{name:<22} {wall:>7.2f} {cpu:>7.2f}")
    one = batched[BATCH_WAYS[0][0]][0]
    print(
        "wall against a get per id: "
        + ", ".join(f"{name} {batched[name][0] / one:.2f}x" for name, _ in BATCH_WAYS[1:])
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
