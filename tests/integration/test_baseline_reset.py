"""A baseline reset through the running services: the real broker, the scorer worker and
the alerts service (its own processes, SQLite). An operator with an ``admin`` key asks for a
new Phase I over the API; the control record reaches the scorer on the queue's partition;
the queue shows ``learning``, the audit trail lists who, when and why, the chart marks the
change, the metrics say it, and once the queue has learnt, the new baseline is published.
Also: the refusals (401, 403, 404, 409, 422), a retried request applied once, the CLI
(``qwatch baseline list|reset``), and a malformed control record on the input topic
dead-lettered with its reason."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.demo.orchestrator import Services, wait_http
from services.ingest.validation import validate_items
from shared import batches, codec
from shared.apikeys import KeyStore
from shared.kafka import ensure_topics, make_producer
from shared.settings import KafkaSettings
from shared.topics import queue_key
from tests.factories import T0, decision, verdict
from tests.integration.kafka_helpers import read_topic
from tests.integration.test_webhook_delivery import free_port

pytestmark = [pytest.mark.kafka]


def traffic(queue: str, first: int, last: int, rate: float, seed: int) -> list[bytes]:
    """Hours ``first``..``last``-1 of ``queue``: 100 decisions an hour, each QA-reviewed
    five minutes later, as event batches."""
    rng = random.Random(seed)
    items = []
    for hour in range(first, last):
        for i in range(100):
            at = T0 + timedelta(hours=hour, seconds=i * 30)
            items.append(decision(f"{queue}-{hour}-{i}", queue, at))
            items.append(
                verdict(f"{queue}-{hour}-{i}", queue, at + timedelta(minutes=5),
                        correct=rng.random() >= rate)
            )  # fmt: skip
    return [batches.encode(b) for b in batches.group_by_queue(validate_items(items, None).events)]


async def until(what: str, check: Callable[[], Awaitable[Any]], services: Services) -> Any:
    deadline = time.monotonic() + 90
    while True:
        got = await check()
        if got:
            return got
        services.check()
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within 90 s; logs in {services.log_dir}")
        await asyncio.sleep(0.3)


async def test_a_reset_through_the_api_starts_a_new_phase_one_in_the_scorer(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await ensure_topics(kafka_settings)
    topics = kafka_settings.topics
    keys = KeyStore(tmp_path / "keys.json")
    _, reader = keys.create("wall", ["read"])
    admin_key, admin = keys.create("ops lead", ["admin"])
    port = free_port()
    env = {
        **kafka_settings.as_env(),
        "QW_API_KEYS_FILE": str(tmp_path / "keys.json"),
        "QW_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}",
        "QW_ALERTS_PORT": str(port),
        "QW_SCORER_DATA_DIR": str(tmp_path / "scorer"),
        "QW_SCORER_PHASE1_SUBGROUPS": "3",
        "QW_SCORER_GRACE_SECONDS": "0",
        "QW_SCORER_SNAPSHOT_INTERVAL_S": "0",
        "QW_SCORER_BASELINE_P": '{"std": 0.05}',
    }
    services = Services(env, tmp_path / "logs")
    base = f"http://127.0.0.1:{port}"
    producer = make_producer(kafka_settings)
    await producer.start()

    async def send(queue: str, values: list[bytes]) -> None:
        for value in values:
            await producer.send_and_wait(topics.events, value, key=queue_key(queue))

    try:
        services.start("scorer")
        services.start("alerts")
        await wait_http(f"{base}/healthz", services)
        await send("q", traffic("q", 0, 6, 0.05, 1))
        await send("std", traffic("std", 0, 2, 0.05, 2))
        admin_auth = {"Authorization": f"Bearer {admin}"}
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:

            async def health(queue: str) -> dict[str, Any] | None:
                r = await c.get(f"/v1/queues/{queue}/health")
                return r.json() if r.status_code == 200 else None

            async def frozen() -> bool:
                h, s = await health("q"), await health("std")
                return bool(
                    h
                    and s
                    and h["health"]["baseline"] == "estimated"
                    and s["snapshot"]["baseline_source"]
                )

            await until("q's first baseline frozen, std known", frozen, services)
            first_p = (await health("q"))["snapshot"]["baseline_p"]  # type: ignore[index]

            # who may ask, and what is refused
            reset = "/v1/queues/q/baseline:reset"
            body = {"reason": "policy spam.v4 in force (CHG-1234)"}
            assert (await c.post(reset, json=body)).status_code == 401
            r = await c.post(reset, json=body, headers={"X-API-Key": reader})
            assert r.status_code == 403
            r = await c.post("/v1/queues/nobody/baseline:reset", json=body, headers=admin_auth)
            assert r.status_code == 404
            r = await c.post(reset, json={"reason": ""}, headers=admin_auth)
            assert r.status_code == 422
            assert r.json()["detail"][0]["loc"] == ["body", "reason"]
            r = await c.post("/v1/queues/std/baseline:reset", json=body, headers=admin_auth)
            assert r.status_code == 409, r.text

            # the reset, and the same request again (a client retrying): one new Phase I
            once = {**admin_auth, "Idempotency-Key": "chg-1234"}
            r = await c.post(reset, json=body, headers=once)
            assert r.status_code == 202, r.text
            asked = r.json()
            assert asked["actor"] == f"key {admin_key.id} (ops lead)"
            again = await c.post(reset, json=body, headers=once)
            assert (again.status_code, again.json()["replayed"]) == (202, True)

            async def learning() -> dict[str, Any] | None:
                h = await health("q")
                return h if h and h["health"]["baseline"] == "learning (0/3)" else None

            h = await until("q learning after the reset", learning, services)
            assert h["snapshot"]["baseline_epoch"] == 1
            assert h["snapshot"]["baseline_p"] is None
            assert h["health"]["last_baseline_reset"].endswith(
                f"by key {admin_key.id} (ops lead): policy spam.v4 in force (CHG-1234)"
            )
            trail = (await c.get("/v1/queues/q/baselines")).json()["baselines"]
            assert [(b["epoch"], b["status"], b["current"]) for b in trail] == [
                (1, "learning", True), (0, "frozen", False),
            ]  # fmt: skip
            assert (trail[0]["request_id"], trail[0]["request_status"]) == (
                asked["request_id"], "sent",
            )  # fmt: skip
            assert trail[1]["baseline_p"] == first_p
            metrics = (await c.get("/metrics")).text
            assert 'qw_queue_baseline_learning{queue="q"} 1.0' in metrics
            assert 'qw_queue_baseline_resets{queue="q"} 1.0' in metrics

            # the queue learns its new error rate: a new baseline, published and marked
            await send("q", traffic("q", 6, 12, 0.40, 3))

            async def relearnt() -> list[dict[str, Any]] | None:
                got = (await c.get("/v1/queues/q/baselines")).json()["baselines"]
                return got if got[0]["status"] == "frozen" else None

            trail = await until("q's new baseline frozen", relearnt, services)
            assert [(b["epoch"], b["status"]) for b in trail] == [(1, "frozen"), (0, "frozen")]
            assert 0.3 < trail[0]["baseline_p"] < 0.5
            assert trail[0]["subgroups"] == 3
            chart = (await c.get("/v1/queues/q/chart", params={"limit": 1000})).json()
            marks = [(m["epoch"], m["event"]) for m in chart["baseline_changes"]]
            assert marks == [(0, "frozen"), (1, "reset"), (1, "frozen")]
            phase1_from = chart["baseline_changes"][1]["phase1_from"]
            statuses = [(p["start"], p["status"]) for p in chart["points"]]
            assert [s for t, s in statuses if t >= phase1_from][:3] == ["phase1"] * 3
            # no chart alarmed on the new normal; the target rule went on: 77.5% over the last
            # 24 h, below 90% with confidence at the rule's 99.9992% bound too
            rules = {a["rule"] for a in (await c.get("/v1/alerts")).json() if a["queue_id"] == "q"}
            assert rules == {"accuracy_24h_below_target"}

        # the CLI: the trail, and a configured baseline reset only when asked to
        def qwatch(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "services.cli", "baseline", *args, "--api", base],
                env={**os.environ, "QW_API_KEY": admin}, capture_output=True, text=True,
                timeout=60, check=False,
            )  # fmt: skip

        listed = qwatch("list", "q")
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert lines[0].startswith("*  1 frozen"), lines
        assert "policy spam.v4" in lines[0], lines
        assert lines[1].startswith("   0 frozen"), lines
        refused = qwatch("reset", "std", "--reason", "contract renegotiated")
        assert refused.returncode == 1
        assert "409" in refused.stderr
        assert "--replace-configured" in refused.stderr  # the option, in the CLI's words
        done = qwatch("reset", "std", "--reason", "contract renegotiated", "--replace-configured")
        assert done.returncode == 0, done.stderr
        assert f"asked by key {admin_key.id} (ops lead)" in done.stdout
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:

            async def std_learning() -> bool:
                r = await c.get("/v1/queues/std/health")
                return bool(r.json()["snapshot"]["baseline_epoch"] == 1)

            await until("std reset through the CLI", std_learning, services)

        # a malformed control record on the input topic: dead-lettered with its reason
        await producer.send_and_wait(
            topics.events,
            codec.dumps({"v": 1, "kind": "baseline_reset", "queue_id": "q", "reason": "x"}),
            key=queue_key("q"),
        )
        dead = await read_topic(kafka_settings.bootstrap, topics.deadletter, expect=1, timeout=60)
        assert dead
        assert dead[0][1]["stage"] == "scorer"
        assert "baseline_reset: missing fields" in dead[0][1]["reason"]
        published = await read_topic(
            kafka_settings.bootstrap, topics.baselines, expect=3, timeout=30
        )
        assert sorted((v["epoch"], v["event"]) for _, v in published if v["queue_id"] == "q") == [
            (0, "frozen"), (1, "frozen"), (1, "reset"),
        ]  # fmt: skip
        services.check()
    finally:
        await producer.stop()
        services.stop()
