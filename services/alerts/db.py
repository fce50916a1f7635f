"""Alert state in SQL: incidents and their audit trail, alerts, the webhook outbox, the latest
snapshot per queue, every closed subgroup of every queue (its newest revision) for the
chart API, and the baseline resets asked (who, when, why) and the changes the scorer made.

An incident is what people handle: per queue, one incident holds every signal (each signal
an ``Alert``: p-chart, EWMA, CUSUM, below target) from the first until the last of them has
resolved with its hysteresis, or until someone resolves it by hand. Only a signal that
raises the incident's severity (or opens it) notifies; the others are recorded as
``suppressed``. Receivers hear "resolved" when the incident resolves.

All SQL of the alerts service lives here. Functions take a session and never commit: the
caller (one Kafka poll, or one delivery round) is the transaction. The webhook outbox is
written in the same transaction as the alert, so an alert is never lost between being
recorded and being delivered, even when the service restarts.

Several replicas may share one PostgreSQL database: outbox rows are claimed with
``FOR UPDATE SKIP LOCKED`` and a lease (``claimed_by``, ``lease_until``), a poll locks the
queues it touches (``lock_queues``), and the schema is created under an advisory lock. SQLite
serves one process only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    exists,
    func,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, aliased, mapped_column
from sqlalchemy.types import TypeDecorator

from shared import codec
from shared.events import (
    BaselineEvent,
    Breach,
    BreachKind,
    Cause,
    QualitySnapshot,
    SubgroupPoint,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
# Row ids are INTEGER (32-bit on PostgreSQL): a larger id asked for over the API names no row,
# and must be answered as such rather than sent to the database (which refuses it).
ROW_ID_MAX = 2**31 - 1
SEEN_BREACH_IDS = 100  # breach ids an alert remembers, to tell a copy from a new occurrence
OPEN = ("firing", "acknowledged")  # an alert's or an incident's open states


class Incident(Base):
    """One queue's trouble, from its first signal until every signal has resolved."""

    __tablename__ = "qw_incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    queue_id: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # firing|acknowledged|resolved
    severity: Mapped[str] = mapped_column(String(20))  # the highest of its signals'
    rules: Mapped[list[str]] = mapped_column(JSON)  # what signalled, in order of first signal
    signals: Mapped[int] = mapped_column(Integer, default=1)  # alerts recorded in it
    summary: Mapped[str] = mapped_column(Text)  # the first signal's message
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_signal_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)  # "system": auto


class IncidentEvent(Base):
    """The audit trail of an incident: opened, signal, escalated, acknowledged, note, resolved;
    who (an API key's id and name, ``system`` for the service itself, ``anonymous`` where keys
    are not enforced), when, and the note."""

    __tablename__ = "qw_incident_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("qw_incidents.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    alert_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Alert(Base):
    __tablename__ = "qw_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(400), unique=True)
    queue_id: Mapped[str] = mapped_column(String(200), index=True)
    rule: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)  # firing|resolved|acknowledged
    suppressed: Mapped[bool] = mapped_column(default=False)  # another one was open: no webhook
    message: Mapped[str] = mapped_column(Text)
    breach: Mapped[dict[str, Any]] = mapped_column(JSON)
    subgroup_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    # the breach ids counted in ``occurrences`` (the newest SEEN_BREACH_IDS): a breach the
    # scorer sends again after a restart (same id) is a copy, not a new occurrence
    breach_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # the incident it belongs to (null only for alerts recorded by a version before incidents)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("qw_incidents.id"), nullable=True, index=True
    )


class Delivery(Base):
    """One webhook to send: the outbox row. ``event`` is firing or resolved."""

    __tablename__ = "qw_deliveries"
    __table_args__ = (UniqueConstraint("alert_id", "receiver", "event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("qw_alerts.id"), index=True)
    receiver: Mapped[str] = mapped_column(String(2000))
    event: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # The claim of the replica sending it: unique per claim, kept after the result as "who
    # handled it last". The row is reserved while lease_until is in the future.
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Fixed when the row is written (Standard Webhooks' webhook-id, and the JSON body), so
    # every retry sends the same bytes under the same id. Null only in rows written by a
    # version before them: the first claim fills them in (``claim_due``).
    webhook_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The receiver's HTTP status of the last attempt (None: no answer, or not tried yet).
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Endpoint(Base):
    """A webhook receiver's state shared by the replicas: disabled after it answered 410 Gone
    (nothing more is sent to it; its deliveries wait) until a restart or a configuration
    change enables it again (``enable_endpoints``)."""

    __tablename__ = "qw_webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2000), primary_key=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Snapshot(Base):
    __tablename__ = "qw_queue_snapshots"

    queue_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Subgroup(Base):
    """One closed subgroup of a queue (a ``SubgroupPoint`` from ``qw.subgroups.v1``), at its
    newest revision. The point is kept whole in ``point``; the columns are what is queried."""

    __tablename__ = "qw_subgroups"

    queue_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    point: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BaselineRequest(Base):
    """A baseline reset asked over the API (``POST /v1/queues/{id}/baseline:reset``): the
    audit trail's who, when and why, written before its control record is produced.
    ``status``: ``pending`` until the broker took the control record, then ``sent``; the
    scorer's ``reset`` (``BaselineChange``, same ``request_id``) says when it applied it.
    ``idempotency_key``: the client's, unique per queue: a retried POST finds this row."""

    __tablename__ = "qw_baseline_requests"
    __table_args__ = (UniqueConstraint("queue_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    queue_id: Mapped[str] = mapped_column(String(200), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    replace_configured: Mapped[bool] = mapped_column(default=False)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20))  # pending|sent
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BaselineChange(Base):
    """A baseline change the scorer published on ``qw.baselines.v1`` (``BaselineEvent``):
    one row per queue, epoch and event (``reset`` or ``frozen``), kept whole in ``record``."""

    __tablename__ = "qw_baseline_changes"

    queue_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(10), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)  # event time (the queue's watermark)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


def make_engine(url: str) -> AsyncEngine:
    return create_async_engine(url, pool_pre_ping=True)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# Advisory lock keys (PostgreSQL): (class, object) pairs of int4, a class of our own.
_SCHEMA_LOCK = (0x51570001, 0)
_QUEUE_LOCK_CLASS = 0x51570002


async def create_schema(engine: AsyncEngine) -> None:
    """Create missing tables, and add the columns a table gained since it was created.

    ``create_all`` never alters an existing table, so a database made by an older version
    gains the new (nullable) columns here. On PostgreSQL this runs under an advisory lock:
    replicas starting together create each table and column once.
    """
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:c, :o)"),
                               {"c": _SCHEMA_LOCK[0], "o": _SCHEMA_LOCK[1]})  # fmt: skip
        await conn.run_sync(Base.metadata.create_all)
        await conn.run_sync(_add_missing_columns)


def _add_missing_columns(conn: Connection) -> None:
    have = inspect(conn)
    for table in Base.metadata.sorted_tables:
        present = {c["name"] for c in have.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise RuntimeError(f"cannot add NOT NULL column {table.name}.{column.name}")
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))


async def clock(session: AsyncSession) -> datetime:
    """The time leases are read and written in: PostgreSQL's clock (the transaction's start),
    so replicas on machines whose clocks differ still agree; elsewhere this machine's."""
    if session.get_bind().dialect.name == "postgresql":
        now: datetime = (await session.execute(select(func.now()))).scalar_one()
        return now.astimezone(UTC)
    return datetime.now(UTC)


def _queue_lock_key(queue_id: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(queue_id.encode(), digest_size=4).digest(), "big", signed=True
    )


async def lock_queues(session: AsyncSession, queue_ids: Iterable[str]) -> None:
    """Hold each queue's alert bookkeeping for the rest of the transaction, so two replicas
    never work on one queue at once (after a rebalance both may read the same records; the
    snapshots and the breaches of a queue may be read by different replicas). PostgreSQL: a
    transaction advisory lock per queue, taken in key order in one statement, so two polls
    never deadlock. SQLite serialises its writers anyway (and serves one process)."""
    keys = sorted({_queue_lock_key(q) for q in queue_ids})
    if not keys or session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(
        # PostgreSQL evaluates a volatile output column after the ORDER BY sort (9.6+)
        text("SELECT pg_advisory_xact_lock(:c, k) FROM unnest(CAST(:keys AS integer[])) AS k "
             "ORDER BY k"),
        {"c": _QUEUE_LOCK_CLASS, "keys": keys},
    )  # fmt: skip


# -- repository ------------------------------------------------------------------------------


async def record_breach(
    session: AsyncSession,
    breach: Breach,
    *,
    receivers: list[str],
    now: datetime,
) -> Alert | None:
    """Record a breach as an alert in its queue's incident, and queue its webhooks.

    Returns the new alert, or None when the dedup key was seen before: a re-evaluation (a
    new breach id) adds to ``occurrences`` and moves ``last_seen_at``; a copy of a breach
    already counted (the same id, re-sent after a scorer restart) changes nothing. Without an open
    incident on the queue the alert opens one and notifies. Within an open incident it
    notifies only when it raises the incident's severity (a critical after a warning: the
    page must go out); otherwise it is recorded, listed in the incident, and ``suppressed``:
    receivers already know, and hear "resolved" once, when the incident resolves. Flapping
    is held back by the resolution's hysteresis (``resolve_recovered``).

    A below-target breach while the queue has a below-target alert open is that alert's,
    as a re-evaluation is: the scorer raises the rule at most once a UTC day, each day with
    a new dedup key, and a queue still under its target the next day is the same condition,
    not a second alert. The alert keeps its first breach (its labels, its site: what
    Alertmanager and the receivers know it by) and counts the next (``occurrences``, its
    breach id among ``breach_ids``, by which a copy re-sent later, even after the alert
    resolved, is known and changes nothing).
    """
    existing = await session.scalar(select(Alert).where(Alert.dedup_key == breach.dedup_key))
    if existing is None and breach.kind is BreachKind.BELOW_TARGET:
        # the queue's below-target alerts, newest first (a handful: one an episode)
        folded = (
            await session.scalars(
                select(Alert)
                .where(
                    Alert.queue_id == breach.queue_id,
                    Alert.kind == BreachKind.BELOW_TARGET.value,
                )
                .order_by(Alert.id.desc())
                .limit(FOLDED_LOOKBACK)
            )
        ).all()
        if any(breach.breach_id in (a.breach_ids or []) for a in folded):
            return None  # a copy of a breach already counted in one of them
        existing = next((a for a in folded if a.status in OPEN), None)
    if existing is not None:
        seen = existing.breach_ids or [str(existing.breach.get("breach_id", ""))]
        if breach.breach_id in seen:
            return None  # the same breach again (a replay after a restart): nothing changes
        existing.breach_ids = [*seen, breach.breach_id][-SEEN_BREACH_IDS:]
        existing.occurrences += 1
        existing.last_seen_at = now
        if existing.dedup_key != breach.dedup_key and existing.incident_id is not None:
            # a later day's below-target breach, folded: the incident's trail says so
            session.add(IncidentEvent(
                incident_id=existing.incident_id, at=now, action="signal", actor=SYSTEM,
                alert_id=existing.id,
                note=f"{breach.rule} ({breach.severity}) again: {breach.message}"[:2000],
            ))  # fmt: skip
        return None
    incident = await open_incident(session, breach.queue_id)
    alert = Alert(
        dedup_key=breach.dedup_key,
        queue_id=breach.queue_id,
        rule=breach.rule,
        kind=breach.kind.value,
        severity=breach.severity,
        status="firing",
        suppressed=False,
        message=breach.message,
        breach=breach.model_dump(mode="json"),
        subgroup_start=breach.subgroup_start,
        first_seen_at=now,
        last_seen_at=now,
        occurrences=1,
        breach_ids=[breach.breach_id],
    )
    if incident is None:
        incident = Incident(
            queue_id=breach.queue_id, status="firing", severity=breach.severity,
            rules=[breach.rule], signals=1, summary=breach.message, opened_at=now,
            last_signal_at=now,
        )  # fmt: skip
        session.add(incident)
        await session.flush()
        action = "opened"
    else:
        alert.suppressed = _rank(breach.severity) <= _rank(incident.severity)
        action = "signal" if alert.suppressed else "escalated"
        if not alert.suppressed:
            incident.severity = breach.severity
        if breach.rule not in incident.rules:
            incident.rules = [*incident.rules, breach.rule]  # a new list: JSON change tracking
        incident.signals += 1
        incident.last_signal_at = now
    alert.incident_id = incident.id
    session.add(alert)
    await session.flush()
    session.add(IncidentEvent(
        incident_id=incident.id, at=now, action=action, actor=SYSTEM, alert_id=alert.id,
        note=f"{breach.rule} ({breach.severity}): {breach.message}"[:2000],
    ))  # fmt: skip
    if not alert.suppressed:
        await _enqueue(session, alert, "firing", receivers, now)
    return alert


SYSTEM = "system"  # the actor of what the service does by itself
FOLDED_LOOKBACK = 20  # a queue's latest below-target alerts searched for a re-sent breach


def site_of(alert: Alert) -> str | None:
    """The one site behind the alert, when its breach names one (a `cusum_site_upper` whose
    site stands out from the rest of the queue, or a root cause that is one site): what
    `GET /v1/alerts` and the webhooks carry as `site`."""
    site = (alert.breach or {}).get("site")
    return site if isinstance(site, str) and site else None


def causes_of(alert: Alert) -> tuple[str | None, list[Cause]]:
    """The root cause the scorer attached to the alert's breach (none on a breach from a
    version before root cause, or one no slice explains)."""
    breach = alert.breach if isinstance(alert.breach, dict) else {}
    summary = breach.get("cause_summary")
    try:
        ranked = [Cause.model_validate(c) for c in breach.get("causes") or []]
    except ValueError:
        ranked = []
    return (summary if isinstance(summary, str) else None), ranked


def _rank(severity: str) -> int:
    return SEVERITY_RANK.get(severity, 0)


async def open_incident(session: AsyncSession, queue_id: str) -> Incident | None:
    """The queue's open incident (firing or acknowledged), if any: at most one (the caller
    holds the queue's lock, ``lock_queues``)."""
    q = (
        select(Incident)
        .where(Incident.queue_id == queue_id, Incident.status.in_(OPEN))
        .order_by(Incident.id)
        .limit(1)
    )
    return await session.scalar(q)


class _Outbox:
    """How many times this process wrote webhook rows: the deliverer claims promptly after
    a change, and otherwise looks at the database only when a row is due (``next_due``)."""

    writes = 0


def outbox_writes() -> int:
    return _Outbox.writes


async def next_due(session: AsyncSession) -> datetime | None:
    """The earliest next attempt of any pending webhook row (leased or not), or None."""
    due: datetime | None = await session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(Delivery.status == "pending")
    )
    return due


async def _enqueue(
    session: AsyncSession, alert: Alert, event: str, receivers: list[str], now: datetime
) -> None:
    """Write the alert's ``event`` webhook to each receiver, its id and body fixed now: a
    firing stays a firing however late a retry goes out."""
    rows = [
        Delivery(alert_id=alert.id, receiver=url, event=event, status="pending", attempts=0,
                 next_attempt_at=now, created_at=now, webhook_id=new_webhook_id())
        for url in receivers
    ]  # fmt: skip
    if not rows:
        return
    incident = None
    if alert.incident_id is not None:
        incident = await session.get(Incident, alert.incident_id)
    session.add_all(rows)
    await session.flush()  # the ids, which the body names
    for d in rows:
        d.body = webhook_body(alert, event, d.id, now, incident)
    _Outbox.writes += 1


def new_webhook_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def incident_summary(incident: Incident) -> dict[str, Any]:
    """An incident as webhooks and Alertmanager annotations carry it."""
    return {
        "id": incident.id,
        "status": incident.status,
        "severity": incident.severity,
        "rules": list(incident.rules),
        "signals": incident.signals,
        "opened_at": incident.opened_at,
        "resolved_at": incident.resolved_at,
        "resolved_by": incident.resolved_by,
    }


def webhook_body(
    alert: Alert, event: str, delivery_id: int, at: datetime, incident: Incident | None = None
) -> str:
    """The JSON of one delivery (docs/events.md, "Webhook payload"): the alert, and its
    incident, as they were when ``event`` happened."""
    firing = event == "firing"
    return codec.dumps(
        {
            "version": "2",
            "type": f"alert.{event}",
            "event": event,
            "delivery_id": delivery_id,
            "timestamp": at,
            "alert": {
                "id": alert.id,
                "dedup_key": alert.dedup_key,
                "queue_id": alert.queue_id,
                "rule": alert.rule,
                "kind": alert.kind,
                "severity": alert.severity,
                "status": "firing" if firing else alert.status,
                "message": alert.message,
                "site": site_of(alert),
                "subgroup_start": alert.subgroup_start,
                "first_seen_at": alert.first_seen_at,
                "resolved_at": None if firing else alert.resolved_at,
                "breach": alert.breach,
            },
            "incident": None if incident is None else incident_summary(incident),
        }
    ).decode()


def recovered_kinds(
    snap: QualitySnapshot, *, after_subgroups: int, target: float, min_sample: int
) -> list[str]:
    """The alert kinds whose condition this snapshot shows over (``resolve_recovered``)."""
    kinds: list[str] = []
    if snap.last_point is not None and snap.in_control_streak >= after_subgroups:
        kinds.append("spc")
    acc = snap.accuracy_24h
    if acc is not None and acc >= target and snap.n_24h >= min_sample:
        kinds.append("below_target")
    return kinds


def recovered(kind: str, subgroup_start: datetime | None, snap: QualitySnapshot) -> bool:
    """An open alert of a kind in ``recovered_kinds``: over, unless an SPC alert is about
    the subgroup charted last (or later), which the quiet streak does not cover yet."""
    lp = snap.last_point
    return kind != "spc" or (
        lp is not None and subgroup_start is not None and subgroup_start < lp.start
    )


async def resolve_recovered(
    session: AsyncSession,
    snap: QualitySnapshot,
    *,
    receivers: list[str],
    now: datetime,
    after_subgroups: int = 3,
    target: float = 0.9,
    min_sample: int = 30,
) -> list[Alert]:
    """Resolve the queue's alerts whose condition is over, and its incident with the last.

    SPC alerts: after ``after_subgroups`` consecutive subgroups charted without an upper
    signal on any chart (one quiet point inside a sustained shift is not recovery; that
    would flap). Below-target alerts: once the 24 h accuracy is back at the target on at
    least ``min_sample`` verdicts. The incident resolves when none of its alerts is open any
    more; then each alert of it that notified gets its "resolved" webhook.
    """
    kinds = recovered_kinds(
        snap, after_subgroups=after_subgroups, target=target, min_sample=min_sample
    )
    if not kinds:
        return []
    firing = (
        await session.scalars(
            select(Alert).where(
                Alert.queue_id == snap.queue_id,
                Alert.status.in_(OPEN),
                Alert.kind.in_(kinds),
            )
        )
    ).all()
    resolved = [a for a in firing if recovered(a.kind, a.subgroup_start, snap)]
    await _resolve(session, resolved, receivers=receivers, now=now, actor=SYSTEM,
                   note="every signal back in control")  # fmt: skip
    return resolved


async def _resolve(
    session: AsyncSession,
    alerts: Iterable[Alert],
    *,
    receivers: list[str],
    now: datetime,
    actor: str,
    note: str,
    note_open: bool = False,
) -> None:
    """Resolve these open alerts, and each incident of theirs that has nothing else open
    (under ``actor``, with ``note``); ``note_open``: an incident left open gets the note in
    its trail."""
    alerts = list(alerts)
    incidents: set[int] = set()
    for alert in alerts:
        alert.status = "resolved"
        alert.resolved_at = now
        if alert.incident_id is not None:
            incidents.add(alert.incident_id)
        elif not alert.suppressed:  # recorded before incidents: resolves on its own
            await _enqueue(session, alert, "resolved", receivers, now)
    if alerts:
        await session.flush()
    for incident_id in sorted(incidents):
        still_open = await session.scalar(
            select(Alert.id)
            .where(Alert.incident_id == incident_id, Alert.status.in_(OPEN))
            .limit(1)
        )
        if still_open is None:
            await _close_incident(
                session, incident_id, receivers=receivers, now=now, actor=actor, note=note
            )
        elif note_open:
            session.add(IncidentEvent(incident_id=incident_id, at=now, action="note",
                                      actor=actor, note=note))  # fmt: skip


async def _close_incident(
    session: AsyncSession,
    incident_id: int,
    *,
    receivers: list[str],
    now: datetime,
    actor: str,
    note: str | None,
) -> Incident | None:
    """Resolve the incident and whatever of it is still open; each alert of it that notified
    gets its "resolved" webhook. None when it is not open (already resolved)."""
    incident = await _locked(session, Incident, incident_id)
    if incident is None or incident.status not in OPEN:
        return None
    incident.status = "resolved"
    incident.resolved_at = now
    incident.resolved_by = actor
    alerts = (await session.scalars(
        select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id)
    )).all()  # fmt: skip
    for alert in alerts:
        if alert.status in OPEN:
            alert.status = "resolved"
            alert.resolved_at = now
        if not alert.suppressed:
            await _enqueue(session, alert, "resolved", receivers, now)
    session.add(IncidentEvent(incident_id=incident_id, at=now, action="resolved", actor=actor,
                              note=note))  # fmt: skip
    return incident


async def upsert_snapshot(session: AsyncSession, snap: QualitySnapshot, now: datetime) -> None:
    row = await session.get(Snapshot, snap.queue_id)
    data = snap.model_dump(mode="json")
    if row is None:
        session.add(Snapshot(queue_id=snap.queue_id, snapshot=data, received_at=now))
    else:
        row.snapshot = data
        row.received_at = now


async def snapshots(session: AsyncSession) -> list[tuple[QualitySnapshot, datetime]]:
    rows = (await session.scalars(select(Snapshot).order_by(Snapshot.queue_id))).all()
    return [(QualitySnapshot.model_validate(r.snapshot), r.received_at) for r in rows]


async def snapshot(session: AsyncSession, queue_id: str) -> tuple[QualitySnapshot, datetime] | None:
    row = await session.get(Snapshot, queue_id)
    if row is None:
        return None
    return QualitySnapshot.model_validate(row.snapshot), row.received_at


async def snapshot_stamps(
    session: AsyncSession, since: datetime | None = None
) -> list[tuple[str, datetime]]:
    """``(queue_id, received_at)`` of the stored snapshots received after ``since`` (all
    when None): what the health view compares with the entries it holds."""
    q = select(Snapshot.queue_id, Snapshot.received_at)
    if since is not None:
        q = q.where(Snapshot.received_at > since)
    return [(queue_id, at) for queue_id, at in (await session.execute(q)).all()]


async def snapshots_of(
    session: AsyncSession, queue_ids: Iterable[str]
) -> list[tuple[QualitySnapshot, datetime]]:
    """The stored snapshots of these queues (those that have one)."""
    ids = sorted(set(queue_ids))
    out: list[tuple[QualitySnapshot, datetime]] = []
    for i in range(0, len(ids), _UPSERT_ROWS):
        q = select(Snapshot.snapshot, Snapshot.received_at).where(
            Snapshot.queue_id.in_(ids[i : i + _UPSERT_ROWS])
        )
        out += [(QualitySnapshot.model_validate(s), at) for s, at in await session.execute(q)]
    return out


_UPSERT_ROWS = 500  # rows per INSERT statement: far below SQLite's bound-parameter limit
_INSERTS: dict[str, Callable[[type[Subgroup]], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


async def upsert_subgroups(
    session: AsyncSession, points: Iterable[SubgroupPoint], now: datetime
) -> int:
    """Store each subgroup at its newest revision; returns how many distinct subgroups came in.

    A point replaces the stored one only when its revision is not older: revision 1 arriving
    after revision 2 (a replay, a redelivery) changes nothing, while the same revision again
    rewrites it with identical content. Within ``points`` the highest revision of a subgroup
    wins (the later one on a tie). One ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` per
    chunk, so two writers racing on one subgroup still keep the newest.
    """
    newest: dict[tuple[str, datetime], SubgroupPoint] = {}
    for p in points:
        key = (p.queue_id, p.start)
        if key not in newest or newest[key].revision <= p.revision:
            newest[key] = p
    rows = [
        {"queue_id": p.queue_id, "start": p.start, "revision": p.revision,
         "point": p.model_dump(mode="json"), "received_at": now}
        for p in newest.values()
    ]  # fmt: skip
    dialect = session.get_bind().dialect.name
    if rows and dialect not in _INSERTS:
        raise NotImplementedError(f"subgroup upsert supports {sorted(_INSERTS)}, not {dialect}")
    for i in range(0, len(rows), _UPSERT_ROWS):
        stmt = _INSERTS[dialect](Subgroup).values(rows[i : i + _UPSERT_ROWS])
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Subgroup.queue_id, Subgroup.start],
                set_={c: stmt.excluded[c] for c in ("revision", "point", "received_at")},
                where=stmt.excluded.revision >= Subgroup.revision,
            )
        )
    return len(rows)


async def subgroups(
    session: AsyncSession,
    queue_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after: datetime | None = None,
    limit: int = 200,
) -> list[SubgroupPoint]:
    """A queue's subgroups in start order: ``since <= start < until`` and ``start > after``
    (each bound optional), at most ``limit``."""
    q = select(Subgroup.point).where(Subgroup.queue_id == queue_id)
    if since is not None:
        q = q.where(Subgroup.start >= since)
    if until is not None:
        q = q.where(Subgroup.start < until)
    if after is not None:
        q = q.where(Subgroup.start > after)
    rows = (await session.scalars(q.order_by(Subgroup.start).limit(limit))).all()
    return [SubgroupPoint.model_validate(r) for r in rows]


async def queue_known(session: AsyncSession, queue_id: str) -> bool:
    """Whether anything was ever received for the queue: a snapshot or a subgroup."""
    found = await session.scalar(
        select(
            or_(
                exists().where(Snapshot.queue_id == queue_id),
                exists().where(Subgroup.queue_id == queue_id),
            )
        )
    )
    return bool(found)


async def firing_alerts(session: AsyncSession, queue_id: str | None = None) -> list[Alert]:
    q = select(Alert).where(Alert.status.in_(("firing", "acknowledged")))
    if queue_id is not None:
        q = q.where(Alert.queue_id == queue_id)
    return list((await session.scalars(q.order_by(Alert.first_seen_at))).all())


async def firing_rules(session: AsyncSession) -> dict[str, list[str]]:
    """The rules of every queue's open alerts (firing or acknowledged), in the order of
    ``firing_alerts``: what a queue's health counts, read without loading whole alerts."""
    q = (
        select(Alert.queue_id, Alert.rule)
        .where(Alert.status.in_(("firing", "acknowledged")))
        .order_by(Alert.first_seen_at)
    )
    out: dict[str, list[str]] = {}
    for queue_id, rule in await session.execute(q):
        out.setdefault(queue_id, []).append(rule)
    return out


async def recent_alerts(
    session: AsyncSession, limit: int = 100, queue_id: str | None = None
) -> list[Alert]:
    q = select(Alert)
    if queue_id is not None:
        q = q.where(Alert.queue_id == queue_id)
    return list((await session.scalars(q.order_by(Alert.id.desc()).limit(limit))).all())


async def acknowledge(session: AsyncSession, alert_id: int) -> Alert | None:
    alert = await _locked(session, Alert, alert_id)  # a resolution meanwhile is kept
    if alert is not None and alert.status == "firing":
        alert.status = "acknowledged"
    return alert


async def incidents(
    session: AsyncSession,
    *,
    status: str = "all",
    queue_id: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[Incident]:
    """Incidents newest first: ``status`` open (firing or acknowledged), resolved or all;
    ``before``: only ids below it (the paging cursor)."""
    q = select(Incident)
    if status == "open":
        q = q.where(Incident.status.in_(OPEN))
    elif status == "resolved":
        q = q.where(Incident.status == "resolved")
    if queue_id is not None:
        q = q.where(Incident.queue_id == queue_id)
    if before is not None:
        q = q.where(Incident.id < min(before, ROW_ID_MAX + 1))
    return list((await session.scalars(q.order_by(Incident.id.desc()).limit(limit))).all())


async def open_incidents_by_queue(
    session: AsyncSession, queue_id: str | None = None
) -> dict[str, Incident]:
    """Every queue's open incident (firing or acknowledged), by queue id (the newest, should
    a race have left two)."""
    q = select(Incident).where(Incident.status.in_(OPEN))
    if queue_id is not None:
        q = q.where(Incident.queue_id == queue_id)
    return {i.queue_id: i for i in (await session.scalars(q.order_by(Incident.id))).all()}


async def open_incidents_by_severity(session: AsyncSession) -> dict[str, int]:
    """How many incidents are open, by severity (every severity present, 0 included)."""
    q = (
        select(Incident.severity, func.count())
        .where(Incident.status.in_(OPEN))
        .group_by(Incident.severity)
    )
    counts = dict.fromkeys(SEVERITY_RANK, 0)
    for severity, n in (await session.execute(q)).all():
        counts[severity] = int(n)
    return counts


async def incident_detail(
    session: AsyncSession, incident_id: int
) -> tuple[Incident, list[Alert], list[IncidentEvent]] | None:
    """An incident with its signals (oldest first) and its audit trail (in order)."""
    incident = await _get(session, Incident, incident_id)
    if incident is None:
        return None
    alerts = (await session.scalars(
        select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id)
    )).all()  # fmt: skip
    events = (await session.scalars(
        select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
        .order_by(IncidentEvent.id)
    )).all()  # fmt: skip
    return incident, list(alerts), list(events)


CAUSE_SCAN = 10  # signals per incident looked at for its top cause (the first with one)
# a person's notes in an incident's trail: a note, and the note of an acknowledgement or a
# resolution by hand (never the service's own entries, which quote each signal)
NOTE_ACTIONS = ("note", "acknowledged", "resolved")


@dataclasses.dataclass(frozen=True)
class IncidentHistory:
    """An incident as a queue's history shows it: what it groups, its top cause, its notes."""

    incident: Incident
    rule_signals: dict[str, int]  # rule -> alerts (signals) of that rule, in order of first
    top_cause: str | None  # the cause of its first signal carrying one
    notes: int
    last_note: IncidentEvent | None


async def incident_history(
    session: AsyncSession, queue_id: str, limit: int
) -> list[IncidentHistory]:
    """The queue's newest ``limit`` incidents, newest first, each with its signals counted by
    rule, its top cause (the first of its first ``CAUSE_SCAN`` signals that carries one: the
    cause that opened it, or the first one found) and its notes (``NOTE_ACTIONS`` with a note
    by someone: how many, the last): five queries whatever the number of incidents, signals
    and notes."""
    found = await incidents(session, queue_id=queue_id, limit=limit)
    ids = [i.id for i in found]
    if not ids:
        return []
    rules: dict[int, dict[str, int]] = {}
    per_rule = (
        select(Alert.incident_id, Alert.rule, func.count(), func.min(Alert.id))
        .where(Alert.incident_id.in_(ids))
        .group_by(Alert.incident_id, Alert.rule)
        .order_by(func.min(Alert.id))
    )
    for incident_id, rule, n, _ in await session.execute(per_rule):
        rules.setdefault(int(incident_id or 0), {})[rule] = int(n)
    rn = func.row_number().over(partition_by=Alert.incident_id, order_by=Alert.id).label("rn")
    first = (
        select(Alert.incident_id, Alert.id, Alert.breach, rn)
        .where(Alert.incident_id.in_(ids))
        .subquery()
    )
    causes: dict[int, str] = {}
    scan = select(first.c.incident_id, first.c.breach).where(first.c.rn <= CAUSE_SCAN)
    for incident_id, breach in await session.execute(scan.order_by(first.c.id)):
        summary = breach.get("cause_summary") if isinstance(breach, dict) else None
        if isinstance(summary, str) and summary and incident_id not in causes:
            causes[incident_id] = summary
    counted = (
        select(IncidentEvent.incident_id, func.count(), func.max(IncidentEvent.id))
        .where(
            IncidentEvent.incident_id.in_(ids),
            IncidentEvent.action.in_(NOTE_ACTIONS),
            IncidentEvent.note.is_not(None),
            IncidentEvent.actor != SYSTEM,
        )
        .group_by(IncidentEvent.incident_id)
    )
    notes = {i: (int(n), last) for i, n, last in await session.execute(counted)}
    last_notes = {
        e.id: e
        for e in await session.scalars(
            select(IncidentEvent).where(IncidentEvent.id.in_([m for _, m in notes.values()]))
        )
    } if notes else {}  # fmt: skip
    out = []
    for i in found:
        count, last = notes.get(i.id, (0, 0))
        out.append(
            IncidentHistory(
                incident=i,
                rule_signals=rules.get(i.id, {}),
                top_cause=causes.get(i.id),
                notes=count,
                last_note=last_notes.get(last),
            )
        )
    return out


class IncidentClosedError(Exception):
    """The incident is resolved: acknowledging or resolving it again changes nothing."""


async def acknowledge_incident(
    session: AsyncSession, incident_id: int, *, actor: str, note: str | None, now: datetime
) -> Incident | None:
    """Someone is on it: status acknowledged (notifications already sent stand; the incident
    still resolves by itself). Again on an acknowledged one: the note is kept, nothing else
    changes. ``IncidentClosedError`` when it is resolved; None when there is no such incident."""
    incident = await _locked(session, Incident, incident_id)
    if incident is None:
        return None
    if incident.status not in OPEN:
        raise IncidentClosedError
    if incident.status == "firing":
        incident.status = "acknowledged"
        incident.acknowledged_at = now
        incident.acknowledged_by = actor
    session.add(IncidentEvent(incident_id=incident_id, at=now, action="acknowledged",
                              actor=actor, note=note))  # fmt: skip
    return incident


async def annotate_incident(
    session: AsyncSession, incident_id: int, *, actor: str, note: str, now: datetime
) -> IncidentEvent | None:
    """A note in the incident's trail (open or resolved: a post-mortem line is welcome)."""
    if await _get(session, Incident, incident_id) is None:
        return None
    event = IncidentEvent(incident_id=incident_id, at=now, action="note", actor=actor, note=note)
    session.add(event)
    await session.flush()
    return event


async def resolve_incident(
    session: AsyncSession,
    incident_id: int,
    *,
    actor: str,
    note: str | None,
    receivers: list[str],
    now: datetime,
) -> Incident | None:
    """Resolved by hand: the incident and its open signals, with the "resolved" webhooks.
    If the condition persists, the next breach opens a new incident. ``IncidentClosedError``
    when it is already resolved; None when there is no such incident."""
    closed = await _close_incident(
        session, incident_id, receivers=receivers, now=now, actor=actor, note=note
    )
    if closed is None:
        if await _get(session, Incident, incident_id) is None:
            return None
        raise IncidentClosedError
    return closed


_CLAIMS = itertools.count(1)  # makes each claim's claimed_by unique within the process


async def claim_due(
    session: AsyncSession, now: datetime, *, lease_s: float, limit: int = 50, owner: str = ""
) -> list[tuple[Delivery, Alert]]:
    """Claim up to ``limit`` due outbox rows for ``lease_s`` (``now`` on the clock of
    ``clock``), for sending outside any transaction.

    A row is due when it is pending, its next attempt time has come and no lease holds it
    (a lease that ran out is free again: its holder died or hung). Rows are read with
    ``FOR UPDATE SKIP LOCKED``: a concurrent claimer on PostgreSQL skips them instead of
    waiting, and one whose lease was just taken is re-checked and left out. Each claimed row
    gets ``claimed_by`` = ``owner#<n>``, unique per claim, which ``record_attempt`` checks.
    A "resolved" row waits until the alert's "firing" row to the same receiver is done, so
    a receiver never hears "resolved" before "firing". Rows to a disabled endpoint wait.
    A row written by an older version (no body yet) gets its body and id now, once: the
    old idempotency key as id, and the alert as it was at the row's event. Commit promptly:
    the claim is only visible to other replicas once the transaction is committed.
    """
    if limit <= 0:
        return []
    firing = aliased(Delivery)
    firing_pending = (
        select(firing.id)
        .where(
            firing.alert_id == Delivery.alert_id,
            firing.receiver == Delivery.receiver,
            firing.event == "firing",
            firing.status == "pending",
        )
        .exists()
    )
    q = (
        select(Delivery, Alert)
        .join(Alert, Alert.id == Delivery.alert_id)
        .where(
            Delivery.status == "pending",
            Delivery.next_attempt_at <= now,
            or_(Delivery.lease_until.is_(None), Delivery.lease_until <= now),
            ~((Delivery.event == "resolved") & firing_pending),
            ~select(Endpoint.url)
            .where(Endpoint.url == Delivery.receiver, Endpoint.disabled_at.is_not(None))
            .exists(),
        )
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
        .execution_options(populate_existing=True)
    )
    rows = [(d, a) for d, a in (await session.execute(q)).all()]
    until = now + timedelta(seconds=lease_s)
    for d, alert in rows:
        d.claimed_by = f"{owner}#{next(_CLAIMS)}"
        d.lease_until = until
        if d.body is None or d.webhook_id is None:  # written by a version before them
            d.webhook_id = d.webhook_id or f"{alert.dedup_key}:{d.event}"[:100]
            d.body = d.body or webhook_body(alert, d.event, d.id, d.created_at)
    return rows


_Row = TypeVar("_Row", Alert, Delivery, Incident)


async def _locked(session: AsyncSession, model: type[_Row], row_id: int) -> _Row | None:
    """The row, locked until the transaction ends, as last committed: a concurrent change
    (a claim, a result, a resolution) is waited for and seen, never overwritten."""
    if not 1 <= row_id <= ROW_ID_MAX:
        return None
    q = (
        select(model)
        .where(model.id == row_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return await session.scalar(q)


async def record_attempt(
    session: AsyncSession,
    delivery_id: int,
    *,
    now: datetime,
    error: str | None,
    retry_at: datetime | None,
    claimed_by: str | None = None,
    response_status: int | None = None,
) -> Delivery | None:
    """Record one attempt: delivered (``error`` None), retry at ``retry_at``, or failed; the
    lease ends, and the receiver's HTTP status (if it answered) is kept. With ``claimed_by`` (the claim that sent it) the row changes only while that
    claim still holds it: None when another claim took it over (this one's lease ran out
    and another replica claimed it), or the row is gone."""
    d = await _locked(session, Delivery, delivery_id)
    if d is None or (
        claimed_by is not None and (d.claimed_by != claimed_by or d.status != "pending")
    ):
        return None
    d.attempts += 1
    d.last_error = error
    d.response_status = response_status
    d.lease_until = None
    if error is None:
        d.status = "delivered"
        d.delivered_at = now
    elif retry_at is None:
        d.status = "failed"
    else:
        d.next_attempt_at = retry_at
    return d


async def release(session: AsyncSession, delivery_id: int, claimed_by: str) -> bool:
    """End a claim without an attempt (nothing was sent): the row is due again at once.
    False when the claim no longer holds the row."""
    d = await _locked(session, Delivery, delivery_id)
    if d is None or d.claimed_by != claimed_by or d.status != "pending":
        return False
    d.lease_until = None
    return True


async def due_deliveries(session: AsyncSession, now: datetime, limit: int = 50) -> list[Delivery]:
    """Pending outbox rows whose time has come (for inspection and tests)."""
    q = (
        select(Delivery)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    return list((await session.scalars(q)).all())


async def alert_by_id(session: AsyncSession, alert_id: int) -> Alert | None:
    return await _get(session, Alert, alert_id)


async def _get(session: AsyncSession, model: type[_Row], row_id: int) -> _Row | None:
    """The row with this id, or None (also for an id past the column's range)."""
    return await session.get(model, row_id) if 1 <= row_id <= ROW_ID_MAX else None


async def disable_endpoint(session: AsyncSession, url: str, *, now: datetime, reason: str) -> None:
    """Send nothing more to ``url`` (it answered 410 Gone) until ``enable_endpoints``."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Endpoint).values(url=url, disabled_at=now, disabled_reason=reason)
    await session.execute(  # one statement: two replicas told 410 at once both succeed
        stmt.on_conflict_do_update(
            index_elements=[Endpoint.url],
            set_={"disabled_at": now, "disabled_reason": reason},
            where=Endpoint.disabled_at.is_(None),
        )
    )


async def enable_endpoints(session: AsyncSession, urls: Iterable[str]) -> list[str]:
    """Enable the configured receivers again (at startup: a restart or a configuration change
    is what re-enables an endpoint that answered 410); returns those that were disabled."""
    wanted = set(urls)
    rows = (await session.scalars(select(Endpoint).where(Endpoint.disabled_at.is_not(None)))).all()
    enabled = []
    for row in rows:
        if row.url in wanted:
            row.disabled_at = None
            row.disabled_reason = None
            enabled.append(row.url)
    return enabled


async def disabled_endpoints(session: AsyncSession) -> list[Endpoint]:
    q = select(Endpoint).where(Endpoint.disabled_at.is_not(None)).order_by(Endpoint.url)
    return list((await session.scalars(q)).all())


# -- baselines -------------------------------------------------------------------------------


async def baseline_request(
    session: AsyncSession, queue_id: str, idempotency_key: str
) -> BaselineRequest | None:
    """The reset asked for the queue under this idempotency key, if any."""
    q = select(BaselineRequest).where(
        BaselineRequest.queue_id == queue_id, BaselineRequest.idempotency_key == idempotency_key
    )
    return await session.scalar(q)


async def add_baseline_request(session: AsyncSession, row: BaselineRequest) -> BaselineRequest:
    """Record a reset request; when a concurrent request with the same idempotency key won
    the race, that one is returned instead (the unique constraint decides)."""
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        if row.idempotency_key is None:
            raise
        found = await baseline_request(session, row.queue_id, row.idempotency_key)
        if found is None:
            raise
        return found
    return row


async def mark_baseline_request_sent(session: AsyncSession, request_id: str, now: datetime) -> None:
    row = await session.scalar(
        select(BaselineRequest).where(BaselineRequest.request_id == request_id)
    )
    if row is not None and row.status != "sent":
        row.status = "sent"
        row.sent_at = now


async def record_baseline_changes(
    session: AsyncSession, events: Iterable[BaselineEvent], now: datetime
) -> list[BaselineEvent]:
    """Store the scorer's baseline changes; returns those not stored before (a replayed
    poll, or the scorer re-sending after a restart, brings the same ones again)."""
    fresh = []
    for e in events:
        if await session.get(BaselineChange, (e.queue_id, e.epoch, e.event)) is not None:
            continue
        session.add(BaselineChange(
            queue_id=e.queue_id, epoch=e.epoch, event=e.event, request_id=e.request_id,
            at=e.at, record=e.model_dump(mode="json"), received_at=now,
        ))  # fmt: skip
        fresh.append(e)
    if fresh:
        await session.flush()
    return fresh


async def baseline_changes(session: AsyncSession, queue_id: str) -> list[BaselineEvent]:
    """The queue's baseline changes, oldest first (epoch, then reset before frozen)."""
    rows = (await session.scalars(
        select(BaselineChange.record).where(BaselineChange.queue_id == queue_id)
    )).all()  # fmt: skip
    changes = [BaselineEvent.model_validate(r) for r in rows]
    return sorted(changes, key=lambda e: (e.epoch, e.event != "reset"))


async def baseline_requests(session: AsyncSession, queue_id: str) -> list[BaselineRequest]:
    """The resets asked for the queue, oldest first."""
    q = select(BaselineRequest).where(BaselineRequest.queue_id == queue_id)
    return list((await session.scalars(q.order_by(BaselineRequest.id))).all())


async def last_reset_at(session: AsyncSession, queue_id: str) -> datetime | None:
    """The event time at which the scorer applied the queue's last baseline reset."""
    q = select(func.max(BaselineChange.at)).where(
        BaselineChange.queue_id == queue_id, BaselineChange.event == "reset"
    )
    at: datetime | None = await session.scalar(q)
    return None if at is None else (at.replace(tzinfo=UTC) if at.tzinfo is None else at)


async def resolve_for_reset(
    session: AsyncSession,
    reset: BaselineEvent,
    *,
    receivers: list[str],
    now: datetime,
) -> list[Alert]:
    """A baseline reset ends the chart alerts raised against the old baseline: the queue's
    open SPC alerts resolve (below-target ones stay: the target rule goes on), and its
    incident with them when nothing else of it is open, each change in the trail under the
    reset's actor."""
    actor = reset.actor or SYSTEM
    note = f"baseline reset (epoch {reset.epoch}): {reset.reason or ''}".strip()[:2000]
    alerts = list((await session.scalars(
        select(Alert).where(
            Alert.queue_id == reset.queue_id, Alert.status.in_(OPEN), Alert.kind == "spc"
        ).order_by(Alert.id)
    )).all())  # fmt: skip
    await _resolve(session, alerts, receivers=receivers, now=now, actor=actor, note=note,
                   note_open=True)  # fmt: skip
    return alerts
