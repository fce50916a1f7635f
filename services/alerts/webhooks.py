"""Signed JSON webhooks, delivered from the outbox with retries and backoff.

Signature (verify it with ``verify``)::

    X-QualityWatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

The timestamp is inside the signed text, so a captured request cannot be replayed later
than the receiver's tolerance. ``Idempotency-Key`` (``<dedup_key>:<event>``) is stable per
outbox row: the same on every retry and from every replica. A receiver that sees it twice
after answering 2xx (a crash between its answer and the recording of the delivery) drops
the copy: that window is why delivery is at least once, not exactly once, at the HTTP level.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import random
import secrets
import socket
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
    claimed_by: str
    receiver: str
    event: str
    body: bytes
    idempotency_key: str
    attempts: int
    created_at: datetime
    ends_by: float  # time.monotonic() by which the attempt is over, well inside its lease


def instance_id() -> str:
    """This process among the replicas: host, pid and a random part (pids repeat)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(3)}"


class Deliverer:
    """Sends the outbox, with any number of replicas on one PostgreSQL database.

    A replica claims only as many due rows as it has free slots (``concurrency``), in a short
    transaction that leases them for ``lease_s``; each is sent at once, with no transaction
    open, and its result recorded in another short one, only if the claim still holds the
    row. A claimed row never waits for a slot, and its attempt lasts ``timeout_s`` at most
    from the claim's commit, leaving at least half of ``lease_s - timeout_s`` to record it,
    so a lease cannot run out while its replica lives and works: another replica sends a
    row again only after its claimer died or hung for the rest of the lease. A slow
    receiver never holds a database lock."""

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
        concurrency: int = 8,
        timeout_s: float = 5.0,
        lease_s: float = 30.0,
        owner: str | None = None,
    ) -> None:
        if lease_s < timeout_s + 1:
            raise ValueError(f"the lease ({lease_s}s) must outlast an attempt ({timeout_s}s) by 1s")
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
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._lease_s = lease_s
        self.owner = owner or instance_id()

    async def run(self, stop: asyncio.Event, interval_s: float = 0.5) -> None:
        """Keep every slot busy with a due row; on stop, let the attempts in flight finish
        and record (each is bounded by ``timeout_s``), so a restart re-sends none of them."""
        inflight: set[asyncio.Task[None]] = set()
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                free = self._concurrency - len(inflight)
                if free > 0:
                    try:
                        jobs = await self._claim(free)
                    except Exception:
                        log.exception("claiming due webhooks failed; retrying")
                        jobs = []
                    inflight.update(asyncio.create_task(self._attempt(j)) for j in jobs)
                done, _ = await asyncio.wait(
                    {*inflight, stopping}, timeout=interval_s, return_when=asyncio.FIRST_COMPLETED
                )
                inflight -= done
        finally:
            stopping.cancel()
            if inflight:
                await asyncio.wait(inflight)

    async def deliver_due(self) -> int:
        """One round: claim as many due rows as there are slots and attempt each once;
        returns how many were attempted."""
        jobs = await self._claim(self._concurrency)
        await asyncio.gather(*(self._attempt(job) for job in jobs))
        return len(jobs)

    async def _claim(self, limit: int) -> list[_Job]:
        started = time.monotonic()  # the lease starts later, on the database's clock
        async with self._sessions() as session, session.begin():
            now = await db.clock(session)
            claimed = [
                (d, codec.dumps(payload(alert, d.event, d.id)), f"{alert.dedup_key}:{d.event}")
                for d, alert in await db.claim_due(
                    session, now, lease_s=self._lease_s, limit=limit, owner=self.owner
                )
            ]
        # The attempts may take timeout_s from now on; what is left of the lease then (at
        # least half of lease_s - timeout_s) is for recording them. A claim that took longer
        # than the other half gives its rows back unsent.
        committed = time.monotonic()
        slow = committed - started > (self._lease_s - self._timeout_s) / 2
        ends_by = committed if slow else committed + self._timeout_s
        return [
            _Job(d.id, d.claimed_by or "", d.receiver, d.event, body, key, d.attempts,
                 d.created_at, ends_by)
            for d, body, key in claimed
        ]  # fmt: skip

    async def _attempt(self, job: _Job) -> None:
        """Send one claimed row and record the result; never raises (a failure to record
        leaves the row to be claimed again once its lease is over)."""
        try:
            left = job.ends_by - time.monotonic()
            if left <= 0:  # a slow claim, or a stalled process: the lease may not last
                async with self._sessions() as session, session.begin():
                    await db.release(session, job.delivery_id, job.claimed_by)
                return
            error = await self._post(job, left)
            await self._record(job, error)
        except Exception:
            log.exception("webhook %d to %s: its claim could not be recorded or released; "
                          "it is due again once its lease is over", job.delivery_id,
                          job.receiver)  # fmt: skip

    async def _record(self, job: _Job, error: str | None) -> None:
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
        self._metrics.webhook_deliveries.labels(receiver, outcome).inc()
        async with self._sessions() as session, session.begin():
            kept = await db.record_attempt(
                session, job.delivery_id, now=now, error=error, retry_at=retry_at,
                claimed_by=job.claimed_by,
            )  # fmt: skip
        if kept is None:
            log.warning(
                "webhook %d to %s: its lease ran out before the %s was recorded, and another "
                "claim holds it now; the receiver may get it twice",
                job.delivery_id, job.receiver, outcome,
            )  # fmt: skip

    async def _post(self, job: _Job, timeout_s: float) -> str | None:
        """One HTTP attempt of at most ``timeout_s`` in all; the error text, or None when the
        receiver took it (2xx)."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "QualityWatch-Webhook/1",
            SIGNATURE_HEADER: sign(self._secret, job.body, int(time.time())),
            "X-QualityWatch-Event": job.event,
            "Idempotency-Key": job.idempotency_key,
        }
        try:
            async with asyncio.timeout(timeout_s):
                resp = await self._client.post(job.receiver, content=job.body, headers=headers)
        except TimeoutError:
            return f"no answer within {timeout_s:.1f}s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= resp.status_code < 300:
            return None
        return f"HTTP {resp.status_code}: {resp.text[:200]}"
