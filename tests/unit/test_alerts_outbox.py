"""The webhook outbox on SQLite, the single-process default: a database made by an older
version gains the lease columns, and a claim that used up its attempt's time is given back
unsent. (Replicas, which need PostgreSQL: tests/integration/test_alerts_replicas*.py.)"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy import select, text

from services.alerts import db
from services.alerts.metrics import Metrics
from services.alerts.webhooks import Deliverer
from tests.alerts_cases import NOW, make_breach
from tests.integration.test_webhook_delivery import free_port


async def test_an_older_database_gains_the_lease_columns(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await db.create_schema(engine)
        sessions = db.make_sessionmaker(engine)
        async with sessions() as s, s.begin():
            await db.record_breach(s, make_breach("q", 0), receivers=["http://x/h"], now=NOW)
        async with engine.begin() as conn:  # the table as the previous version made it
            await conn.execute(text("ALTER TABLE qw_deliveries DROP COLUMN claimed_by"))
            await conn.execute(text("ALTER TABLE qw_deliveries DROP COLUMN lease_until"))
        await db.create_schema(engine)
        await db.create_schema(engine)  # and again: nothing left to add
        async with sessions() as s, s.begin():
            ((row, alert),) = await db.claim_due(s, NOW, lease_s=60, owner="me")
            assert alert.queue_id == "q"
            assert (row.claimed_by or "").startswith("me#")
    finally:
        await engine.dispose()


async def test_a_claim_that_used_up_the_attempts_time_is_given_back_unsent(
    tmp_path: Path,
) -> None:
    engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    url = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens: a send would be a retry
    try:
        await db.create_schema(engine)
        sessions = db.make_sessionmaker(engine)
        async with sessions() as s, s.begin():
            now = datetime.now(UTC)
            await db.record_breach(s, make_breach("q", 0), receivers=[url], now=now)
        async with httpx.AsyncClient() as client:
            deliverer = Deliverer(
                sessions, client, Metrics.create(CollectorRegistry()), secret="s",
                receivers=[url], give_up_after_s=3600, backoff_base_s=1, backoff_max_s=1,
                timeout_s=1e-9, lease_s=2.0,  # no claim is that fast
            )  # fmt: skip
            assert await deliverer.deliver_due() == 1
        async with sessions() as s:
            (row,) = await s.scalars(select(db.Delivery))
        assert (row.status, row.attempts, row.last_error, row.lease_until) == (
            "pending", 0, None, None,
        )  # fmt: skip
        async with sessions() as s, s.begin():  # due again at once
            assert len(await db.claim_due(s, datetime.now(UTC), lease_s=60)) == 1
    finally:
        await engine.dispose()
