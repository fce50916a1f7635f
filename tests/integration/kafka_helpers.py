"""Reading topics back in tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer

from shared import codec


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, timeout: float = 30.0
) -> list[tuple[bytes | None, Any]]:
    """Read until ``expect`` messages arrived (or the timeout); returns (key, decoded value)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[tuple[bytes | None, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            polled = await consumer.getmany(timeout_ms=500)
            for records in polled.values():
                out.extend((r.key, codec.loads(r.value)) for r in records)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return out
