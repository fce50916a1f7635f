"""The cyclic garbage collector's settings for a long-running service, once it started.

A service allocates a few objects an event (dicts, lists, strings) and makes almost no
reference cycles: reference counting frees what it drops. Python's collector still runs a
young collection every 700 net allocations, and every so often a full one over every
object alive, the imported modules and the framework's included; those passes found next
to nothing to free and cost the scorer a third of its CPU an event (bench/README.md, "Batch
v3, start-up and the collector"), in memory traffic more than in instructions.
"""

from __future__ import annotations

import gc

# the collector's first threshold once settled (Python's default: 700 allocations)
GC_YOUNG = 10_000


def settle_gc() -> None:
    """The objects alive now (modules, the framework's app) leave the collector's
    generations for good (``gc.freeze``), so that full collections stop scanning them again
    and again, and a young collection runs every ``GC_YOUNG`` net allocations instead of
    700. Cycles made later are still collected; a frozen object is not, should it ever end
    in an unreachable cycle (what is alive at start-up lives as long as the service)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 10, 10)
