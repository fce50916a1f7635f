"""Webhook delivery from the outbox to a real HTTP receiver on loopback, every signature
checked with the reference Standard Webhooks verifier (the ``standardwebhooks`` package)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
import uvicorn
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.api import create_app
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from services.alerts.webhook_policy import generate_secret, parse_schedule, parse_secrets
from services.alerts.webhooks import ID_HEADER, SIGNATURE_HEADER, Deliverer
from shared import codec
from shared.runtime import _Server, http_server
from tests.alerts_cases import make_breach, make_snapshot, sqlite_sessions

SECRET = generate_secret()
KEYS = parse_secrets(SECRET, production=False)
FAST = parse_schedule("10ms 10ms")  # three attempts in all


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _make_due(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Make every pending row due now, as if its retry delay had passed."""
    async with sessions() as s, s.begin():
        for d in await s.scalars(select(db.Delivery).where(db.Delivery.status == "pending")):
            d.next_attempt_at = datetime.now(UTC)


@dataclass
class Receiver:
    """A real receiver: verifies each request with ``standardwebhooks`` (every secret in
    ``secrets`` must verify it alone), records it, and answers what ``answer`` says."""

    secrets: list[str]
    answer: Callable[[int], Response] = lambda n: Response(status_code=204)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            headers = dict(request.headers)
            for secret in self.secrets:
                try:
                    standardwebhooks.Webhook(secret).verify(body, headers)
                except standardwebhooks.webhooks.WebhookVerificationError as exc:
                    self.rejected.append(str(exc))
                    return Response(status_code=401)
            self.requests.append((headers, body))
            return self.answer(len(self.requests))

        return app


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[int]:
    port = free_port()
    server = http_server(app, "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):  # bounded wait for the listening socket
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started
        yield port
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def one_alert(
    tmp_path: Path, receiver: Receiver
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], str]]:
    """``receiver`` served on loopback and an outbox holding one firing alert for it;
    yields the sessions and the receiver's URL."""
    async with serving(receiver.app()) as port, sqlite_sessions(tmp_path) as sessions:
        url = f"http://127.0.0.1:{port}/hook"
        async with sessions() as s, s.begin():
            await db.record_breach(s, make_breach("q", 0), receivers=[url], now=datetime.now(UTC))
        yield sessions, url


def deliverer(
    sessions: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    metrics: Metrics,
    receivers: list[str],
    **kw: object,
) -> Deliverer:
    args: dict[str, object] = {"keys": KEYS, "schedule": FAST, "allow_private": True}
    args.update(kw)
    return Deliverer(sessions, client, metrics, receivers=receivers, **args)  # type: ignore[arg-type]


async def _rows(sessions: async_sessionmaker[AsyncSession]) -> list[db.Delivery]:
    async with sessions() as s:
        return list(await s.scalars(select(db.Delivery).order_by(db.Delivery.id)))


def _count(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_retries_with_the_same_id_and_body_until_the_receiver_answers(
    tmp_path: Path,
) -> None:
    """503 twice, then 204; a receiver nobody listens on fails once the schedule is used
    up; the alert resolves meanwhile, and the firing still says firing on every retry."""
    receiver = Receiver([SECRET], lambda n: Response(status_code=503 if n < 3 else 204))
    metrics = Metrics.create(CollectorRegistry())
    async with serving(receiver.app()) as port, sqlite_sessions(tmp_path) as sessions:
        url = f"http://127.0.0.1:{port}/hook"
        dead_url = f"http://127.0.0.1:{free_port()}/hook"  # connection refused
        now = datetime.now(UTC)
        async with sessions() as s, s.begin():
            await db.record_breach(s, make_breach("q", 0), receivers=[url, dead_url], now=now)
        async with httpx.AsyncClient(timeout=2) as client:
            for round_ in range(3):  # a new deliverer each round, as after a restart
                d = deliverer(sessions, client, metrics, [url, dead_url])
                assert await d.deliver_due() == 2
                if round_ == 0:  # resolved after the first (failed) attempt of its firing
                    async with sessions() as s, s.begin():
                        snap = make_snapshot("q", 3, [], streak=5)
                        resolved = await db.resolve_recovered(
                            s, snap, receivers=[url], now=now + timedelta(hours=1)
                        )
                        assert len(resolved) == 1
                await _make_due(sessions)
            assert await deliverer(sessions, client, metrics, [url]).deliver_due() == 1
        rows = await _rows(sessions)

    assert receiver.rejected == []
    firings = [(h, b) for h, b in receiver.requests if codec.loads(b)["event"] == "firing"]
    assert len(firings) == 3
    assert len({h[ID_HEADER] for h, _ in firings}) == 1  # the idempotency key
    assert len({b for _, b in firings}) == 1  # byte for byte the same body
    body = codec.loads(firings[0][1])
    assert (body["type"], body["alert"]["status"], body["alert"]["resolved_at"]) == (
        "alert.firing", "firing", None,
    )  # fmt: skip
    (resolved_h, resolved_b), = [
        (h, b) for h, b in receiver.requests if codec.loads(b)["event"] == "resolved"
    ]  # fmt: skip
    assert receiver.requests[-1][1] == resolved_b  # after the firing, never before
    assert resolved_h[ID_HEADER] != firings[0][0][ID_HEADER]
    assert codec.loads(resolved_b)["alert"]["status"] == "resolved"

    by = {(r.receiver, r.event): r for r in rows}
    assert (by[url, "firing"].status, by[url, "firing"].attempts) == ("delivered", 3)
    assert by[url, "firing"].response_status == 204
    dead = by[dead_url, "firing"]
    assert (dead.status, dead.attempts, dead.response_status) == ("failed", 3, None)
    assert "Connect" in (dead.last_error or "")
    assert _count(metrics, "qw_webhook_deliveries_total", receiver="0", outcome="retry") == 2
    assert _count(metrics, "qw_webhook_deliveries_total", receiver="0", outcome="delivered") == 2
    assert _count(metrics, "qw_webhook_deliveries_total", receiver="1", outcome="failed") == 1
    assert _count(metrics, "qw_webhook_attempts_total", receiver="0", result="5xx") == 2
    assert _count(metrics, "qw_webhook_attempts_total", receiver="1", result="connect_error") == 3


@pytest.mark.parametrize(
    ("status", "final"), [(400, True), (404, True), (301, True), (408, False), (429, False)]
)
async def test_a_4xx_other_than_408_and_429_fails_at_once(
    tmp_path: Path, status: int, final: bool
) -> None:
    answer = "no such hook " + "x" * 1000
    receiver = Receiver(
        [SECRET], lambda n: Response(answer, status_code=status, headers={"Location": "/x"})
    )
    async with (
        one_alert(tmp_path, receiver) as (sessions, url),
        httpx.AsyncClient(timeout=2) as client,
    ):
        d = deliverer(sessions, client, Metrics.create(CollectorRegistry()), [url])
        assert await d.deliver_due() == 1
        (row,) = await _rows(sessions)
    assert len(receiver.requests) == 1
    assert row.response_status == status
    assert row.status == ("failed" if final else "pending")
    assert (row.last_error or "").startswith(f"HTTP {status}: no such hook xxx")
    assert len(row.last_error or "") < 320  # the answer is kept, bounded


async def test_retry_after_is_honoured_within_its_bound(tmp_path: Path) -> None:
    receiver = Receiver(
        [SECRET], lambda n: Response(status_code=429, headers={"Retry-After": "120"})
    )
    async with (
        one_alert(tmp_path, receiver) as (sessions, url),
        httpx.AsyncClient(timeout=2) as client,
    ):
        metrics = Metrics.create(CollectorRegistry())
        for bound, low, high in ((3600.0, 120, 133), (30.0, 30, 34)):
            started = datetime.now(UTC)
            d = deliverer(sessions, client, metrics, [url], retry_after_max_s=bound)
            assert await d.deliver_due() == 1
            (row,) = await _rows(sessions)
            wait = (row.next_attempt_at - started).total_seconds()
            assert low <= wait <= high, (bound, wait)
            await _make_due(sessions)


async def _webhooks_api(sessions: async_sessionmaker[AsyncSession], url: str) -> Any:
    """``GET /v1/webhooks`` of the alerts service's real app, in process."""
    settings = AlertsSettings(webhook_urls=[url], webhook_allow_private_networks=True)
    app = create_app(settings, sessions, Metrics.create(CollectorRegistry()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as api:
        resp = await api.get("/v1/webhooks")
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_410_gone_disables_the_endpoint_until_a_restart(tmp_path: Path) -> None:
    receiver = Receiver([SECRET], lambda n: Response("gone", status_code=410))
    metrics = Metrics.create(CollectorRegistry())
    async with serving(receiver.app()) as port, sqlite_sessions(tmp_path) as sessions:
        url = f"http://127.0.0.1:{port}/hook"
        async with sessions() as s, s.begin():
            for i in range(3):
                await db.record_breach(
                    s, make_breach(f"q{i}", 0), receivers=[url], now=datetime.now(UTC)
                )
        async with httpx.AsyncClient(timeout=2) as client:
            d = deliverer(sessions, client, metrics, [url], concurrency=1)
            assert await d.deliver_due() == 1
            assert await d.deliver_due() == 0  # the other two wait
            assert _count(metrics, "qw_webhook_endpoint_disabled", receiver="0") == 1
            async with sessions() as s:
                (gone,) = await db.disabled_endpoints(s)
            assert (gone.url, gone.disabled_reason) == (url, "HTTP 410: gone")
            (shown,) = await _webhooks_api(sessions, url)
            assert (shown["receiver"], shown["target"]) == ("0", f"http://127.0.0.1:{port}")
            assert (shown["disabled_reason"], bool(shown["disabled_at"])) == (
                "HTTP 410: gone",
                True,
            )
            rows = await _rows(sessions)
            assert [(r.status, r.response_status) for r in rows] == [
                ("failed", 410), ("pending", None), ("pending", None),
            ]  # fmt: skip

            receiver.answer = lambda n: Response(status_code=204)
            restarted = deliverer(sessions, client, metrics, [url], concurrency=8)
            await restarted.enable_configured()
            assert _count(metrics, "qw_webhook_endpoint_disabled", receiver="0") == 0
            assert (await _webhooks_api(sessions, url))[0]["disabled_at"] is None
            assert await restarted.deliver_due() == 2
        assert [r.status for r in await _rows(sessions)] == ["failed", "delivered", "delivered"]
    assert len(receiver.requests) == 3


async def test_two_secrets_sign_each_delivery_during_a_rotation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    old, new = generate_secret(), generate_secret()
    # each one alone must verify the request; the first answer is a 503, so a retry is logged
    receiver = Receiver([old, new], lambda n: Response(status_code=503 if n == 1 else 204))
    async with one_alert(tmp_path, receiver) as (sessions, url):
        keys = parse_secrets(f"{new} {old}", production=True)
        async with httpx.AsyncClient(timeout=2) as client:
            d = deliverer(sessions, client, Metrics.create(CollectorRegistry()), [url], keys=keys)
            assert await d.deliver_due() == 1
            await _make_due(sessions)
            assert await d.deliver_due() == 1
        assert [r.status for r in await _rows(sessions)] == ["delivered"]
    assert receiver.rejected == []
    for headers, _ in receiver.requests:
        assert len(headers[SIGNATURE_HEADER].split(" ")) == 2
        assert all(s.startswith("v1,") for s in headers[SIGNATURE_HEADER].split(" "))
    assert "retry 1 in" in caplog.text  # the deliverer logged, and no secret
    assert not any(x.removeprefix("whsec_") in caplog.text for x in (old, new))


async def test_the_address_a_name_resolves_to_is_checked_when_connecting(
    tmp_path: Path,
) -> None:
    """A public-looking name that resolves to loopback (DNS rebinding) is refused at connect
    time; with private networks allowed the same name reaches the address it was checked
    at, with its own Host header."""
    receiver = Receiver([SECRET])
    resolved: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["127.0.0.1"]

    metrics = Metrics.create(CollectorRegistry())
    async with serving(receiver.app()) as port, sqlite_sessions(tmp_path) as sessions:
        url = f"http://hooks.example.com:{port}/hook"
        async with sessions() as s, s.begin():
            await db.record_breach(s, make_breach("q", 0), receivers=[url], now=datetime.now(UTC))
        async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
            strict = deliverer(
                sessions, client, metrics, [url], allow_private=False, resolver=rebinding
            )
            assert await strict.deliver_due() == 1
            (row,) = await _rows(sessions)
            assert row.status == "pending"
            assert "refused: hooks.example.com resolves to a loopback address" in (
                row.last_error or ""
            )
            assert receiver.requests == []
            assert _count(metrics, "qw_webhook_attempts_total", receiver="0",
                          result="refused_address") == 1  # fmt: skip
            await _make_due(sessions)
            allowed = deliverer(
                sessions, client, metrics, [url], allow_private=True, resolver=rebinding
            )
            assert await allowed.deliver_due() == 1
    assert resolved == ["hooks.example.com", "hooks.example.com"]
    ((headers, _),) = receiver.requests
    assert headers["host"] == f"hooks.example.com:{port}"


async def test_a_literal_private_address_is_refused_when_connecting(tmp_path: Path) -> None:
    receiver = Receiver([SECRET])
    async with (
        one_alert(tmp_path, receiver) as (sessions, url),
        httpx.AsyncClient(timeout=2) as client,
    ):
        d = deliverer(
            sessions, client, Metrics.create(CollectorRegistry()), [url], allow_private=False
        )
        assert await d.deliver_due() == 1
        (row,) = await _rows(sessions)
    assert receiver.requests == []
    assert "refused: 127.0.0.1 is a loopback address" in (row.last_error or "")


async def test_https_to_a_pinned_address_checks_the_certificate_against_the_name(
    tmp_path: Path,
) -> None:
    """TLS through the checked address: the server name and the certificate check are the
    URL's host's, so the right name is delivered and a name the certificate does not hold
    is refused."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    await asyncio.to_thread(
        subprocess.run,
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=hooks.example.test", "-addext", "subjectAltName=DNS:hooks.example.test"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    receiver = Receiver([SECRET])
    port = free_port()
    server = _Server(
        uvicorn.Config(receiver.app(), host="127.0.0.1", port=port, log_level="warning",
                       lifespan="off", ssl_keyfile=str(key), ssl_certfile=str(cert))
    )  # fmt: skip
    task = asyncio.create_task(server.serve())

    async def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started
        good = f"https://hooks.example.test:{port}/hook"
        wrong = f"https://other.example.test:{port}/hook"
        trust = ssl.create_default_context(cafile=str(cert))
        async with sqlite_sessions(tmp_path) as sessions:
            async with sessions() as s, s.begin():
                await db.record_breach(
                    s, make_breach("q", 0), receivers=[good, wrong], now=datetime.now(UTC)
                )
            async with httpx.AsyncClient(timeout=2, verify=trust, trust_env=False) as client:
                d = deliverer(sessions, client, Metrics.create(CollectorRegistry()),
                              [good, wrong], resolver=to_loopback)  # fmt: skip
                assert await d.deliver_due() == 2
            by = {r.receiver: r for r in await _rows(sessions)}
    finally:
        server.should_exit = True
        await task
    assert by[good].status == "delivered"
    assert by[wrong].status == "pending"
    assert "CERTIFICATE_VERIFY_FAILED" in (by[wrong].last_error or "")
    ((headers, _),) = receiver.requests
    assert headers["host"] == f"hooks.example.test:{port}"


async def test_an_idle_deliverer_claims_rarely_and_a_new_row_goes_out_at_once(
    tmp_path: Path,
) -> None:
    """A claim is a write transaction on the loop the health API answers from: with nothing
    pending the deliverer claims about once per ``idle_s``, not every ``interval_s``. A row
    this process writes goes out within a few intervals; a row another replica wrote (here:
    inserted without this process's outbox write) within ``idle_s``."""
    receiver = Receiver([SECRET])
    metrics = Metrics.create(CollectorRegistry())
    claims: list[float] = []
    async with serving(receiver.app()) as port, sqlite_sessions(tmp_path) as sessions:
        url = f"http://127.0.0.1:{port}/hook"
        async with httpx.AsyncClient(timeout=2) as client:
            d = deliverer(sessions, client, metrics, [url])
            claim = d._claim

            async def counted(limit: int) -> Any:
                claims.append(asyncio.get_running_loop().time())
                return await claim(limit)

            d._claim = counted  # type: ignore[method-assign]
            stop = asyncio.Event()
            run = asyncio.create_task(d.run(stop, interval_s=0.05, idle_s=1.5))
            try:
                await asyncio.sleep(1.0)
                assert len(claims) <= 2, claims  # every 0.05 s would be 20
                t0 = asyncio.get_running_loop().time()
                async with sessions() as s, s.begin():
                    await db.record_breach(
                        s, make_breach("q", 0), receivers=[url], now=datetime.now(UTC)
                    )
                while not receiver.requests:
                    assert asyncio.get_running_loop().time() - t0 < 1.0, "not sent promptly"
                    await asyncio.sleep(0.01)
                # another replica's row: this process did not write it
                async with sessions() as s, s.begin():
                    (row,) = await s.scalars(select(db.Delivery))
                    s.add(db.Delivery(
                        alert_id=row.alert_id, receiver=url, event="resolved", status="pending",
                        attempts=0, next_attempt_at=datetime.now(UTC),
                        created_at=datetime.now(UTC), webhook_id=db.new_webhook_id(),
                        body=row.body,
                    ))  # fmt: skip
                t1 = asyncio.get_running_loop().time()
                while len(receiver.requests) < 2:
                    assert asyncio.get_running_loop().time() - t1 < 3.0, "not sent within idle_s"
                    await asyncio.sleep(0.01)
            finally:
                stop.set()
                await run
    assert receiver.rejected == []
