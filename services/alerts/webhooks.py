"""Standard Webhooks, delivered from the outbox with a fixed retry schedule.

Each delivery carries (https://www.standardwebhooks.com, docs/operations.md "Webhook
contract")::

    webhook-id: <the delivery's id, the same on every retry: the idempotency key>
    webhook-timestamp: <unix seconds of this attempt>
    webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")> [v1,<...>]

one signature per configured secret (``whsec_<base64>``; two during a rotation). The body
was fixed when the delivery was written (``db.webhook_body``). A receiver that sees an id
twice after answering 2xx (a crash between its answer and the recording of the delivery)
drops the copy: that window is why delivery is at least once, not exactly once.

Answers: 2xx delivered; 4xx other than 408 and 429, and 3xx (redirects are not followed),
fail the delivery at once, keeping the status and the start of the answer; 410 Gone also
disables the endpoint until a restart; anything else (no answer, 408, 429, 5xx) is retried
after the schedule's next delay (at least a 429/503's Retry-After, within a bound) and fails
once the schedule is used up.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.metrics import WEBHOOK_OUTCOMES, WEBHOOK_RESULTS, Metrics
from services.alerts.webhook_policy import check_addresses, describe, refused_address

log = logging.getLogger(__name__)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
MAX_ANSWER_CHARS = 300  # of a receiver's answer kept with a failed delivery
RECHECK_S = 2.0  # after this process wrote webhook rows, claim every interval for this long


def sign(keys: Sequence[bytes], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64>`` per key, space separated."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(k, content, hashlib.sha256).digest()).decode()
        for k in keys
    )


class SignatureError(ValueError):
    pass


def verify(keys: Sequence[bytes], headers: Mapping[str, str], body: bytes, *,
           tolerance_s: float = 300.0, now: float | None = None) -> None:  # fmt: skip
    """Raise ``SignatureError`` unless one signature in ``headers`` is a valid, fresh one of
    ``body`` under one of ``keys`` (the demo receiver's check; receivers elsewhere use any
    Standard Webhooks verifier)."""
    webhook_id = headers.get(ID_HEADER)
    stamp = headers.get(TIMESTAMP_HEADER)
    given = headers.get(SIGNATURE_HEADER)
    if not webhook_id or not stamp or not given:
        raise SignatureError(f"missing {ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    try:
        ts = int(stamp)
    except ValueError:
        raise SignatureError(f"malformed {TIMESTAMP_HEADER}") from None
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance_s:
        raise SignatureError(f"timestamp {ts} is outside the {tolerance_s}s tolerance")
    expected = {sign([k], webhook_id, ts, body).encode() for k in keys}
    for sig in given.split():
        if any(hmac.compare_digest(sig.encode("utf-8", "replace"), e) for e in expected):
            return
    raise SignatureError("no valid signature")


def retry_after_s(value: str | None, now: float) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds from ``now``, or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value[:9])
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


Verdict = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one HTTP attempt came to."""

    result: str  # one of metrics.WEBHOOK_RESULTS
    error: str | None = None  # None: delivered
    status: int | None = None
    retry_after_s: float | None = None


def judge(attempt: Attempt) -> Literal["delivered", "retry", "final"]:
    if attempt.error is None:
        return "delivered"
    s = attempt.status
    if s is not None and (300 <= s < 400 or (400 <= s < 500 and s not in (408, 429))):
        return "final"
    return "retry"


@dataclass(frozen=True, slots=True)
class _Job:
    delivery_id: int
    claimed_by: str
    receiver: str
    webhook_id: str
    body: bytes
    attempts: int
    ends_by: float  # time.monotonic() by which the attempt is over, well inside its lease


def instance_id() -> str:
    """This process among the replicas: host, pid and a random part (pids repeat)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(3)}"


async def resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class Deliverer:
    """Sends the outbox, with any number of replicas on one PostgreSQL database.

    A replica claims only as many due rows as it has free slots (``concurrency``), in a short
    transaction that leases them for ``lease_s``; each is sent at once, with no transaction
    open, and its result recorded in another short one, only if the claim still holds the
    row. A claimed row never waits for a slot, and its attempt lasts ``timeout_s`` at most
    from the claim's commit, leaving at least half of ``lease_s - timeout_s`` to record it,
    so a lease cannot run out while its replica lives and works: another replica sends a
    row again only after its claimer died or hung for the rest of the lease. A slow
    receiver never holds a database lock.

    Every attempt resolves the receiver's host itself and connects to the address it
    checked (``allow_private`` False: no loopback, link-local, private or unspecified
    address), so a name that changes its address between the check and the connection
    (DNS rebinding) cannot reach an internal service."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: httpx.AsyncClient,
        metrics: Metrics,
        *,
        keys: Sequence[bytes],
        receivers: list[str],
        schedule: Sequence[float],
        allow_private: bool = False,
        retry_after_max_s: float = 3600.0,
        concurrency: int = 8,
        timeout_s: float = 5.0,
        lease_s: float = 30.0,
        owner: str | None = None,
        resolver: Callable[[str, int], Awaitable[list[str]]] | None = None,
    ) -> None:
        if lease_s < timeout_s + 1:
            raise ValueError(f"the lease ({lease_s}s) must outlast an attempt ({timeout_s}s) by 1s")
        if not keys:
            raise ValueError("at least one signing key")
        self._sessions = sessions
        self._client = client
        self._metrics = metrics
        self._keys = list(keys)
        self._receiver_index = {url: str(i) for i, url in enumerate(receivers)}
        for index in self._receiver_index.values():  # series exist at 0, so rate() sees
            for outcome in WEBHOOK_OUTCOMES:  # the first failure
                metrics.webhook_deliveries.labels(index, outcome)
            for result in WEBHOOK_RESULTS:
                metrics.webhook_attempts.labels(index, result)
            metrics.webhook_endpoint_disabled.labels(index).set(0)
        self._schedule = tuple(schedule)
        self._allow_private = allow_private
        self._retry_after_max_s = retry_after_max_s
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._lease_s = lease_s
        self._resolve = resolver or resolve
        self.owner = owner or instance_id()

    async def run(self, stop: asyncio.Event, interval_s: float = 0.5, idle_s: float = 5.0) -> None:
        """Keep every slot busy with a due row; on stop, let the attempts in flight finish
        and record (each is bounded by ``timeout_s``), so a restart re-sends none of them.

        A claim is a write transaction (8-14 ms of CPU on SQLite here, on the event loop
        the health API answers from), so it runs only when a row may be due: every
        ``interval_s`` while this process writes rows (for ``RECHECK_S`` after a write: its
        transaction may commit a little later) or attempts are in flight, at the earliest
        pending row's next attempt, and every ``idle_s`` in any case (rows other replicas
        wrote, leases that ran out)."""
        inflight: set[asyncio.Task[None]] = set()
        stopping = asyncio.create_task(stop.wait())
        next_refresh = 0.0
        next_claim = 0.0
        writes, busy_until = db.outbox_writes(), 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_refresh:  # endpoints other replicas disabled
                    next_refresh = now + 15.0
                    try:
                        await self.refresh_endpoint_metrics()
                    except Exception:
                        log.exception("reading the disabled webhook endpoints failed")
                if db.outbox_writes() != writes:
                    writes, busy_until = db.outbox_writes(), now + RECHECK_S
                free = self._concurrency - len(inflight)
                due = now >= next_claim or now < busy_until or bool(inflight)
                if free > 0 and due:
                    try:
                        jobs = await self._claim(free)
                        next_claim = now + (
                            0.0 if len(jobs) == free else await self._idle_for(interval_s, idle_s)
                        )
                    except Exception:
                        log.exception("claiming due webhooks failed; retrying")
                        jobs = []
                        next_claim = now + interval_s
                    inflight.update(asyncio.create_task(self._attempt(j)) for j in jobs)
                done, _ = await asyncio.wait(
                    {*inflight, stopping}, timeout=interval_s, return_when=asyncio.FIRST_COMPLETED
                )
                inflight -= done
        finally:
            stopping.cancel()
            if inflight:
                await asyncio.wait(inflight)

    async def enable_configured(self) -> None:
        """At startup: the configured receivers are enabled again (a restart or a
        configuration change is what re-enables an endpoint that answered 410)."""
        async with self._sessions() as session, session.begin():
            enabled = await db.enable_endpoints(session, self._receiver_index)
        for url in enabled:
            log.warning("webhook receiver #%s (%s), disabled after 410 Gone, is enabled again "
                        "by this start", self._receiver_index[url], describe(url))  # fmt: skip
        await self.refresh_endpoint_metrics()

    async def refresh_endpoint_metrics(self) -> None:
        async with self._sessions() as session:
            disabled = {e.url for e in await db.disabled_endpoints(session)}
        for url, index in self._receiver_index.items():
            self._metrics.webhook_endpoint_disabled.labels(index).set(url in disabled)

    async def _idle_for(self, interval_s: float, idle_s: float) -> float:
        """Seconds until the earliest pending row is due, within [interval_s, idle_s]."""
        async with self._sessions() as session:
            now = await db.clock(session)
            due = await db.next_due(session)
        if due is None:
            return idle_s
        return min(max((due - now).total_seconds(), interval_s), idle_s)

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
                d
                for d, _ in await db.claim_due(
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
            _Job(d.id, d.claimed_by or "", d.receiver, d.webhook_id or "",
                 (d.body or "").encode(), d.attempts, ends_by)
            for d in claimed
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
            attempt = await self._post(job, left)
            await self._record(job, attempt)
        except Exception:
            log.exception("webhook %d to %s: its claim could not be recorded or released; "
                          "it is due again once its lease is over", job.delivery_id,
                          describe(job.receiver))  # fmt: skip

    def next_delay(self, attempts: int, retry_after: float | None) -> float | None:
        """Seconds until the next try after ``attempts`` failed ones, or None: none left."""
        if attempts > len(self._schedule):
            return None
        delay = self._schedule[attempts - 1]
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._retry_after_max_s))
        return delay * (1 + random.random() * 0.1)  # up to 10% later, so retries spread

    async def _record(self, job: _Job, attempt: Attempt) -> None:
        now = datetime.now(UTC)
        receiver = self._receiver_index.get(job.receiver, "other")
        where = f"#{receiver} ({describe(job.receiver)})"
        attempts = job.attempts + 1
        retry_at: datetime | None = None
        verdict = judge(attempt)
        outcome: Verdict
        if verdict == "delivered":
            outcome = "delivered"
        elif verdict == "final":
            outcome = "failed"
            log.error("webhook %s to %s failed for good: %s (not retried: the receiver "
                      "refused it)", job.webhook_id, where, attempt.error)  # fmt: skip
        else:
            delay = self.next_delay(attempts, attempt.retry_after_s)
            if delay is None:
                outcome = "failed"
                log.error("webhook %s to %s failed for good after %d attempts: %s",
                          job.webhook_id, where, attempts, attempt.error)  # fmt: skip
            else:
                outcome = "retry"
                retry_at = now + timedelta(seconds=delay)
                log.warning("webhook %s to %s failed (%s); retry %d in %.1fs", job.webhook_id,
                            where, attempt.error, attempts, delay)  # fmt: skip
        self._metrics.webhook_attempts.labels(receiver, attempt.result).inc()
        self._metrics.webhook_deliveries.labels(receiver, outcome).inc()
        async with self._sessions() as session, session.begin():
            kept = await db.record_attempt(
                session, job.delivery_id, now=now, error=attempt.error, retry_at=retry_at,
                claimed_by=job.claimed_by, response_status=attempt.status,
            )  # fmt: skip
            if attempt.status == 410 and kept is not None:
                await db.disable_endpoint(
                    session, job.receiver, now=now, reason=(attempt.error or "")[:400]
                )
        if attempt.status == 410 and kept is not None:
            self._metrics.webhook_endpoint_disabled.labels(receiver).set(1)
            log.error("webhook receiver %s answered 410 Gone: it is disabled, and its "
                      "deliveries wait until the alerts service restarts with it configured",
                      where)  # fmt: skip
        if kept is None:
            log.warning(
                "webhook %d to %s: its lease ran out before the %s was recorded, and another "
                "claim holds it now; the receiver may get it twice",
                job.delivery_id, where, outcome,
            )  # fmt: skip

    async def _target(self, url: str) -> tuple[str, dict[str, str], dict[str, str]] | str:
        """The URL to connect to (the host replaced by the address that was checked), the
        Host header and the TLS server name; or why it may not be connected to."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            if not self._allow_private and (why := refused_address(literal)) is not None:
                return f"refused: {host} is {why}"
            return url, {}, {}
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            return f"cannot resolve {host}: {exc}"
        if not addresses:
            return f"cannot resolve {host}: no address"
        if not self._allow_private and (why := check_addresses(addresses)) is not None:
            return f"refused: {host} {why}"
        ip = addresses[0]
        netloc = (f"[{ip}]" if ":" in ip else ip) + (f":{parts.port}" if parts.port else "")
        pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        host_header = host + (f":{parts.port}" if parts.port else "")
        ext = {"sni_hostname": host} if parts.scheme == "https" else {}
        # The pool knows the connection by address only: one opened (and its certificate
        # checked) for another name on the same address must not carry this request.
        return pinned, {"Host": host_header, "Connection": "close"}, ext

    async def _post(self, job: _Job, timeout_s: float) -> Attempt:
        """One HTTP attempt of at most ``timeout_s`` in all, resolution included."""
        try:
            async with asyncio.timeout(timeout_s):
                target = await self._target(job.receiver)
                if isinstance(target, str):
                    return Attempt("refused_address", target)
                url, host, extensions = target
                headers = {
                    **host,
                    "Content-Type": "application/json",
                    "User-Agent": "QualityWatch-Webhook/2",
                    ID_HEADER: job.webhook_id,
                    TIMESTAMP_HEADER: str(int(time.time())),
                }
                headers[SIGNATURE_HEADER] = sign(
                    self._keys, job.webhook_id, int(headers[TIMESTAMP_HEADER]), job.body
                )
                resp = await self._client.post(
                    url, content=job.body, headers=headers, extensions=extensions
                )
        except TimeoutError:
            return Attempt("timeout", f"no answer within {timeout_s:.1f}s")
        except httpx.HTTPError as exc:
            return Attempt("connect_error", f"{type(exc).__name__}: {str(exc)[:200]}")
        code = resp.status_code
        if 200 <= code < 300:
            return Attempt("2xx", None, code)
        answer = " ".join(resp.text[:MAX_ANSWER_CHARS].split())
        wait = None
        if code in (429, 503):
            wait = retry_after_s(resp.headers.get("Retry-After"), time.time())
        result = str(code) if code in (408, 410, 429) else f"{code // 100}xx"
        if result not in WEBHOOK_RESULTS:
            result = "other"
        return Attempt(result, f"HTTP {code}: {answer}", code, wait)
