"""``qwatch deadletters`` through the real broker and a real ``qwatch ingest``: events of a
queue nobody admitted are refused (raw topics and HTTP), listed with their reason, replayed
after the queue is admitted, and then reach the events topic, each exactly as sent; an event
that is still malformed is dead-lettered again, never lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from services.cli import app
from services.demo.orchestrator import Services, wait_http
from shared import codec
from shared.kafka import ensure_topics, make_producer
from shared.settings import KafkaSettings
from tests.factories import decision, verdict
from tests.integration.kafka_helpers import read_all
from tests.integration.test_webhook_delivery import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


async def _event_ids(kafka: KafkaSettings) -> list[str]:
    out: list[str] = []
    for rec in await read_all(kafka.bootstrap, kafka.topics.events):
        batch = codec.loads(rec.value)
        for kind, id_field in (("decisions", "decision_id"), ("verdicts", "verdict_id")):
            events = batch.get(kind, [])  # v3: one list per field (shared/batches.py)
            out += (
                events.get(id_field, [])
                if isinstance(events, dict)
                else [e[id_field] for e in events]
            )
    return sorted(out)


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


async def test_refused_events_are_listed_and_replayed_after_the_fix(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await ensure_topics(kafka_settings)
    topics = kafka_settings.topics
    port, alerts_port = free_port(), free_port()
    env = {
        **kafka_settings.as_env(),
        "QW_ALERTS_PORT": str(alerts_port),
        "QW_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}",
    }
    services = Services(env, tmp_path / "logs")
    runner = CliRunner(env=kafka_settings.as_env())

    async def qwatch(*args: str) -> Result:  # the CLI runs its own event loop: in a thread
        return await asyncio.to_thread(lambda: runner.invoke(app, list(args)))

    url = f"http://127.0.0.1:{port}"
    try:
        services.start("ingest", env={"QW_INGEST_PORT": str(port)})
        services.start("alerts")  # counts every dead letter (qw_deadletters_total)
        await wait_http(f"{url}/healthz", services)
        await wait_http(f"http://127.0.0.1:{alerts_port}/healthz", services)
        producer = make_producer(kafka_settings)
        await producer.start()
        try:
            for topic, item in (
                (topics.decisions_raw, decision(1, "hate-pt")),
                (topics.verdicts_raw, verdict(1, "hate-pt")),
                (topics.decisions_raw, {**decision(9, "hate-pt"), "action": "vaporise"}),
            ):
                await producer.send_and_wait(topic, codec.dumps(item), key=b"hate-pt")
        finally:
            await producer.stop()
        async with httpx.AsyncClient(timeout=10) as c:
            r = await c.post(f"{url}/v1/decisions", json=[decision(2, "hate-pt")])
            assert r.status_code == 422, r.text
            r = await c.post(f"{url}/v1/verdicts", json=[verdict(2, "hate-pt")])
            assert r.status_code == 422, r.text

        async def five_letters() -> bool:
            listed = await qwatch("deadletters", "list", "--json")
            return listed.exit_code == 0 and len(listed.output.splitlines()) == 5

        await _until(five_letters, "five dead letters")
        listed = await qwatch("deadletters", "list", "--queue", "hate-pt")
        assert listed.exit_code == 0, listed.output
        assert listed.output.startswith("5 dead letter(s)")
        assert "4  ingest  queue_not_admitted" in listed.output
        assert "1  ingest  enum" in listed.output
        assert "queue 'hate-pt' is not admitted" in listed.output
        only = await qwatch("deadletters", "list", "--reason", "not admitted", "--json")
        assert len(only.output.splitlines()) == 4
        assert await _event_ids(kafka_settings) == []

        # the fix: admit the queue; a dry run says where each would go and sends nothing
        assert (await qwatch("queues", "admit", "hate-pt")).exit_code == 0
        dry = await qwatch("deadletters", "replay", "--since", "1h")
        assert dry.exit_code == 0, dry.output
        assert f"3  -> {topics.decisions_raw}" in dry.output
        assert f"2  -> {topics.verdicts_raw}" in dry.output
        assert "dry run: 5 to replay" in dry.output
        assert await _event_ids(kafka_settings) == []

        sent = await qwatch("deadletters", "replay", "--queue", "hate-pt", "--yes")
        assert sent.exit_code == 0, sent.output
        assert "replayed 5 message(s)" in sent.output
        want = ["d1", "d2", "v1", "v2"]

        async def replayed() -> bool:
            return await _event_ids(kafka_settings) == want

        await _until(replayed, f"{want} on the events topic")

        # the still-malformed decision was refused again, with its reason: six letters now
        async def six_letters() -> bool:
            listed = await qwatch("deadletters", "list", "--json")
            return len(listed.output.splitlines()) == 6

        await _until(six_letters, "the malformed event dead-lettered again")
        again = await qwatch("deadletters", "list", "--reason", "action", "--json")
        assert len(again.output.splitlines()) == 2

        # the alerts service counted all six, by stage and kind
        async def counted() -> bool:
            async with httpx.AsyncClient(timeout=10) as c:
                text = (await c.get(f"http://127.0.0.1:{alerts_port}/metrics")).text
            return (
                'qw_deadletters_total{kind="queue_not_admitted",stage="ingest"} 4.0' in text
                and 'qw_deadletters_total{kind="invalid",stage="ingest"} 2.0' in text
            )

        await _until(counted, "qw_deadletters_total on the alerts service's /metrics")
        bad = await qwatch("deadletters", "list", "--since", "yesterday")
        assert bad.exit_code == 2
        assert "a duration" in bad.output
        services.check()
    finally:
        services.stop()
