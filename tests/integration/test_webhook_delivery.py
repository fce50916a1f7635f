"""Webhook delivery from the outbox to a real HTTP receiver that fails, then recovers."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.metrics import Metrics
from services.alerts.webhooks import SIGNATURE_HEADER, Deliverer, verify
from shared.runtime import http_server
from tests.alerts_cases import make_breach


async def _expire_leases(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Make every pending row due now, as if its backoff had passed."""
    async with sessions() as s, s.begin():
        for d in await s.scalars(select(db.Delivery).where(db.Delivery.status == "pending")):
            d.next_attempt_at = datetime.now(UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_retries_until_the_receiver_answers_across_deliverer_restarts(tmp_path: Path) -> None:
    secret = "s3cret"
    calls: list[int] = []
    bodies: list[bytes] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.body()
        verify(secret, request.headers.get(SIGNATURE_HEADER), body)
        calls.append(1)
        if len(calls) < 3:
            return Response(status_code=503)  # down for maintenance, twice
        bodies.append(body)
        return Response(status_code=204)

    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    dead_url = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens: connection refused
    engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    await db.create_schema(engine)
    sessions = db.make_sessionmaker(engine)
    async with sessions() as s, s.begin():
        await db.record_breach(
            s, make_breach("q", 0), receivers=[url, dead_url], now=datetime.now(UTC)
        )

    metrics = Metrics.create(CollectorRegistry())
    server = http_server(app, "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):  # bounded wait for the listening socket
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started
        async with httpx.AsyncClient(timeout=2) as client:
            for give_up in (3600.0, 3600.0, 0.0):  # a new deliverer each round, as after a restart
                deliverer = Deliverer(
                    sessions, client, metrics, secret=secret, receivers=[url, dead_url],
                    give_up_after_s=give_up, backoff_base_s=0.01, backoff_max_s=0.02,
                )  # fmt: skip
                await deliverer.deliver_due()
                await asyncio.sleep(0.05)
                await _expire_leases(sessions)
    finally:
        server.should_exit = True
        await task
        await engine.dispose()

    assert len(calls) == 3
    assert b'"queue_id":"q"' in bodies[0]
    reg = metrics.registry
    assert (
        reg.get_sample_value("qw_webhook_deliveries_total", {"receiver": "0", "outcome": "retry"})
        == 2
    )
    assert (
        reg.get_sample_value(
            "qw_webhook_deliveries_total", {"receiver": "0", "outcome": "delivered"}
        )
        == 1
    )
    assert (
        reg.get_sample_value("qw_webhook_deliveries_total", {"receiver": "1", "outcome": "failed"})
        == 1
    )
    async with sessions() as s:
        rows = {d.receiver: d for d in await s.scalars(select(db.Delivery))}
    assert rows[url].status == "delivered"
    assert rows[url].attempts == 3
    assert rows[dead_url].status == "failed"  # still failing when its time was up
    assert rows[dead_url].attempts == 3
    assert "Connect" in (rows[dead_url].last_error or "")
