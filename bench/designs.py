"""What the scorer's CUSUM designs cost, with the exact ARL in C and without it.

    .venv/bin/python bench/designs.py [--events 2000000] [--seed 11]

Runs ``bench/pipeline.py``'s data (the same seeded raw messages, packed into the batches
ingest makes) through the pure ``Scorer`` (``bench/scorer_state.py``'s path) and records
the arguments of every design it asks (``services.scorer.cusum.design``). Then each is made
again from a cold cache, once with ``shared/stats/_lattice.c`` and once with the banded LU
(LAPACK) that runs without it, alternating, and the CPU of each, and whether the two agree
limit for limit, are printed. Exit status 1 when a design differs (or the module is not
built).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scorer_state import cpu, messages, run
from services.scorer import cusum as live
from services.scorer.settings import ScorerSettings
from shared.collector import settle_gc

# (the module, not the function of that name the package exports)
cusum_module: Any = importlib.import_module("shared.stats.cusum")

Design = tuple[int, int, int] | None  # (m, g, limit)


def record(events: int, seed: int) -> list[tuple[Any, ...]]:
    """The arguments of every design the scorer asked, in order (the scorer's own cache
    serves repeats, so each is a design it computed)."""
    msgs, _ = messages(events, seed, 20_000)
    asked: list[tuple[Any, ...]] = []
    cached = live.design

    def recording(*args: Any) -> Any:
        if not any(args == a for a in asked):
            asked.append(args)
        return cached(*args)

    live.design = recording  # type: ignore[assignment]
    settle_gc()
    try:
        with tempfile.TemporaryDirectory(prefix="qw-designs-") as path:
            run(msgs, ScorerSettings(grace_seconds=7200, snapshot_interval_s=1), path)
    finally:
        live.design = cached
    return asked


def replay(asked: list[tuple[Any, ...]], compiled: bool) -> tuple[list[float], list[Design]]:
    """Each design from a cold cache: its CPU seconds and its lattice."""
    native = cusum_module._native
    if not compiled:
        cusum_module._native = None
    times, out = [], []
    try:
        for args in asked:
            live.design.cache_clear()
            cusum_module._CURVES.clear()
            t = cpu()
            d = live.design(*args)
            times.append(cpu() - t)
            out.append(None if d is None else (d.m, d.g, d.limit))
    finally:
        cusum_module._native = native
    return times, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=2_000_000, help="about this many raw messages")
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args(argv)
    if cusum_module._native is None:
        print("shared/stats/_lattice.c is not built (pip install -e . with a C compiler)")
        return 1
    asked = record(args.events, args.seed)
    if not asked:  # (a queue designs once its Phase I has 24 hourly subgroups of 20 verdicts)
        print(f"no design was asked on {args.events:,} raw messages: try more")
        return 1
    live.design("upper", 0.05, 2.0, 1e5, (10.5, 190.5))  # (imports scipy.stats: not timed)
    runs: dict[str, list[list[float]]] = {"C": [], "LAPACK": []}
    results: dict[str, list[Design]] = {}
    for compiled in (True, False, True, False):
        name = "C" if compiled else "LAPACK"
        times, results[name] = replay(asked, compiled)
        runs[name].append(times)
    same = sum(a == b for a, b in zip(results["C"], results["LAPACK"], strict=True))
    sides = {side: sum(a[0] == side for a in asked) for side in live.SIDES}
    print(
        f"{len(asked)} designs ({sides['upper']} upper, {sides['lower']} lower) asked by the "
        f"scorer on {args.events:,} raw messages (seed {args.seed}), each from a cold cache:"
    )
    print("| ARL | CPU s (two runs) | median ms | max ms |")
    print("|---|---|---|---|")
    for name, reps in runs.items():
        each = [min(ts) for ts in zip(*reps, strict=True)]
        print(
            f"| {name} | {', '.join(f'{sum(ts):.2f}' for ts in reps)} | "
            f"{statistics.median(each) * 1e3:.0f} | {max(each) * 1e3:.0f} |"
        )
    print(f"identical, limit for limit: {same} of {len(asked)}")
    return 0 if same == len(asked) else 1


if __name__ == "__main__":
    sys.exit(main())
