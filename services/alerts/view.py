"""The health view: every queue's health, kept in memory and served without a database.

``GET /v1/queues/{id}/health``, ``GET /v1/queues`` and ``POST /v1/health:batch`` answer from
here: no session, no query and no health computation per request, only a dictionary look-up
and bytes serialized once per change.

How it stays current (replicas share the snapshot topic's partitions in one consumer group
and one database, so one replica's consumer sees only some queues):

* **At start** ``load`` reads every stored snapshot and the firing alerts.
* **This replica's consumer** hands it the snapshots of a poll and the firing alerts of every
  queue (read in the poll's transaction) right after that transaction commits (``apply``).
* **The other replicas' queues**: ``run`` reads the database every ``REFRESH_S`` (``sync``):
  the ``received_at`` of the snapshot rows received after the newest one seen (the
  watermark), then only the changed rows' snapshots, and every queue's firing rules. A row
  whose transaction committed after a later one was read (or written by a replica whose
  clock is a little behind) is older than the watermark: every ``OVERLAP_EVERY_S`` the read
  reaches ``OVERLAP_S`` behind the watermark, and every ``FULL_SCAN_S`` it compares every
  row, whatever its time. Rows are compared by ``received_at`` with the entries held, so
  only what changed is parsed. (A read of every row every second would cost ~15 ms of the
  event loop at 1,000 queues: a stall the p99 of the health API would show.)
* A sync never undoes a newer local write: an entry (or the firing map) the consumer wrote
  after the sync's read began is left as it is; the next sync compares again.

Freshness depends on the snapshot's age in steps (``health.staleness_step``), so a cached
health is exact until the age enters the next step; then it is recomputed lazily, on the
first read after that. Between steps the bytes, and so the list's ETag, stay the same.

Each entry keeps the snapshot, when it was received, its firing rules, the computed
``Health``, the response's JSON bytes and an 8-byte digest of them (for the list's ETag).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.alertmanager import team_for
from services.alerts.health import Band, Health, health, staleness_step, staleness_step_starts
from services.alerts.settings import AlertsSettings
from shared import codec
from shared.events import QualitySnapshot

log = logging.getLogger(__name__)

REFRESH_S = 1.0  # the database is read for other replicas' snapshots and alerts this often
OVERLAP_S = 10.0  # how far behind the watermark the overlapping read reaches
OVERLAP_EVERY_S = 10.0  # ... and how often it does
FULL_SCAN_S = 60.0  # every row's received_at is compared this often


class QueueHealth(BaseModel):
    queue_id: str
    team: str = Field(
        description="the queue's team, what `GET /v1/queues?team=` filters on "
        "(QW_ALERTS_ALERTMANAGER_TEAMS, else QW_ALERTS_ALERTMANAGER_DEFAULT_TEAM)"
    )
    health: Health
    snapshot: QualitySnapshot


@dataclass(slots=True)
class Entry:
    """One queue as the view serves it."""

    snap: QualitySnapshot
    received: datetime
    received_ts: float
    team: str
    firing: list[str]
    seq: int  # the view's write counter when the consumer or a sync last wrote it
    health: Health | None = None
    body: bytes = b""  # the QueueHealth JSON
    tag: bytes = b""  # blake2b-64 of ``body``
    until: float = 0.0  # wall-clock time until which ``health`` is what a computation gives


@dataclass(frozen=True, slots=True)
class Page:
    bodies: list[bytes]
    etag: str
    next_after: str | None  # the cursor of the next page; None on the last page

    def json(self) -> bytes:
        return b"[" + b",".join(self.bodies) + b"]"


class HealthView:
    """Every queue's health in memory (see the module's doc). Not thread-safe: one event
    loop reads and writes it, and no write awaits half-way."""

    def __init__(
        self,
        settings: AlertsSettings,
        sessions: async_sessionmaker[AsyncSession] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.s = settings
        self._sessions = sessions
        self._clock = clock
        self._entries: dict[str, Entry] = {}
        self._ids: list[str] = []  # sorted, for the list's keyset paging
        self._firing: dict[str, list[str]] = {}
        self._firing_seq = 0
        self._seq = 0
        self._watermark: datetime | None = None  # the newest received_at read from the db
        self._full_at = 0.0  # time.monotonic() of the last full comparison
        self._overlap_at = 0.0  # ... and of the last overlapping one
        self._lock = asyncio.Lock()
        self._teams = settings.team_map
        self.loaded = False
        self.syncs = 0
        self.recomputed = 0

    def __len__(self) -> int:
        return len(self._entries)

    # -- writes ---------------------------------------------------------------------------
    def apply(
        self,
        snapshots: Iterable[tuple[QualitySnapshot, datetime]],
        firing: Mapping[str, list[str]] | None = None,
    ) -> None:
        """What a committed transaction wrote: snapshots with their ``received_at``, and (when
        given) the firing rules of every queue, in the order the alerts first fired."""
        self._seq += 1
        if firing is not None:
            self._set_firing(firing)
            self._firing_seq = self._seq
        for snap, received in snapshots:
            self._put(snap, received)

    def _put(self, snap: QualitySnapshot, received: datetime) -> None:
        q = snap.queue_id
        entry = self._entries.get(q)
        if entry is None:
            bisect.insort(self._ids, q)
            team = team_for(q, self._teams, self.s.alertmanager_default_team)
        else:
            team = entry.team
        entry = Entry(
            snap=snap, received=received, received_ts=received.timestamp(), team=team,
            firing=self._firing.get(q, []), seq=self._seq,
        )  # fmt: skip
        self._entries[q] = entry
        self._compute(entry, self._clock())

    def _set_firing(self, firing: Mapping[str, list[str]]) -> None:
        old, self._firing = self._firing, {q: list(rules) for q, rules in firing.items() if rules}
        now = self._clock()
        for q in old.keys() | self._firing.keys():
            rules = self._firing.get(q, [])
            entry = self._entries.get(q)
            if entry is not None and entry.firing != rules:
                entry.firing = rules
                self._compute(entry, now)

    def _compute(self, entry: Entry, now: float) -> None:
        s = self.s
        age = now - entry.received_ts
        h = health(
            entry.snap, target=s.quality.accuracy_target,
            confidence=s.quality.target_confidence, min_sample=s.min_sample, age_s=age,
            stale_after_s=s.stale_after_s, firing=entry.firing, site_target=s.quality.site_target,
        )  # fmt: skip
        body = QueueHealth.model_construct(
            queue_id=entry.snap.queue_id, team=entry.team, health=h, snapshot=entry.snap
        )
        entry.health = h
        entry.body = body.__pydantic_serializer__.to_json(body)
        entry.tag = hashlib.blake2b(entry.body, digest_size=8).digest()
        # the health depends on the age only through its staleness step: exact until the next
        step = staleness_step(age, s.stale_after_s)
        entry.until = entry.received_ts + staleness_step_starts(step + 1, s.stale_after_s)
        self.recomputed += 1

    # -- reads ----------------------------------------------------------------------------
    def get(self, queue_id: str) -> Entry | None:
        """The queue's entry with a current health, or None when no snapshot is known."""
        entry = self._entries.get(queue_id)
        if entry is not None:
            now = self._clock()
            if now > entry.until:
                self._compute(entry, now)
        return entry

    def page(
        self,
        *,
        limit: int,
        after: str | None = None,
        bands: Sequence[Band] = (),
        team: str | None = None,
        site: str | None = None,
    ) -> Page:
        """Up to ``limit`` queues by id, after ``after``, in one of ``bands`` (any when empty),
        of ``team`` and with data of ``site`` in the last 7 days (any when None). The ETag
        covers the page's bytes and whether another page follows."""
        start = bisect.bisect_right(self._ids, after) if after is not None else 0
        chosen: list[Entry] = []
        more = False
        for q in self._ids[start:]:
            entry = self.get(q)
            if entry is None or entry.health is None:
                continue
            if (bands and entry.health.band not in bands) or (team and entry.team != team):
                continue
            if site is not None and site not in entry.snap.sites:
                continue
            if len(chosen) == limit:
                more = True
                break
            chosen.append(entry)
        digest = hashlib.blake2b(digest_size=16)
        for entry in chosen:
            digest.update(entry.tag)
        digest.update(b"+" if more else b".")
        return Page(
            bodies=[e.body for e in chosen],
            etag=f'"{digest.hexdigest()}"',
            next_after=chosen[-1].snap.queue_id if more and chosen else None,
        )

    def batch(self, queue_ids: Sequence[str]) -> bytes:
        """The body of ``POST /v1/health:batch``: each id's health, or ``unknown``, in the
        order asked."""
        parts = []
        for q in queue_ids:
            entry = self.get(q)
            qid = codec.dumps(q)
            if entry is None:
                parts.append(b'{"queue_id":' + qid + b',"status":"unknown","result":null}')
            else:
                parts.append(
                    b'{"queue_id":' + qid + b',"status":"ok","result":' + entry.body + b"}"
                )
        return b'{"results":[' + b",".join(parts) + b"]}"

    # -- keeping current from the database ------------------------------------------------
    def _db(self) -> async_sessionmaker[AsyncSession]:
        if self._sessions is None:
            raise RuntimeError("this view has no database to read")
        return self._sessions

    async def load(self) -> None:
        """Every stored snapshot and the firing alerts (at start)."""
        await self.sync(full=True)

    async def sync(self, *, full: bool = False, overlap: bool = False) -> None:
        """Read what other replicas wrote: changed snapshots and every queue's firing rules.
        The snapshot rows read: those after the watermark; with ``overlap`` those after
        ``OVERLAP_S`` before it; with ``full`` all of them."""
        async with self._lock:
            started = self._seq
            since = None
            if not full and self._watermark is not None:
                since = self._watermark - timedelta(seconds=OVERLAP_S if overlap else 0)
            async with self._db()() as session, session.begin():
                stamps = await db.snapshot_stamps(session, since)
                changed = [
                    q for q, at in stamps
                    if (e := self._entries.get(q)) is None or e.received != at
                ]  # fmt: skip
                rows = await db.snapshots_of(session, changed) if changed else []
                firing = await db.firing_rules(session)
            if full or overlap:
                self._overlap_at = time.monotonic()
            if full:
                self._full_at = time.monotonic()
            self._seq += 1
            if self._firing_seq <= started:
                self._set_firing(firing)
            for snap, received in rows:
                entry = self._entries.get(snap.queue_id)
                if entry is None or entry.seq <= started:  # else the consumer wrote it since
                    self._put(snap, received)
            newest = max((at for _, at in stamps), default=None)
            if newest is not None and (self._watermark is None or newest > self._watermark):
                self._watermark = newest
            self.loaded = True
            self.syncs += 1

    async def run(self, stop: asyncio.Event, interval_s: float = REFRESH_S) -> None:
        """Sync every ``interval_s`` until ``stop``; a failed read is logged and retried (the
        view keeps answering with what it has, and ages keep counting)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
            if stop.is_set():
                return
            now = time.monotonic()
            try:
                await self.sync(
                    full=now - self._full_at >= FULL_SCAN_S,
                    overlap=now - self._overlap_at >= OVERLAP_EVERY_S,
                )
            except Exception as exc:  # advisory: the consumer's own updates still arrive
                log.warning("reading snapshots for the health view failed: %s", exc)
