"""Two alerts-service processes on one PostgreSQL database and the real broker deliver every
webhook once, through a slow receiver that fails some requests, while one of them is killed
with SIGKILL with deliveries in flight.

The kill happens while the receiver holds every new request (and later answers it 503) and
after every request it acknowledged has been recorded: so the unavoidable window (receiver
answered 2xx, the replica died before recording it) is closed on purpose, and any webhook id
acknowledged twice is a fault of the claim, not of the crash. The rows the dead replica had
leased must be delivered by the other one once its lease runs out, and the breaches produced
after the kill must be consumed (the partitions the dead one read move to the survivor once
the group notices) and delivered by the survivor.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.webhook_policy import generate_secret
from services.demo.orchestrator import Services, wait_http
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings
from tests.alerts_cases import make_breach
from tests.integration.kafka_helpers import produce
from tests.integration.test_alerts_replicas_pg import SlowReceiver, pg_schema, serving
from tests.integration.test_webhook_delivery import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SECRET = generate_secret()


async def _until(
    what: str, check: Callable[[], object], services: Services, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        services.check()  # a replica that exits fails the test with its log
        if check():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.05)


async def _produce(kafka: KafkaSettings, queues: list[str]) -> set[str]:
    """One breach per queue on the breaches topic; their alerts' dedup keys."""
    await produce(kafka, [make_breach(q, 0) for q in queues])
    return {f"{q}:p_chart_ucl:0" for q in queues}


async def test_two_replicas_deliver_each_webhook_once_when_one_is_killed(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await ensure_topics(kafka_settings)
    receiver = SlowReceiver(SECRET, latency_s=0.25, fail_every=4)
    async with pg_schema() as url, serving(receiver.app()) as base:
        engine = db.make_engine(url)
        sessions = db.make_sessionmaker(engine)
        env = {
            **kafka_settings.as_env(),
            "QW_DB_URL": url,
            "QW_ALERTS_WEBHOOK_URLS": json.dumps([f"{base}/hook"]),
            "QW_ALERTS_WEBHOOK_SECRET": SECRET,
            "QW_ALERTS_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
            "QW_ALERTS_WEBHOOK_TIMEOUT_S": "3",
            "QW_ALERTS_WEBHOOK_LEASE_S": "5",
            "QW_ALERTS_WEBHOOK_CONCURRENCY": "4",
            # both replicas look for due rows twice a second, as each may claim the other's
            "QW_ALERTS_WEBHOOK_IDLE_CLAIM_S": "0.5",
            "QW_ALERTS_WEBHOOK_RETRY_SCHEDULE": "200ms 400ms 800ms 1s 1s 1s 1s 1s 1s 1s",
            "QW_ALERTS_LAG_GROUPS": '["qw-alerts"]',
        }
        services = Services(env, tmp_path / "logs")
        try:
            ports = {"alerts-1": free_port(), "alerts-2": free_port()}
            for label, port in ports.items():
                services.start("alerts", as_=label, env={"QW_ALERTS_PORT": str(port)})
            for port in ports.values():
                await wait_http(f"http://127.0.0.1:{port}/healthz", services, timeout=60)
            survivor_pid = services.procs["alerts-2"].pid
            victim_pid = services.procs["alerts-1"].pid

            expected = await _produce(kafka_settings, [f"a{i:02}" for i in range(48)])
            await _until("a quarter acknowledged", lambda: len(receiver.acked) >= 12,
                         services, 40)  # fmt: skip

            # hold new requests; let those being answered finish and be recorded
            receiver.hold.set()
            await _until("answers finished", lambda: receiver.answering == 0, services, 5)
            recorded: set[str] = set()

            async def all_acked_recorded() -> bool:
                recorded.clear()
                recorded.update(await _delivered_keys(sessions))
                return set(receiver.acked) <= recorded

            deadline = time.monotonic() + 5
            while not await all_acked_recorded():
                assert time.monotonic() < deadline, set(receiver.acked) - recorded
                await asyncio.sleep(0.05)

            services.end("alerts-1", signal.SIGKILL)
            orphaned = await _leased_by(sessions, victim_pid)
            receiver.hold.clear()
            receiver.release.set()  # the held requests get a 503, the dead one's go nowhere

            expected |= await _produce(kafka_settings, [f"b{i:02}" for i in range(24)])
            deadline = time.monotonic() + 45
            while True:
                services.check()
                rows = await _deliveries(sessions)
                if len(rows) == len(expected) and all(r.status != "pending" for r, _ in rows):
                    break
                assert time.monotonic() < deadline, (
                    f"{sum(r.status == 'pending' for r, _ in rows)} of {len(rows)} rows pending, "
                    f"{len(expected)} expected"
                )
                await asyncio.sleep(0.2)
        finally:
            receiver.release.set()  # a held request would keep the receiver from stopping
            services.stop()
            await engine.dispose()

    assert receiver.rejected == []
    assert receiver.duplicates() == {}  # no webhook id acknowledged twice
    # every alert's firing webhook arrived, under the id it was written with
    assert set(receiver.acked) == {r.webhook_id for r, _ in rows}
    assert receiver.failed > 0  # and some after a 500 and a retry
    assert {r.status for r, _ in rows} == {"delivered"}
    assert sorted(a.dedup_key for _, a in rows) == sorted(expected)
    assert {r.event for r, _ in rows} == {"firing"}
    assert not any(a.suppressed for _, a in rows)
    # the dead replica held leases when it died; the survivor delivered those rows
    assert orphaned, "the killed replica held no lease: the takeover was not exercised"
    by_id = {r.id: r for r, _ in rows}
    assert all(f":{survivor_pid}:" in (by_id[i].claimed_by or "") for i in orphaned)


async def _deliveries(
    sessions: async_sessionmaker[AsyncSession],
) -> list[tuple[db.Delivery, db.Alert]]:
    async with sessions() as s:
        q = select(db.Delivery, db.Alert).join(db.Alert, db.Alert.id == db.Delivery.alert_id)
        return [(d, a) for d, a in (await s.execute(q)).all()]


async def _delivered_keys(sessions: async_sessionmaker[AsyncSession]) -> set[str]:
    return {d.webhook_id or "" for d, _ in await _deliveries(sessions) if d.status == "delivered"}


async def _leased_by(sessions: async_sessionmaker[AsyncSession], pid: int) -> set[int]:
    """Rows a process (by pid, part of its claims' ``claimed_by``) holds a lease on now."""
    async with sessions() as s, s.begin():
        now = await db.clock(s)
        q = select(db.Delivery.id).where(
            db.Delivery.status == "pending",
            db.Delivery.lease_until > now,
            db.Delivery.claimed_by.like(f"%:{pid}:%"),
        )
        return set(await s.scalars(q))
