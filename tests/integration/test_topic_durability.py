"""Topic replication, min.insync.replicas and producer acks on the real (single-node) broker."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from typer.testing import CliRunner

from services.cli import app
from shared.kafka import TopicCreationError, ensure_topics, make_producer
from shared.settings import KafkaSettings
from tests.integration.kafka_helpers import read_topic

pytestmark = pytest.mark.kafka

DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' config_source of a topic's own setting


async def _describe(bootstrap: str, topics: list[str]) -> dict[str, dict[str, Any]]:
    """Per topic: its min.insync.replicas entry and its partitions' replica counts."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, t, configs={"min.insync.replicas": None})
            for t in topics
        ]
        responses = await admin.describe_configs(resources)
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    out: dict[str, dict[str, Any]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            (entry,) = resource["config_entries"]
            out[resource["resource_name"]] = {"min_insync": entry}
    for topic in described:
        out[topic["topic"]]["replicas"] = {len(p["replicas"]) for p in topic["partitions"]}
    return out


async def test_topics_get_the_configured_replication_and_min_insync(
    kafka_settings: KafkaSettings,
) -> None:
    assert (kafka_settings.replication_factor, kafka_settings.min_insync_replicas) == (1, 1)
    await ensure_topics(kafka_settings)
    names = [s.name for s in kafka_settings.topics.specs()]
    described = await _describe(kafka_settings.bootstrap, names)
    assert set(described) == set(names)
    for topic, d in described.items():
        # set on the topic itself, not inherited from the broker's own default of 1
        assert d["min_insync"]["config_value"] == "1", topic
        assert d["min_insync"]["config_source"] == DYNAMIC_TOPIC_CONFIG, topic
        assert d["replicas"] == {1}, topic
    await ensure_topics(kafka_settings)  # idempotent: every topic exists already


async def test_more_replicas_than_brokers_is_a_clear_error(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = KafkaSettings(
        bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, partitions=1,
        replication_factor=3, min_insync_replicas=2,
    )  # fmt: skip
    with pytest.raises(TopicCreationError) as info:
        await ensure_topics(settings)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot create topic {topic_prefix}qw.baselines.v1 and 8 more ")
    assert f"at {kafka_bootstrap}: QW_KAFKA_REPLICATION_FACTOR=3 needs 3 brokers" in message
    assert "the cluster has 1 " in message
    assert "QW_KAFKA_REPLICATION_FACTOR=1 QW_KAFKA_MIN_INSYNC_REPLICAS=1" in message
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert not [t for t in await admin.list_topics() if t.startswith(topic_prefix)]
    finally:
        await admin.close()


def test_qwatch_command_stops_with_one_line(kafka_bootstrap: str, topic_prefix: str) -> None:
    """What a user running ``qwatch simulate`` by hand against the local broker sees."""
    env = {
        "QW_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "QW_TOPIC_PREFIX": topic_prefix,
        "QW_KAFKA_REPLICATION_FACTOR": "3",
        "QW_KAFKA_MIN_INSYNC_REPLICAS": "2",
    }
    result = CliRunner(env=env).invoke(app, ["simulate", "--hours", "0.1", "--speed", "0"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("qwatch: cannot create topic ")
    assert "QW_KAFKA_REPLICATION_FACTOR=3" in line


async def _produce(settings: KafkaSettings, topic: str, n: int) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, b"1", key=b"q") for _ in range(n)])
    finally:
        await producer.stop()


@pytest.mark.parametrize("acks", ["all", "1", "0"])
async def test_producers_write_with_each_acks(
    kafka_bootstrap: str, topic_prefix: str, acks: Literal["all", "1", "0"]
) -> None:
    def settings(acks: Literal["all", "1", "0"]) -> KafkaSettings:
        return KafkaSettings(
            bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, partitions=1,
            replication_factor=1, min_insync_replicas=1, acks=acks,
        )  # fmt: skip

    topic = settings(acks).topics.breaches
    await ensure_topics(settings(acks))
    # until the new partition's leader serves, acks=all retries while acks=0 drops silently
    await _produce(settings("all"), topic, 1)
    await _produce(settings(acks), topic, 3)
    assert len(await read_topic(kafka_bootstrap, topic, expect=4)) == 4
