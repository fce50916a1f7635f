"""Subgroups on the real broker, through the running alerts service, back out of its API.

The whole service runs (``services.alerts.main.run``: topics, consumer, HTTP server) on a
private topic prefix and a SQLite file; the test plays the scorer's part by producing
SubgroupPoint records (and one snapshot) the way the scorer publishes them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from services.alerts.main import run
from services.alerts.settings import AlertsSettings
from shared import codec
from shared.kafka import ensure_topics, make_producer
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import queue_key, subgroup_key
from tests.alerts_cases import at, chart_pages, make_point, make_snapshot
from tests.factories import iso
from tests.integration.test_webhook_delivery import free_port

pytestmark = pytest.mark.kafka


def _samples(metrics_text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics_text)
        for s in family.samples
        if s.name == name
    }


async def _wait_until_committed(
    kafka: KafkaSettings, group: str, topics: list[str], service: asyncio.Task[None]
) -> None:
    """Until the group has committed every record of ``topics``: the consumer commits after
    a poll's transaction and metrics, so then everything produced is visible."""
    tps = [TopicPartition(t, p) for t in topics for p in range(kafka.partitions)]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    probe = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    await probe.start()
    try:
        ends = await probe.end_offsets(tps)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if service.done():
                service.result()  # raises the service's failure
                pytest.fail("the alerts service stopped")
            committed = await admin.list_consumer_group_offsets(kafka.topic_prefix + group)
            if all(ends[tp] == 0 or (tp in committed and committed[tp].offset == ends[tp])
                   for tp in tps):  # fmt: skip
                return
            await asyncio.sleep(0.2)
        pytest.fail(f"{group} did not commit {ends} within 60 s: {committed}")
    finally:
        await probe.stop()
        await admin.close()


async def test_subgroups_reach_the_chart_api_through_the_running_service(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    topics = kafka_settings.topics
    await ensure_topics(kafka_settings)
    port = free_port()
    settings = AlertsSettings(
        kafka=kafka_settings,
        db=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"),
        port=port,
        lag_groups=["qw-alerts"],
    )
    records: list[tuple[bytes, bytes | None]] = []
    for p in [
        *(make_point("q", h) for h in range(4)),
        make_point("q", 1, 2),
        make_point("q", 1, 1),  # an older revision after the newer one (same key: in order)
        make_point("q", 3, 1, errors=40, signals=["p_chart_ucl"]),  # a revision: no alert
        make_point("other", 0),
    ]:
        records.append((subgroup_key(p.queue_id, int(p.start.timestamp())), codec.dumps(p)))
    records.append((b"q@0", b"{not a subgroup"))
    records.append((b"q@1", None))  # a tombstone
    snapshot = make_snapshot("q", 3, []).model_copy(update={"late_verdicts_total": 3})

    stop = asyncio.Event()
    service = asyncio.create_task(run(settings, stop))
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topics.subgroups, value, key=key)
        await producer.send_and_wait(topics.snapshots, codec.dumps(snapshot), key=queue_key("q"))
        await _wait_until_committed(
            kafka_settings, settings.consumer_group, [topics.subgroups, topics.snapshots], service
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            metrics_text = (await client.get("/metrics")).text
            pages = await chart_pages(client, "q", limit=3)
            health = await client.get("/v1/queues/q/health")
            firing = await client.get("/v1/alerts", params={"status": "firing"})
            ranged = await client.get(
                "/v1/queues/q/chart", params={"from": iso(at(1)), "to": iso(at(3))}
            )
            missing = await client.get("/v1/queues/nobody/chart")
    finally:
        await producer.stop()
        stop.set()
        await service

    points = [p for page in pages for p in page]
    assert [len(page) for page in pages] == [3, 1]
    assert [(p["start"], p["revision"]) for p in points] == [
        (iso(at(0)), 0),
        (iso(at(1)), 2),
        (iso(at(2)), 0),
        (iso(at(3)), 1),
    ]
    assert points[3]["signals"] == ["p_chart_ucl"]
    assert (points[3]["errors"], points[3]["original_errors"], points[3]["late"]) == (40, 5, 1)
    assert firing.json() == []
    assert [p["start"] for p in ranged.json()["points"]] == [iso(at(1)), iso(at(2))]
    assert missing.status_code == 404
    assert health.json()["snapshot"]["late_verdicts_total"] == 3
    assert _samples(metrics_text, "qw_queue_late_verdicts") == {(("queue", "q"),): 3.0}
    malformed = _samples(metrics_text, "qw_events_malformed_total")
    assert malformed[(("topic", topics.subgroups),)] == 2
