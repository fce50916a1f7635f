"""The scorer's state path in one process: ``Scorer.process`` and ``commit`` on the
worker's own RocksDB store (with its chunk index), no broker and no Faust.

    .venv/bin/python bench/scorer_state.py [--events 100000] [--reps 3] [--profile FILE]

The data is ``bench/pipeline.py``'s (seeded: raw per-event JSON with duplicates and late
data), validated by ingest's fast path and packed into the batches ingest produces, one
poll of ``--poll`` messages at a time; each batch goes to the partition its key hashes to.
The table is a mapping over ``IndexedRocksDBStore``'s write and lookup code (the same
``_write``, write batches and index entries as the worker), with its values JSON-encoded
once per write by the worker's ``JsonValues`` (the same bytes to the store and the changelog)
(with Faust's json serializer it was twice: 1,918.0 M instructions against 1,878.5 M for
``--events 30000 --reps 2 --reduce`` under callgrind, 2026-12-03). It prints the
CPU time of each repetition per event and checks the queues' totals against the
generator's truth; ``--profile`` writes cProfile statistics of the last one.

It isolates what ``bench/pipeline.py`` cannot: the scorer's own per-event cost, without
the consumer, the producer and start-up. For instruction counts that do not move with the
machine's load, run it under ``valgrind --tool=callgrind --collect-atstart=no
--toggle-collect=functools_reduce`` with ``--reduce`` (the last repetition runs inside
``functools.reduce``, so only it is counted).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import importlib
import resource
import shutil
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import orjson
from rocksdict import Rdict

from bench.pipeline import generate
from services.ingest.validation import fast_item
from services.scorer import store as rocks
from services.scorer.core import Scorer
from services.scorer.settings import ScorerSettings
from shared import batches, codec, control
from shared.collector import settle_gc
from shared.topics import queue_key

PARTITIONS = 4
_FAUST_JSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z  # faust.utils.json.dumps


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=_FAUST_JSON)


class Store(rocks.IndexedRocksDBStore):
    """The worker's store code on databases in ``path``, one per partition, without Faust:
    ``partition`` plays the message in hand."""

    def __init__(self, path: str, layout: tuple[int, int, int] | None = None) -> None:
        """``layout``: (block KiB, bloom bits, table file MiB) instead of the store's."""
        # (Faust's own set-up is not needed)
        self._dbs: dict[int, Rdict] = {}
        self.dir = Path(path)
        self.partition = 0
        self.rocksdb_options = rocks.BoundedRocksDBOptions(
            block_cache_size=8 << 20, write_buffer_size=4 << 20, max_write_buffer_number=3,
            use_rocksdict=True,
        )  # fmt: skip
        if layout is not None:
            o = self.rocksdb_options
            o.block_size, o.bloom_bits, o.target_file_bytes = (
                layout[0] << 10, layout[1], layout[2] << 20,
            )  # fmt: skip

    def _db_for_partition(self, partition: int) -> Rdict:
        db = self._dbs.get(partition)
        if db is None:
            db = self._dbs[partition] = self.rocksdb_options.open(
                self.dir / f"p{partition}", read_only=False
            )
        return db

    def _dbs_to_search(self) -> list[Rdict]:
        return [self._db_for_partition(self.partition)]


class Table(MutableMapping[str, bytes]):
    """The worker's table over ``Store`` (raw values, the scorer reads and writes it
    through ``JsonValues`` as the worker does), written with its index entries."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.writes = 0

    def __getitem__(self, key: str) -> bytes:
        value: bytes | None = self.store._db_for_partition(self.store.partition).get(_json(key))
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: bytes) -> None:
        self.writes += 1
        self.store._write(self.store.partition, [(_json(key), value)])

    def __delitem__(self, key: str) -> None:
        self.writes += 1
        self.store._write(self.store.partition, [(_json(key), None)])

    def __iter__(self) -> Iterator[str]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


Message = tuple[int, bytes, bytes]  # partition, key, value


def messages(events: int, seed: int, poll: int) -> tuple[list[Message], dict[str, tuple[int, int]]]:
    """The events topic's messages as ingest would write them, and each queue's true
    (decisions, verdicts) totals."""
    packed, truth = packs(events, seed, poll)
    out: list[Message] = []
    for b in packed:
        key = queue_key(b["queue_id"])
        out.append((zlib.crc32(key) % PARTITIONS, key, batches.encode(b)))
    return out, truth


def packs(
    events: int, seed: int, poll: int
) -> tuple[list[batches.EventBatch], dict[str, tuple[int, int]]]:
    """The batches ingest would make of the generator's messages (in memory, before
    ``batches.encode``), and each queue's true (decisions, verdicts) totals."""
    raw = generate(events, 20, 24, seed)
    horizon = time.time() + 900
    out: list[batches.EventBatch] = []
    for i in range(0, len(raw.messages), poll):
        per_kind: dict[str, dict[str, list[dict[str, Any]]]] = {
            "decision": defaultdict(list), "verdict": defaultdict(list),
        }  # fmt: skip
        for kind, _, value in raw.messages[i : i + poll]:
            item = fast_item(value, kind, horizon, 0)  # type: ignore[arg-type]
            assert item is not None, value
            per_kind[kind][item[0]].append(item[1])
        out += batches.pack(per_kind["decision"], per_kind["verdict"])
    truth = {q: (raw.truth.decisions[q], raw.truth.verdicts[q]) for q in raw.queues}
    return out, truth


def run(
    msgs: list[Message],
    settings: ScorerSettings,
    path: str,
    layout: tuple[int, int, int] | None = None,
) -> tuple[Scorer, int, int]:
    """Every message through process and commit; returns the scorer, events and writes."""
    store = Store(path, layout)
    table = Table(store)
    scorer = Scorer(settings, rocks.JsonValues(table), index=store)
    offsets: dict[int, int] = defaultdict(int)
    events = 0
    for partition, key, value in msgs:
        store.partition = partition
        position = (partition, offsets[partition])
        offsets[partition] += 1
        batch = control.decode_input(value, key)
        assert batch.get("v") in batches.VERSIONS
        events += batches.count(batch, "decisions") + batches.count(batch, "verdicts")  # type: ignore[arg-type]
        scorer.process(batch, time.time(), position)
        scorer.commit(batch["queue_id"])
        scorer.unsent(batch["queue_id"])
        scorer.snapshot_if_due(batch["queue_id"], time.time())
    return scorer, events, table.writes


def codec_figures(packed: list[batches.EventBatch]) -> list[str]:
    """Bytes, encoding (ingest) and decoding (the scorer) per event of these batches as v2
    (an object per event) and as ``batches.encode`` writes them (v3): the best of 7 runs."""
    n = sum(len(b["decisions"]) + len(b["verdicts"]) for b in packed)

    def best(f: Callable[[], object]) -> float:
        spent = []
        for _ in range(7):
            t = cpu()
            f()
            spent.append(cpu() - t)
        return min(spent) * 1e6 / n

    lines = []
    for name, enc in (("v2", codec.dumps), ("v3", batches.encode)):
        data = [enc(b) for b in packed]
        lines.append(
            f"{name}: {sum(map(len, data)) / n:.0f} B an event; encode "
            f"{best(lambda enc=enc: [enc(b) for b in packed]):.2f} µs, decode "  # type: ignore[misc]
            f"{best(lambda data=data: [batches.decode(d) for d in data]):.2f} µs an event"  # type: ignore[misc]
        )
    return lines


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=100_000, help="about this many raw messages")
    p.add_argument("--poll", type=int, default=20_000, help="raw messages per ingest poll")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--profile", help="cProfile statistics of the last repetition to this file")
    p.add_argument("--reduce", action="store_true", help="the last repetition in reduce()")
    p.add_argument(
        "--codec", action="store_true", help="only encode and decode the batches, v2 and v3"
    )
    p.add_argument(
        "--arl",
        choices=("c", "lapack"),
        default="c",
        help="the CUSUM designs' exact ARL: shared/stats/_lattice.c (where built) or the "
        "banded LU that runs without it",
    )
    p.add_argument(
        "--layout",
        metavar="KIB,BITS,MIB",
        help="the RocksDB layout instead of the store's: data block KiB, bloom bits a key, "
        "table file MiB (services/scorer/store.py; e.g. 4,10,8)",
    )
    p.add_argument(
        "--python-gc",
        action="store_true",
        help="Python's own collector settings, not the worker's (shared/collector.py)",
    )
    args = p.parse_args(argv)
    layout = None
    if args.layout:
        try:
            kib, bits, mib = (int(x) for x in args.layout.split(","))
        except ValueError:
            p.error(f"--layout: three integers KIB,BITS,MIB, not {args.layout!r}")
        if not (1 <= kib <= 1024 and 1 <= bits <= 64 and 1 <= mib <= 4096):
            p.error("--layout: KIB in 1..1024, BITS in 1..64, MIB in 1..4096")
        layout = (kib, bits, mib)
    if args.codec:
        print("\n".join(codec_figures(packs(args.events, args.seed, args.poll)[0])))
        return 0
    msgs, truth = messages(args.events, args.seed, args.poll)
    arl: Any = importlib.import_module("shared.stats.cusum")  # (not the package's function)
    if args.arl == "lapack":
        arl._native = None
    elif arl._native is None:
        print("shared/stats/_lattice.c is not built: the designs run on the banded LU")
    if not args.python_gc:
        settle_gc()  # as the worker does once started
    settings = ScorerSettings(grace_seconds=7200, snapshot_interval_s=1)
    ok = True
    for rep in range(args.reps):
        last = rep == args.reps - 1
        path = tempfile.mkdtemp(prefix="qw-scorer-state-")
        prof = cProfile.Profile() if args.profile and last else None
        try:
            t = cpu()
            if prof is not None:
                prof.enable()
            if args.reduce and last:
                scorer, events, writes = functools.reduce(
                    lambda acc, _: run(msgs, settings, path, layout),
                    [0],
                    run([], settings, path, layout),
                )
            else:
                scorer, events, writes = run(msgs, settings, path, layout)
            if prof is not None:
                prof.disable()
            spent = cpu() - t
        finally:
            shutil.rmtree(path, ignore_errors=True)
        got = {q: (scorer.state(q).decisions_total, scorer.state(q).verdicts_total) for q in truth}
        ok = ok and got == truth
        print(
            f"{len(msgs):,} batches, {events:,} events: CPU {spent:.2f} s, "
            f"{spent / events * 1e6:.1f} µs an event; {writes:,} table writes; totals "
            f"{'exact' if got == truth else 'WRONG'}",
            flush=True,
        )
        if prof is not None:
            prof.dump_stats(args.profile)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
