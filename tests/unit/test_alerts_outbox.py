"""The webhook outbox on SQLite, the single-process default: a database made by an older
version gains the lease and Standard Webhooks columns, and a claim that used up its attempt's time is given back
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
from shared import codec
from tests.alerts_cases import NOW, make_breach
from tests.integration.test_webhook_delivery import free_port


async def test_an_older_database_gains_the_new_columns_and_its_rows_their_body(
    tmp_path: Path,
) -> None:
    engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await db.create_schema(engine)
        sessions = db.make_sessionmaker(engine)
        async with sessions() as s, s.begin():
            await db.record_breach(s, make_breach("q", 0), receivers=["http://x/h"], now=NOW)
        async with engine.begin() as conn:  # the tables as the previous versions made them
            for column in ("claimed_by", "lease_until", "webhook_id", "body", "response_status"):
                await conn.execute(text(f"ALTER TABLE qw_deliveries DROP COLUMN {column}"))
            await conn.execute(text("DROP TABLE qw_webhook_endpoints"))
        async with sessions() as s, s.begin():  # resolved before the upgrade, firing unsent
            (alert,) = await s.scalars(select(db.Alert))
            alert.status, alert.resolved_at = "resolved", NOW
        await db.create_schema(engine)
        await db.create_schema(engine)  # and again: nothing left to add
        async with sessions() as s, s.begin():
            ((row, alert),) = await db.claim_due(s, NOW, lease_s=60, owner="me")
            assert alert.queue_id == "q"
            assert (row.claimed_by or "").startswith("me#")
            # the old Idempotency-Key becomes its webhook-id; the body says what it was
            assert row.webhook_id == "q:p_chart_ucl:0:firing"
            body = codec.loads(row.body or "")
            assert (body["event"], body["alert"]["status"], body["alert"]["resolved_at"]) == (
                "firing", "firing", None,
            )  # fmt: skip
        async with sessions() as s:  # kept, so every retry sends the same
            (again,) = await s.scalars(select(db.Delivery))
            assert (again.webhook_id, again.body) == (row.webhook_id, row.body)
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
                sessions, client, Metrics.create(CollectorRegistry()),
                keys=[b"k" * 32], receivers=[url], schedule=[1.0], allow_private=True,
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
