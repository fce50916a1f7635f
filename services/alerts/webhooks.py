"""Signed JSON webhooks, delivered from the outbox with retries and backoff.

Signature (verify it with ``verify``)::

    X-QualityWatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

The timestamp is inside the signed text, so a captured request cannot be replayed later
than the receiver's tolerance. ``Idempotency-Key`` is stable per alert and event: a receiver
that sees it twice (a crash between sending and recording the delivery) can drop the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.metrics import Metrics
from shared import codec

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-QualityWatch-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class SignatureError(ValueError):
    pass


def verify(secret: str, header: str | None, body: bytes, *, tolerance_s: float = 300.0,
           now: float | None = None) -> None:  # fmt: skip
    """Raise ``SignatureError`` unless ``header`` is a valid, fresh signature of ``body``."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError) as exc:
        raise SignatureError(f"malformed signature header: {header!r}") from exc
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance_s:
        raise SignatureError(f"signature timestamp {ts} is outside the {tolerance_s}s tolerance")
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    try:
        same = hmac.compare_digest(expected, given)
    except TypeError:  # non-ASCII text in the header
        same = False
    if not same:
        raise SignatureError("signature mismatch")


def payload(alert: db.Alert, event: str, delivery_id: int) -> dict[str, Any]:
    return {
        "version": "1",
        "event": event,
        "delivery_id": delivery_id,
        "alert": {
            "id": alert.id,
            "dedup_key": alert.dedup_key,
            "queue_id": alert.queue_id,
            "rule": alert.rule,
            "kind": alert.kind,
            "severity": alert.severity,
            "status": alert.status,
            "message": alert.message,
            "subgroup_start": alert.subgroup_start,
            "first_seen_at": alert.first_seen_at,
            "resolved_at": alert.resolved_at,
            "breach": alert.breach,
        },
        "sent_at": datetime.now(UTC),
    }


def backoff(attempts: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with full jitter in its upper half."""
    ceiling: float = min(max_s, base_s * 2 ** max(0, attempts - 1))
    return ceiling / 2 + random.random() * ceiling / 2


@dataclass(frozen=True, slots=True)
class _Job:
    delivery_id: int
    receiver: str
    event: str
    body: bytes
    idempotency_key: str
    attempts: int
    created_at: datetime


class Deliverer:
    """Sends the outbox. Rows are claimed (leased) in a short transaction, sent with no
    transaction open, and each result is recorded in another short one: a slow receiver
    never holds a database lock, and a crash mid-round only re-sends unrecorded rows."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: httpx.AsyncClient,
        metrics: Metrics,
        *,
        secret: str,
        receivers: list[str],
        give_up_after_s: float,
        backoff_base_s: float,
        backoff_max_s: float,
        batch: int = 50,
        concurrency: int = 8,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._metrics = metrics
        self._secret = secret
        self._receiver_index = {url: str(i) for i, url in enumerate(receivers)}
        for index in self._receiver_index.values():  # series exist at 0, so rate() sees
            for outcome in ("delivered", "retry", "failed"):  # the first failure
                metrics.webhook_deliveries.labels(index, outcome)
        self._give_up_after = timedelta(seconds=give_up_after_s)
        self._base = backoff_base_s
        self._max = backoff_max_s
        self._batch = batch
        self._gate = asyncio.Semaphore(concurrency)
        # a claimed row is retried by the next round only if this one died: longer than
        # one HTTP attempt can take
        self._lease_s = float(client.timeout.read or 30.0) * 2 + 5.0

    async def run(self, stop: asyncio.Event, interval_s: float = 0.5) -> None:
        while not stop.is_set():
            try:
                sent = await self.deliver_due()
            except Exception:
                log.exception("webhook delivery round failed; retrying")
                sent = 0
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_s)

    async def deliver_due(self) -> int:
        """Attempt every due delivery once; returns how many were attempted."""
        async with self._sessions() as session, session.begin():
            claimed = await db.claim_due(
                session, datetime.now(UTC), lease_s=self._lease_s, limit=self._batch
            )
            jobs = [
                _Job(
                    d.id,
                    d.receiver,
                    d.event,
                    codec.dumps(payload(alert, d.event, d.id)),
                    f"{alert.dedup_key}:{d.event}",
                    d.attempts,
                    d.created_at,
                )
                for d, alert in claimed
            ]
        await asyncio.gather(*(self._deliver(job) for job in jobs))
        return len(jobs)

    async def _deliver(self, job: _Job) -> None:
        async with self._gate:
            error = await self._post(job)
        now = datetime.now(UTC)
        receiver = self._receiver_index.get(job.receiver, "other")
        retry_at: datetime | None = None
        if error is None:
            outcome = "delivered"
        elif now - job.created_at >= self._give_up_after:
            outcome = "failed"
            log.error(
                "webhook to %s failed for good after %d attempts: %s",
                job.receiver,
                job.attempts + 1,
                error,
            )
        else:
            outcome = "retry"
            delay = backoff(job.attempts + 1, self._base, self._max)
            retry_at = now + timedelta(seconds=delay)
            log.warning("webhook to %s failed (%s); retry in %.1fs", job.receiver, error, delay)
        async with self._sessions() as session, session.begin():
            await db.record_attempt(
                session, job.delivery_id, now=now, error=error, retry_at=retry_at
            )
        self._metrics.webhook_deliveries.labels(receiver, outcome).inc()

    async def _post(self, job: _Job) -> str | None:
        """One HTTP attempt; the error text, or None when the receiver took it (2xx)."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "QualityWatch-Webhook/1",
            SIGNATURE_HEADER: sign(self._secret, job.body, int(time.time())),
            "X-QualityWatch-Event": job.event,
            "Idempotency-Key": job.idempotency_key,
        }
        try:
            resp = await self._client.post(job.receiver, content=job.body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= resp.status_code < 300:
            return None
        return f"HTTP {resp.status_code}: {resp.text[:200]}"
