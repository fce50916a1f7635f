"""Path (c) of ``bench/pipeline.py``: the ceiling, a bare aiokafka loop.

    python bench/pipeline_bare.py BOOTSTRAP TOPIC GROUP

``getmany`` + ``orjson.loads`` + a dict of per-queue hourly counts, offsets committed after
each poll; no validation, no deduplication, no state, no output. Runs until SIGTERM, then
prints the number of events it counted (duplicates included) as JSON on stdout. Imports
nothing of the project, so its CPU time is the loop's and aiokafka's alone.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections import defaultdict

import orjson
from aiokafka import AIOKafkaConsumer


async def run(bootstrap: str, topic: str, group: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    counts: dict[tuple[str, str], int] = defaultdict(int)
    await consumer.start()
    try:
        while not stop.is_set():
            polled = await consumer.getmany(timeout_ms=200, max_records=20000)
            for records in polled.values():
                for r in records:
                    e = orjson.loads(r.value)
                    t = e.get("decided_at") or e["reviewed_at"]
                    counts[(e["queue_id"], t[:13])] += 1  # the hour: 2026-10-01T07
            if polled:
                await consumer.commit()
    finally:
        await consumer.stop()
    print(json.dumps({"counted": sum(counts.values()), "windows": len(counts)}), flush=True)


if __name__ == "__main__":
    asyncio.run(run(*sys.argv[1:4]))
