"""A demo run deletes its own topics from the broker at the end, and only its own."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.demo.orchestrator import delete_run_topics
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings

pytestmark = pytest.mark.kafka


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_deletes_the_runs_topics_only(kafka_settings: KafkaSettings) -> None:
    run = kafka_settings.model_copy(update={"topic_prefix": kafka_settings.topic_prefix + "run-"})
    other = kafka_settings.model_copy(update={"topic_prefix": kafka_settings.topic_prefix + "x-"})
    await ensure_topics(run)
    await ensure_topics(other)
    assert {t for t in await _topics(run.bootstrap) if t.startswith(run.topic_prefix)}
    deleted = await delete_run_topics(run)
    assert deleted >= 4
    deadline = asyncio.get_running_loop().time() + 15  # deletion reaches metadata async
    while True:
        left = await _topics(run.bootstrap)
        if not {t for t in left if t.startswith(run.topic_prefix)}:
            break
        assert asyncio.get_running_loop().time() < deadline, left
        await asyncio.sleep(0.2)
    assert {t for t in left if t.startswith(other.topic_prefix)}
    assert await delete_run_topics(run) == 0
