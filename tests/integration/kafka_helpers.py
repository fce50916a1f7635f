"""Reading topics back in tests, and producing events as the scorer does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared import codec
from shared.events import Breach, QualitySnapshot
from shared.kafka import make_producer
from shared.settings import KafkaSettings
from shared.topics import queue_key

DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' config_source of a topic's own setting


async def produce(kafka: KafkaSettings, events: Iterable[QualitySnapshot | Breach]) -> None:
    """Snapshots and breaches on their topics, keyed by queue as the scorer sends them."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        for e in events:
            topic = (
                kafka.topics.snapshots if isinstance(e, QualitySnapshot) else kafka.topics.breaches
            )
            await producer.send(topic, codec.dumps(e), key=queue_key(e.queue_id))
        await producer.flush()
    finally:
        await producer.stop()


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


async def read_all(
    bootstrap: str, topic: str, *, timeout: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` up to its end offsets when called, undecoded (tombstones
    included), in offset order per partition; ``TimeoutError`` if the end is not reached
    within ``timeout`` seconds."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert described["error_code"] == 0, described
    tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[ConsumerRecord[bytes, bytes]] = []
    try:
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while True:
            behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not behind:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: end offsets {ends} not reached in {timeout}s")
            polled = await consumer.getmany(*behind, timeout_ms=500)
            for tp, records in polled.items():
                out.extend(r for r in records if r.offset < ends[tp])
    finally:
        await consumer.stop()
    return out


async def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    """The settings ``topic`` has of its own (not the broker's defaults)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
    finally:
        await admin.close()
    (resource,) = response.to_object()["resources"]
    assert resource["error_code"] == 0, resource
    return {
        e["config_names"]: e["config_value"]
        for e in resource["config_entries"]
        if e["config_source"] == DYNAMIC_TOPIC_CONFIG
    }


async def set_topic_config(bootstrap: str, topic: str, config: dict[str, str]) -> None:
    """Replace the settings ``topic`` has of its own with ``config``. AlterConfigs replaces
    the whole set (a setting left out falls back to the broker's default): pass what
    ``topic_config`` returned, changed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=config)]
        )
    finally:
        await admin.close()
    for response in responses:
        for resource in response.to_object()["resources"]:
            assert resource["error_code"] == 0, resource
    # The broker applies a change when it replays the controller's record, a moment after
    # the answer; DescribeConfigs reads the same metadata image its logs are configured from.
    deadline = time.monotonic() + 30
    while (now := await topic_config(bootstrap, topic)) != config:
        assert time.monotonic() < deadline, f"{topic}: config still {now}, not {config}"
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The offsets ``group`` committed on ``topic``, per partition (absent: none yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: m.offset for tp, m in committed.items() if tp.topic == topic}


async def wait_for_progress(
    progress: Callable[[], Awaitable[tuple[int, int]]],
    check: Callable[[], None],
    share: float = 1.0,
    *,
    stuck_after: float = 180.0,
) -> tuple[int, int]:
    """Poll ``progress`` (done, end), e.g. a consumer group's committed offsets through a
    backlog, until done reaches ``share`` of end; ``check`` runs before each poll (is the
    worker alive?). Fails when done has not moved for ``stuck_after`` seconds: a hang, told
    apart from a slow machine by a generous margin."""
    last, since = -1, time.monotonic()
    while True:
        check()
        done, end = await progress()
        if done >= share * end:
            return done, end
        if done != last:
            last, since = done, time.monotonic()
        assert time.monotonic() - since < stuck_after, (
            f"no progress for {stuck_after:.0f}s at {done}/{end}"
        )
        await asyncio.sleep(0.2)
