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
    if not hmac.compare_digest(expected, given):
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


class Deliverer:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: httpx.AsyncClient,
        metrics: Metrics,
        *,
        secret: str,
        receivers: list[str],
        max_attempts: int,
        backoff_base_s: float,
        backoff_max_s: float,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._metrics = metrics
        self._secret = secret
        self._receiver_index = {url: str(i) for i, url in enumerate(receivers)}
        for index in self._receiver_index.values():  # series exist at 0, so rate() sees
            for outcome in ("delivered", "retry", "failed"):  # the first failure
                metrics.webhook_deliveries.labels(index, outcome)
        self._max_attempts = max_attempts
        self._base = backoff_base_s
        self._max = backoff_max_s

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
            due = await db.due_deliveries(session, datetime.now(UTC))
            for d in due:
                alert = await db.alert_by_id(session, d.alert_id)
                assert alert is not None
                await self._attempt(d, alert)
            return len(due)

    async def _attempt(self, d: db.Delivery, alert: db.Alert) -> None:
        body = codec.dumps(payload(alert, d.event, d.id))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "QualityWatch-Webhook/1",
            SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
            "X-QualityWatch-Event": d.event,
            "Idempotency-Key": f"{alert.dedup_key}:{d.event}",
        }
        d.attempts += 1
        receiver = self._receiver_index.get(d.receiver, "other")
        error: str | None = None
        try:
            resp = await self._client.post(d.receiver, content=body, headers=headers)
            if 200 <= resp.status_code < 300:
                d.status = "delivered"
                d.delivered_at = datetime.now(UTC)
                d.last_error = None
                self._metrics.webhook_deliveries.labels(receiver, "delivered").inc()
                return
            error = f"HTTP {resp.status_code}: {resp.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        d.last_error = error
        if d.attempts >= self._max_attempts:
            d.status = "failed"
            self._metrics.webhook_deliveries.labels(receiver, "failed").inc()
            log.error(
                "webhook to %s failed for good after %d attempts: %s", d.receiver, d.attempts, error
            )
        else:
            delay = backoff(d.attempts, self._base, self._max)
            d.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
            self._metrics.webhook_deliveries.labels(receiver, "retry").inc()
            log.warning("webhook to %s failed (%s); retry in %.1fs", d.receiver, error, delay)
