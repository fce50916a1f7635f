"""Alerts replicas sharing one PostgreSQL database, without Kafka: the outbox claim
(``FOR UPDATE SKIP LOCKED`` and a lease), the result recorded only by the claim that holds
the row, the schema created by replicas starting together and upgraded from an older
version, the per-queue poll lock, and two deliverers sending through one slow, failing
receiver. The two-process run with Kafka and a SIGKILL is test_alerts_replicas.py.

Each test gets its own schema (``search_path`` in the URL), dropped at the end. Reached as in
test_postgres_local.py: ``QW_TEST_PG_URL``; unreachable skips, and fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import standardwebhooks
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from services.alerts import db
from services.alerts.consumer import AlertsConsumer
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from services.alerts.webhook_policy import generate_secret, parse_schedule, parse_secrets
from services.alerts.webhooks import ID_HEADER, Deliverer
from shared import codec
from shared.runtime import http_server
from shared.settings import KafkaSettings
from tests.alerts_cases import NOW, URLS, make_breach, run_repository_cases
from tests.integration.test_postgres_local import _pg_url, _unreachable
from tests.integration.test_webhook_delivery import free_port
from tests.unit.test_alerts_consumer import BREACH, rec

pytestmark = pytest.mark.postgres

Sessions = async_sessionmaker[AsyncSession]


@contextlib.asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A fresh schema on the test server; yields a URL whose connections work in it."""
    url = _pg_url()
    schema = f"qw_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url, connect_args={"connect_timeout": 5})
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f"create schema {schema}"))
    except (OperationalError, OSError) as exc:
        await admin.dispose()
        _unreachable(str(exc).splitlines()[0])
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f"drop schema {schema} cascade"))
        await admin.dispose()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with pg_schema() as url:
        yield url


@contextlib.asynccontextmanager
async def replicas(url: str, n: int) -> AsyncIterator[list[Sessions]]:
    """``n`` engines on one database, as ``n`` replicas have (each its own pool), with the
    schema created."""
    engines: list[AsyncEngine] = [db.make_engine(url) for _ in range(n)]
    try:
        await db.create_schema(engines[0])
        yield [db.make_sessionmaker(e) for e in engines]
    finally:
        for e in engines:
            await e.dispose()


async def seed(sessions: Sessions, alerts: int, receivers: list[str], now: datetime = NOW) -> None:
    async with sessions() as s, s.begin():
        for i in range(alerts):
            await db.record_breach(s, make_breach(f"q{i:03}", 0), receivers=receivers, now=now)


async def rows(sessions: Sessions) -> list[db.Delivery]:
    async with sessions() as s:
        return list(await s.scalars(select(db.Delivery).order_by(db.Delivery.id)))


def ids(claimed: list[tuple[db.Delivery, db.Alert]]) -> set[int]:
    return {d.id for d, _ in claimed}


async def test_repository_cases_on_postgresql(pg_url: str) -> None:
    async with replicas(pg_url, 1) as (sessions,):
        await run_repository_cases(sessions)


async def test_a_claimer_skips_rows_another_is_claiming_instead_of_waiting(pg_url: str) -> None:
    async with replicas(pg_url, 3) as (a, b, c):
        await seed(a, 20, URLS)  # 40 rows
        async with a() as sa, sa.begin():
            first = await db.claim_due(sa, NOW, lease_s=60, limit=15, owner="A")
            # A's claim is not committed: its rows are locked, and not yet leased for others
            async with b() as sb, sb.begin():
                second = await asyncio.wait_for(
                    db.claim_due(sb, NOW, lease_s=60, limit=100, owner="B"), 5
                )
        assert (len(first), len(second)) == (15, 25)
        assert not ids(first) & ids(second)
        async with c() as sc, sc.begin():
            assert await db.claim_due(sc, NOW + timedelta(seconds=59), lease_s=60) == []
        claims = [d.claimed_by or "" for d in await rows(c)]
        assert len(set(claims)) == 40  # one claim each, told apart by record_attempt
        assert sorted({x.split("#")[0] for x in claims}) == ["A", "B"]


async def test_many_concurrent_claimers_share_the_outbox_without_overlap(pg_url: str) -> None:
    async with replicas(pg_url, 6) as many:
        await seed(many[0], 60, URLS)  # 120 rows
        got: dict[int, list[int]] = {}

        async def claimer(i: int, sessions: Sessions) -> None:
            got[i] = []
            while True:
                async with sessions() as s, s.begin():
                    claimed = await db.claim_due(s, NOW, lease_s=60, limit=3, owner=str(i))
                if not claimed:
                    return
                got[i].extend(ids(claimed))

        await asyncio.wait_for(asyncio.gather(*(claimer(i, s) for i, s in enumerate(many))), 30)
        every = [row for claimed in got.values() for row in claimed]
        assert len(every) == len(set(every)) == 120
        assert sum(1 for claimed in got.values() if claimed) >= 2  # they really did share


async def test_an_expired_lease_passes_to_another_claim_and_the_old_one_records_nothing(
    pg_url: str,
) -> None:
    async with replicas(pg_url, 2) as (a, b):
        await seed(a, 1, URLS[:1])
        async with a() as s, s.begin():
            ((row, _),) = await db.claim_due(s, NOW, lease_s=60, owner="A")
        old_claim = row.claimed_by
        assert old_claim is not None
        async with b() as s, s.begin():
            assert await db.claim_due(s, NOW + timedelta(seconds=59.9), lease_s=60) == []
        async with b() as s, s.begin():  # A died or hung past its lease
            ((again, _),) = await db.claim_due(
                s, NOW + timedelta(seconds=60), lease_s=60, owner="B"
            )
        new_claim = again.claimed_by
        assert again.id == row.id
        assert new_claim is not None
        assert new_claim != old_claim
        async with a() as s, s.begin():  # A wakes up: neither its result nor a release counts
            late = NOW + timedelta(seconds=61)
            assert await db.record_attempt(s, row.id, now=late, error=None, retry_at=None,
                                           claimed_by=old_claim) is None  # fmt: skip
            assert not await db.release(s, row.id, old_claim)
        (held,) = await rows(a)
        assert (held.status, held.attempts, held.claimed_by) == ("pending", 0, new_claim)
        async with b() as s, s.begin():
            done = await db.record_attempt(s, row.id, now=late, error=None, retry_at=None,
                                           claimed_by=new_claim)  # fmt: skip
            assert done is not None
        (final,) = await rows(a)
        assert (final.status, final.attempts, final.lease_until) == ("delivered", 1, None)
        async with b() as s, s.begin():  # a delivered row is never recorded again
            assert await db.record_attempt(s, row.id, now=late, error="HTTP 500", retry_at=late,
                                           claimed_by=new_claim) is None  # fmt: skip


async def test_a_released_claim_is_due_again_at_once(pg_url: str) -> None:
    async with replicas(pg_url, 1) as (sessions,):
        await seed(sessions, 1, URLS[:1])
        async with sessions() as s, s.begin():
            ((row, _),) = await db.claim_due(s, NOW, lease_s=60, owner="A")
            assert await db.release(s, row.id, row.claimed_by or "")
        async with sessions() as s, s.begin():
            assert ids(await db.claim_due(s, NOW, lease_s=60, owner="B")) == {row.id}


async def test_replicas_starting_together_create_and_upgrade_the_schema_once(
    pg_url: str,
) -> None:
    engines = [db.make_engine(pg_url) for _ in range(4)]
    try:
        await asyncio.gather(*(db.create_schema(e) for e in engines))  # a fresh database
        sessions = db.make_sessionmaker(engines[0])
        await seed(sessions, 1, URLS[:1])
        async with engines[0].begin() as conn:  # the tables as the previous versions made them
            await conn.execute(
                text("ALTER TABLE qw_deliveries DROP COLUMN claimed_by, DROP COLUMN lease_until, "
                     "DROP COLUMN webhook_id, DROP COLUMN body, DROP COLUMN response_status")
            )  # fmt: skip
            await conn.execute(text("DROP TABLE qw_webhook_endpoints"))
        await asyncio.gather(*(db.create_schema(e) for e in engines))  # the upgrade, 4 times
        async with sessions() as s, s.begin():
            ((row, alert),) = await db.claim_due(s, NOW, lease_s=60, owner="A")
        assert (alert.queue_id, row.status) == ("q000", "pending")
        assert (row.claimed_by or "").startswith("A#")
        assert row.webhook_id == "q000:p_chart_ucl:0:firing"  # the old Idempotency-Key
        assert codec.loads(row.body or "")["alert"]["status"] == "firing"
        async with sessions() as s, s.begin():
            await db.disable_endpoint(s, URLS[0], now=NOW, reason="HTTP 410")  # the new table
    finally:
        for e in engines:
            await e.dispose()


async def test_an_endpoint_disabled_by_one_replica_holds_back_every_replicas_claims(
    pg_url: str,
) -> None:
    async with replicas(pg_url, 3) as (a, b, c):
        await seed(a, 3, URLS)  # 3 rows to each receiver

        async def disable(sessions: Sessions) -> None:
            async with sessions() as s, s.begin():
                await db.disable_endpoint(s, URLS[0], now=NOW, reason="HTTP 410: gone")

        await asyncio.gather(disable(a), disable(b))  # two replicas told 410 at once
        async with c() as s, s.begin():
            claimed = await db.claim_due(s, NOW, lease_s=60, limit=100, owner="C")
            assert {d.receiver for d, _ in claimed} == {URLS[1]}
            (gone,) = await db.disabled_endpoints(s)
            assert (gone.url, gone.disabled_reason) == (URLS[0], "HTTP 410: gone")
        async with b() as s, s.begin():  # a replica starts: the configured ones are enabled
            assert await db.enable_endpoints(s, URLS) == [URLS[0]]
        async with a() as s, s.begin():
            claimed = await db.claim_due(s, NOW, lease_s=60, limit=100, owner="A")
            assert {d.receiver for d, _ in claimed} == {URLS[0]}
            assert await db.disabled_endpoints(s) == []


async def test_polls_on_one_queue_wait_for_each_other_and_other_queues_do_not(
    pg_url: str,
) -> None:
    async with replicas(pg_url, 2) as (a, b):

        async def lock_in_b(queues: list[str]) -> None:
            async with b() as s, s.begin():
                await db.lock_queues(s, queues)

        async with a() as s, s.begin():
            await db.lock_queues(s, ["q", "r"])
            await asyncio.wait_for(lock_in_b(["other", "x"]), 5)
            waiting = asyncio.create_task(lock_in_b(["z", "r"]))
            await asyncio.sleep(0.5)
            assert not waiting.done()
        await asyncio.wait_for(waiting, 5)


async def test_two_replicas_reading_the_same_breaches_record_each_alert_once(
    pg_url: str,
) -> None:
    """After a rebalance two replicas may handle the same records at once; without the
    queue lock both insert the alert and one poll fails on the unique dedup key."""
    settings = AlertsSettings(
        kafka=KafkaSettings(), webhook_urls=URLS, webhook_allow_private_networks=True
    )
    async with replicas(pg_url, 2) as (a, b):
        one = AlertsConsumer(settings, a, Metrics.create(CollectorRegistry()))
        two = AlertsConsumer(settings, b, Metrics.create(CollectorRegistry()))
        for hour in range(8):
            poll = [rec(BREACH, codec.dumps(make_breach(f"q{i}", hour)), i) for i in range(6)]
            await asyncio.gather(one.handle(poll), two.handle(poll))
        async with a() as s:
            alerts = list(await s.scalars(select(db.Alert)))
        assert len(alerts) == 48
        # both read the same breach (the same breach id): a copy, not a second occurrence
        assert {x.occurrences for x in alerts} == {1}
        # the first breach of each queue fires, the later ones are held while it is open
        assert sum(1 for x in alerts if not x.suppressed) == 6
        assert len(await rows(a)) == 6 * len(URLS)


SECRET = generate_secret()
KEYS = parse_secrets(SECRET, production=False)
SCHEDULE = parse_schedule("50ms 100ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms")


@dataclass
class SlowReceiver:
    """A real webhook receiver: checks the signature, answers after ``latency_s``, fails
    every ``fail_every``-th request with a 500, and counts its 2xx answers per webhook id
    (``webhook-id``). Signatures are checked with the standardwebhooks package. While ``hold`` is set, a new request waits for ``release`` and
    then gets a 503: never acknowledged."""

    secret: str
    latency_s: float
    fail_every: int = 0
    acked: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    failed: int = 0
    answering: int = 0  # requests past the hold, not answered yet
    held: int = 0
    rejected: list[str] = field(default_factory=list)
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            try:
                standardwebhooks.Webhook(self.secret).verify(body, dict(request.headers))
            except standardwebhooks.webhooks.WebhookVerificationError as exc:
                self.rejected.append(str(exc))
                return Response(status_code=401)
            key = request.headers[ID_HEADER]
            self.requests += 1
            n = self.requests
            if self.hold.is_set():
                self.held += 1
                await self.release.wait()
                self.held -= 1
                return Response(status_code=503)
            self.answering += 1
            try:
                await asyncio.sleep(self.latency_s)
                if self.fail_every and n % self.fail_every == 0:
                    self.failed += 1
                    return Response(status_code=500)
                self.acked[key] += 1
                return Response(status_code=204)
            finally:
                self.answering -= 1

        return app

    def duplicates(self) -> dict[str, int]:
        return {key: n for key, n in self.acked.items() if n != 1}


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """``app`` on a real HTTP server on 127.0.0.1; yields its base URL."""
    port = free_port()
    server = http_server(app, "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):  # bounded wait for the listening socket
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_two_deliverers_send_each_webhook_once_through_a_slow_failing_receiver(
    pg_url: str,
) -> None:
    """Far more due rows than slots, every 5th answer a 500, and a receiver slow enough that
    a deliverer which claimed rows it has no slot for would keep them waiting past their
    lease (40 rows / 2 slots x 0.3 s = 6 s > 4 s), and the other deliverer would send them
    too."""
    receiver = SlowReceiver(SECRET, latency_s=0.3, fail_every=5)
    async with serving(receiver.app()) as base, replicas(pg_url, 2) as (a, b):
        url = f"{base}/hook"
        await seed(a, 40, [url], datetime.now(UTC))
        async with httpx.AsyncClient(timeout=1.0) as client:

            def deliverer(sessions: Sessions) -> Deliverer:
                return Deliverer(
                    sessions, client, Metrics.create(CollectorRegistry()), keys=KEYS,
                    receivers=[url], schedule=SCHEDULE, allow_private=True, concurrency=2,
                    timeout_s=2.0, lease_s=4.0,
                )  # fmt: skip

            deliverers = [deliverer(a), deliverer(b)]
            stop = asyncio.Event()
            runs = [asyncio.create_task(d.run(stop, interval_s=0.05)) for d in deliverers]
            try:
                deadline = time.monotonic() + 30
                while pending := [d for d in await rows(a) if d.status == "pending"]:
                    assert time.monotonic() < deadline, "not delivered within 30 s"
                    assert not any(r.done() for r in runs)
                    leased = Counter((d.claimed_by or "").split("#")[0] for d in pending
                                     if d.lease_until is not None)  # fmt: skip
                    assert max(leased.values(), default=0) <= 2  # no more than its slots
                    await asyncio.sleep(0.05)
            finally:
                stop.set()
                await asyncio.gather(*runs)
        delivered = await rows(a)
    assert receiver.rejected == []
    assert receiver.duplicates() == {}
    assert set(receiver.acked) == {d.webhook_id for d in delivered}
    assert len(receiver.acked) == 40
    assert receiver.failed > 0  # retries happened
    # every request the receiver saw was recorded, once, by the claim that sent it
    assert sum(d.attempts for d in delivered) == receiver.requests == 40 + receiver.failed
    owners = {(d.claimed_by or "").split("#")[0] for d in delivered}
    assert owners == {d.owner for d in deliverers}


async def test_rows_leased_by_a_dead_deliverer_are_sent_once_its_lease_is_over(
    pg_url: str,
) -> None:
    receiver = SlowReceiver(SECRET, latency_s=0.0)
    async with serving(receiver.app()) as base, replicas(pg_url, 2) as (a, b):
        url = f"{base}/hook"
        await seed(a, 3, [url], datetime.now(UTC))
        async with a() as s, s.begin():  # a replica claims, then dies before sending
            dead = await db.claim_due(s, datetime.now(UTC), lease_s=1.5, owner="dead")
        assert len(dead) == 3
        async with httpx.AsyncClient(timeout=1.0) as client:
            alive = Deliverer(
                b, client, Metrics.create(CollectorRegistry()), keys=KEYS, receivers=[url],
                schedule=SCHEDULE, allow_private=True, timeout_s=1.0, lease_s=2.0,
            )  # fmt: skip
            assert await alive.deliver_due() == 0  # still leased
            assert receiver.requests == 0
            await asyncio.sleep(1.6)
            assert await alive.deliver_due() == 3
        delivered = await rows(a)
    assert receiver.duplicates() == {}
    assert len(receiver.acked) == 3
    assert {d.status for d in delivered} == {"delivered"}
    assert all((d.claimed_by or "").startswith(alive.owner) for d in delivered)
