"""Alert state in SQL: alerts, the webhook outbox, the latest snapshot per queue, and every
closed subgroup of every queue (its newest revision) for the chart API.

All SQL of the alerts service lives here. Functions take a session and never commit: the
caller (one Kafka poll, or one delivery round) is the transaction. The webhook outbox is
written in the same transaction as the alert, so an alert is never lost between being
recorded and being delivered, even when the service restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    exists,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, aliased, mapped_column
from sqlalchemy.types import TypeDecorator

from shared.events import Breach, QualitySnapshot, SubgroupPoint


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
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


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


def make_engine(url: str) -> AsyncEngine:
    return create_async_engine(url, pool_pre_ping=True)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def create_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


# -- repository ------------------------------------------------------------------------------


async def record_breach(
    session: AsyncSession,
    breach: Breach,
    *,
    receivers: list[str],
    now: datetime,
) -> Alert | None:
    """Record a breach as an alert and queue its webhooks.

    Returns the new alert, or None when the dedup key was seen before (a replay or a
    re-evaluation: only ``occurrences`` and ``last_seen_at`` change). While an alert for the
    same queue+rule is open (firing or acknowledged) a new one is recorded but suppressed:
    receivers already know, and hear "resolved" only once the condition is over. Flapping
    is held back by the resolution's hysteresis (``resolve_recovered``).
    """
    existing = await session.scalar(select(Alert).where(Alert.dedup_key == breach.dedup_key))
    if existing is not None:
        existing.occurrences += 1
        existing.last_seen_at = now
        return None
    open_alert = await session.scalar(
        select(Alert.id)
        .where(
            Alert.queue_id == breach.queue_id,
            Alert.rule == breach.rule,
            Alert.suppressed.is_(False),
            Alert.status.in_(("firing", "acknowledged")),
        )
        .limit(1)
    )
    alert = Alert(
        dedup_key=breach.dedup_key,
        queue_id=breach.queue_id,
        rule=breach.rule,
        kind=breach.kind.value,
        severity=breach.severity,
        status="firing",
        suppressed=open_alert is not None,
        message=breach.message,
        breach=breach.model_dump(mode="json"),
        subgroup_start=breach.subgroup_start,
        first_seen_at=now,
        last_seen_at=now,
        occurrences=1,
    )
    session.add(alert)
    await session.flush()
    if not alert.suppressed:
        for url in receivers:
            session.add(_delivery(alert.id, url, "firing", now))
    return alert


def _delivery(alert_id: int, url: str, event: str, now: datetime) -> Delivery:
    return Delivery(
        alert_id=alert_id, receiver=url, event=event, status="pending", attempts=0,
        next_attempt_at=now, created_at=now,
    )  # fmt: skip


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
    """Resolve the queue's alerts whose condition is over.

    SPC alerts: after ``after_subgroups`` consecutive subgroups charted without an upper
    signal on any chart (one quiet point inside a sustained shift is not recovery; that
    would flap). Below-target alerts: once the 24 h accuracy is back at the target on at
    least ``min_sample`` verdicts.
    """
    kinds: list[str] = []
    if snap.last_point is not None and snap.in_control_streak >= after_subgroups:
        kinds.append("spc")
    acc = snap.accuracy_24h
    if acc is not None and acc >= target and snap.n_24h >= min_sample:
        kinds.append("below_target")
    if not kinds:
        return []
    firing = (
        await session.scalars(
            select(Alert).where(
                Alert.queue_id == snap.queue_id,
                Alert.status.in_(("firing", "acknowledged")),
                Alert.kind.in_(kinds),
            )
        )
    ).all()
    lp = snap.last_point
    resolved = [
        a for a in firing
        if a.kind != "spc" or (lp is not None and a.subgroup_start is not None and a.subgroup_start < lp.start)
    ]  # fmt: skip
    for alert in resolved:
        alert.status = "resolved"
        alert.resolved_at = now
        if not alert.suppressed:
            for url in receivers:
                session.add(_delivery(alert.id, url, "resolved", now))
    return resolved


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


async def recent_alerts(session: AsyncSession, limit: int = 100) -> list[Alert]:
    q = select(Alert).order_by(Alert.id.desc()).limit(limit)
    return list((await session.scalars(q)).all())


async def acknowledge(session: AsyncSession, alert_id: int) -> Alert | None:
    alert = await session.get(Alert, alert_id)
    if alert is not None and alert.status == "firing":
        alert.status = "acknowledged"
    return alert


async def claim_due(
    session: AsyncSession, now: datetime, *, lease_s: float, limit: int = 50
) -> list[tuple[Delivery, Alert]]:
    """Due outbox rows, leased for ``lease_s`` (their next attempt moves past the lease, so
    another round or instance skips them while this one sends outside any transaction).
    A "resolved" row waits until the alert's "firing" row to the same receiver is done,
    so a receiver never hears "resolved" before "firing"."""
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
            ~((Delivery.event == "resolved") & firing_pending),
        )
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
    )
    rows = [(d, a) for d, a in (await session.execute(q)).all()]
    for d, _ in rows:
        d.next_attempt_at = now + timedelta(seconds=lease_s)
    return rows


async def record_attempt(
    session: AsyncSession,
    delivery_id: int,
    *,
    now: datetime,
    error: str | None,
    retry_at: datetime | None,
) -> Delivery | None:
    """Record one attempt: delivered (``error`` None), retry at ``retry_at``, or failed."""
    d = await session.get(Delivery, delivery_id)
    if d is None:
        return None
    d.attempts += 1
    d.last_error = error
    if error is None:
        d.status = "delivered"
        d.delivered_at = now
    elif retry_at is None:
        d.status = "failed"
    else:
        d.next_attempt_at = retry_at
    return d


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
    return await session.get(Alert, alert_id)
