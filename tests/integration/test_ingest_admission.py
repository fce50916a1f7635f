"""Known queues only, through the real broker: two ``qwatch ingest`` processes with the
default QW_INGEST_QUEUES=admitted and API keys on. An unknown queue's events land in the
dead-letter topic with the reason (HTTP and raw topics alike), an admitted queue's pass, an
admission made through one process reaches the other at once and survives its restart, and
only an admin key admits."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from services.cli import app
from services.demo.orchestrator import Services, wait_http
from shared import codec
from shared.apikeys import KeyStore
from shared.kafka import ensure_topics, make_producer
from shared.settings import KafkaSettings
from tests.factories import decision
from tests.integration.kafka_helpers import read_topic
from tests.integration.test_webhook_delivery import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


async def test_only_admitted_queues_pass_and_admission_reaches_every_ingest(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await ensure_topics(kafka_settings)
    topics = kafka_settings.topics
    store = KeyStore(tmp_path / "api-keys.json")
    _, admin = store.create("ops", ["admin"])
    _, producer_key = store.create("producer", ["ingest"])
    ports = {"a": free_port(), "b": free_port()}
    env = {**kafka_settings.as_env(), "QW_API_KEYS_FILE": str(tmp_path / "api-keys.json")}
    services = Services(env, tmp_path / "logs")
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    as_admin = {"Authorization": f"Bearer {admin}"}
    as_producer = {"Authorization": f"Bearer {producer_key}"}

    def start(name: str) -> None:
        services.start("ingest", as_=name, env={"QW_INGEST_PORT": str(ports[name])})

    try:
        for name in ports:
            start(name)
        for url in urls.values():
            await wait_http(f"{url}/healthz", services)
        async with httpx.AsyncClient(timeout=10) as c:
            # nothing admitted: the event is refused, named, and dead-lettered with the reason
            r = await c.post(f"{urls['a']}/v1/decisions", json=[decision(1, "hate-en")],
                             headers=as_producer)  # fmt: skip
            assert r.status_code == 422
            assert r.json()["accepted"] == 0
            assert r.json()["rejected"][0]["errors"][0]["type"] == "queue_not_admitted"
            # only an admin key admits
            assert (await c.put(f"{urls['a']}/v1/queues/hate-en")).status_code == 401
            put = await c.put(f"{urls['a']}/v1/queues/hate-en", headers=as_producer)
            assert put.status_code == 403
            put = await c.put(f"{urls['a']}/v1/queues/hate-en", headers=as_admin)
            assert put.json() == {"queue_id": "hate-en", "admitted": True, "how": "runtime"}
            # the other process takes it at once (it reads the log to its end before refusing)
            r = await c.post(f"{urls['b']}/v1/decisions", json=[decision(2, "hate-en")],
                             headers=as_producer)  # fmt: skip
            assert r.status_code == 202, r.text

            # the raw topics: an admitted queue's event passes, an unknown one's is refused
            kafka_producer = make_producer(kafka_settings)
            await kafka_producer.start()
            unknown = codec.dumps(decision(3, "spam-xx"))
            try:
                await kafka_producer.send_and_wait(
                    topics.decisions_raw, codec.dumps(decision(4, "hate-en")), key=b"hate-en"
                )
                await kafka_producer.send_and_wait(topics.decisions_raw, unknown, key=b"spam-xx")
            finally:
                await kafka_producer.stop()
            events = await read_topic(kafka_settings.bootstrap, topics.events, expect=2)
            ids = sorted(d for _, v in events for d in v["decisions"].get("decision_id", []))
            assert ids == ["d2", "d4"]
            dead = await read_topic(kafka_settings.bootstrap, topics.deadletter, expect=2)
            by_source = {v["source_topic"]: v for _, v in dead}
            http, raw = by_source[None], by_source[topics.decisions_raw]
            assert http["reason"].startswith("queue 'hate-en' is not admitted")
            assert raw["reason"] == (
                "queue 'spam-xx' is not admitted (QW_INGEST_QUEUES=admitted: admit it with "
                "`qwatch queues admit spam-xx` or PUT /v1/queues/spam-xx)"
            )
            assert raw["errors"][0]["type"] == "queue_not_admitted"
            assert base64.b64decode(raw["value_b64"]) == unknown
            metrics = (await c.get(f"{urls['a']}/metrics")).text
            assert 'reason="queue_not_admitted",source="http"} 1.0' in metrics

            # a restarted process knows what was admitted before it started
            services.end("b")
            start("b")
            await wait_http(f"{urls['b']}/healthz", services)
            listed = (await c.get(f"{urls['b']}/v1/queues", headers=as_producer)).json()
            assert listed["mode"] == "admitted"
            assert listed["runtime"] == ["hate-en"]
            # removal reaches the other process too
            gone = await c.delete(f"{urls['b']}/v1/queues/hate-en", headers=as_admin)
            assert gone.json()["admitted"] is False
            r = await c.post(f"{urls['a']}/v1/decisions", json=[decision(5, "hate-en")],
                             headers=as_producer)  # fmt: skip
            assert r.status_code == 422
        services.check()
    finally:
        services.stop()


def test_qwatch_queues_admits_lists_and_removes(kafka_settings: KafkaSettings) -> None:
    runner = CliRunner(env=kafka_settings.as_env())
    empty = runner.invoke(app, ["queues", "list"])  # (none yet: said, not silence)
    assert empty.exit_code == 0, empty.output
    assert empty.stdout == ""
    assert "no queue admitted at run time" in empty.stderr
    admitted = runner.invoke(app, ["queues", "admit", "hate-en", "spam-de"])
    assert admitted.exit_code == 0, admitted.output
    assert runner.invoke(app, ["queues", "remove", "spam-de"]).exit_code == 0
    listed = runner.invoke(app, ["queues", "list"])
    assert [line.split()[0] for line in listed.output.splitlines()] == ["hate-en"]
    assert "qwatch queues admit" in listed.output
    bad = runner.invoke(app, ["queues", "admit", "bad id"])
    assert bad.exit_code == 2


async def test_the_admission_log_reads_every_partition_of_a_topic_made_with_several(
    kafka_settings: KafkaSettings,
) -> None:
    """An operator may create the admitted-queues topic before the first start, with more
    partitions than QualityWatch would (a topic that exists keeps its own configuration):
    the reader follows every one of them, not partition 0 alone."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from shared.admission import AdmissionLog, admission_record
    from shared.topics import queue_key

    topic = kafka_settings.topics.queues
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap)
    await producer.start()
    try:
        for partition, queue in enumerate(["q-zero", "q-one", "q-two"]):
            await producer.send_and_wait(
                topic, admission_record(queue, "test"), key=queue_key(queue), partition=partition
            )
    finally:
        await producer.stop()
    seen: dict[str, object] = {}
    log = AdmissionLog(kafka_settings, seen.__setitem__)
    await log.start()
    try:
        assert sorted(seen) == ["q-one", "q-two", "q-zero"]
    finally:
        await log.stop()
