"""Kafka durability settings: production defaults, refused combinations, the child's env."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.demo.orchestrator import local_kafka
from shared.settings import KafkaSettings

DURABILITY_ENV = ("QW_KAFKA_REPLICATION_FACTOR", "QW_KAFKA_MIN_INSYNC_REPLICAS", "QW_KAFKA_ACKS")


@pytest.fixture(autouse=True)
def _no_durability_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/local/test.sh exports the single broker's values; these tests set their own."""
    for var in DURABILITY_ENV:
        monkeypatch.delenv(var, raising=False)


def test_defaults_are_a_production_cluster() -> None:
    s = KafkaSettings()
    assert (s.replication_factor, s.min_insync_replicas, s.acks) == (3, 2, "all")


def test_the_environment_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QW_KAFKA_REPLICATION_FACTOR", "1")
    monkeypatch.setenv("QW_KAFKA_MIN_INSYNC_REPLICAS", "1")
    monkeypatch.setenv("QW_KAFKA_ACKS", "1")
    s = KafkaSettings()
    assert (s.replication_factor, s.min_insync_replicas, s.acks) == (1, 1, "1")


@pytest.mark.parametrize(("replication", "min_insync"), [(1, 2), (3, 4), (2, 3)])
def test_more_in_sync_replicas_than_replicas_is_refused(replication: int, min_insync: int) -> None:
    with pytest.raises(ValidationError) as info:
        KafkaSettings(replication_factor=replication, min_insync_replicas=min_insync)
    message = str(info.value)
    assert f"QW_KAFKA_MIN_INSYNC_REPLICAS={min_insync} exceeds" in message
    assert f"QW_KAFKA_REPLICATION_FACTOR={replication}" in message


def test_half_of_the_single_broker_override_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QW_KAFKA_REPLICATION_FACTOR", "1")  # min.insync.replicas stays 2
    with pytest.raises(ValidationError, match="QW_KAFKA_MIN_INSYNC_REPLICAS=2 exceeds"):
        KafkaSettings()


@pytest.mark.parametrize(("replication", "min_insync"), [(1, 1), (3, 3), (3, 1), (5, 3)])
def test_in_sync_replicas_up_to_the_replication_factor(replication: int, min_insync: int) -> None:
    s = KafkaSettings(replication_factor=replication, min_insync_replicas=min_insync)
    assert (s.replication_factor, s.min_insync_replicas) == (replication, min_insync)


@pytest.mark.parametrize("field", ["replication_factor", "min_insync_replicas"])
def test_zero_replicas_is_refused(field: str) -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        KafkaSettings.model_validate({field: 0})


@pytest.mark.parametrize("acks", ["all", "1", "0"])
def test_acks_values(acks: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QW_KAFKA_ACKS", acks)
    assert KafkaSettings().acks == acks


@pytest.mark.parametrize("acks", ["-1", "2", "ALL", "leader"])
def test_other_acks_are_refused(acks: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QW_KAFKA_ACKS", acks)
    with pytest.raises(ValidationError, match="acks"):
        KafkaSettings()


def test_empty_acks_is_unset_the_durable_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QW_KAFKA_ACKS", "")  # empty is unset (docs/configuration.md)
    assert KafkaSettings().acks == "all"


def test_local_kafka_is_one_replica_whatever_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QW_KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("QW_KAFKA_MIN_INSYNC_REPLICAS", "3")
    s = local_kafka(topic_prefix="p-", partitions=2)
    assert (s.replication_factor, s.min_insync_replicas) == (1, 1)
    assert (s.topic_prefix, s.partitions) == ("p-", 2)


def test_as_env_gives_a_child_process_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    s = KafkaSettings(
        bootstrap="kafka-1:9092,kafka-2:9092", topic_prefix="staging-", partitions=12,
        client_id="qw-test", replication_factor=1, min_insync_replicas=1, acks="0",
    )  # fmt: skip
    env = s.as_env()
    assert env["QW_TOPIC_PREFIX"] == "staging-"
    assert env["QW_KAFKA_REPLICATION_FACTOR"] == "1"
    assert env["QW_KAFKA_ACKS"] == "0"
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert KafkaSettings() == s


@pytest.mark.parametrize("prefix", ["", "qa.", "ci-run_7.", "x" * 100])
def test_a_topic_prefix_that_starts_a_topic_name(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QW_TOPIC_PREFIX", prefix)
    assert KafkaSettings().topic_prefix == prefix


@pytest.mark.parametrize("prefix", ["bad prefix!", "qa/", "prod:", "é.", "x" * 101])
def test_a_topic_prefix_kafka_would_refuse_is_refused_by_its_name(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every topic and group starts with it: refused at start, in one line naming
    QW_TOPIC_PREFIX (read under its own name, not QW_KAFKA_'s), not by the broker later."""
    from services.cli import settings_error

    monkeypatch.setenv("QW_TOPIC_PREFIX", prefix)
    with pytest.raises(ValidationError) as exc:
        KafkaSettings()
    line = settings_error(exc.value)
    assert line.startswith("invalid settings: QW_TOPIC_PREFIX="), line
    assert "QW_KAFKA_QW" not in line
    assert "cannot start a Kafka topic name" in line
