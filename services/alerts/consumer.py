"""Consume snapshots, breaches, subgroups and baseline changes: metrics, alert records, the
webhook outbox, the chart points and the baselines' audit trail.

One poll is one database transaction; offsets are committed after it, so a crash replays
the poll, and the dedup key (breaches) and the revision (subgroups) make the replay harmless.
A subgroup only feeds the chart API: a revision never creates or re-fires an alert (alerts
come from breaches alone).

Replicas share the topics' partitions (one consumer group) and one database. The poll's
transaction locks the queues it touches, so polls of two replicas on one queue (after a
rebalance, or a queue's snapshots and breaches read by different replicas) run one after
the other. A queue's snapshot gauges are exported by the replica reading its snapshot
partition (dropped by one that loses it); ``qw_alerts_firing`` by every replica, from the
database, refreshed even while no message comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.health import health, sites_below_target
from services.alerts.metrics import Metrics, QueueFamily
from services.alerts.settings import AlertsSettings
from services.alerts.view import HealthView
from shared import codec, deadletter
from shared.events import (
    OTHER_SITES,
    QUEUE_ID_RE,
    BaselineEvent,
    Breach,
    BreachKind,
    QualitySnapshot,
    SubgroupPoint,
)
from shared.kafka import make_consumer

log = logging.getLogger(__name__)

Message = QualitySnapshot | Breach | SubgroupPoint | BaselineEvent
_MAX_REVISION = 2**31 - 1  # the revision column is a 32-bit integer on every backend
FIRING_REFRESH_S = 5.0  # without polls, qw_alerts_firing is re-read this often (other replicas)


def decode(model: type[Message], value: bytes | None) -> Message:
    """One consumed value as its model; ``ValueError`` (or ``ValidationError``, a subclass)
    when it is not one, including values the database could not hold: a bad one must never
    fail the poll's transaction, which would stop the consumer on a replay loop."""
    if value is None:
        raise ValueError("no value (a tombstone)")
    msg = model.model_validate(codec.loads(value))
    # what becomes a key of a row: the queue id, a time, a 32-bit number
    if isinstance(msg, SubgroupPoint | BaselineEvent):
        if not QUEUE_ID_RE.fullmatch(msg.queue_id):
            raise ValueError(f"queue_id {msg.queue_id!r} does not match QUEUE_ID_PATTERN")
        (name, when), (counter, number) = (
            (("start", msg.start), ("revision", msg.revision)) if isinstance(msg, SubgroupPoint)
            else (("at", msg.at), ("epoch", msg.epoch))
        )  # fmt: skip
        if when.utcoffset() is None:
            raise ValueError(f"{name} must carry a time zone")
        if number > _MAX_REVISION:
            raise ValueError(f"{counter} {number} exceeds {_MAX_REVISION}")
    elif isinstance(msg, Breach) and msg.subgroup_start and msg.subgroup_start.utcoffset() is None:
        raise ValueError("subgroup_start must carry a time zone")
    return msg


def export_snapshot(
    m: Metrics, snap: QualitySnapshot, settings: AlertsSettings, firing: list[str]
) -> None:
    q = snap.queue_id
    for window, acc, n in (
        ("1h", snap.accuracy_1h, snap.n_1h),
        ("24h", snap.accuracy_24h, snap.n_24h),
        ("7d", snap.accuracy_7d, snap.n_7d),
    ):
        m.sample_size.labels(q, window).set(n)
        m.accuracy.labels(q, window).set(float("nan") if acc is None else acc)
    # a baseline reset ends the baseline and the charts against it: their series go
    # (absent while learning), not left at the old baseline's values
    _set_or_remove(m.baseline_error_rate, q, snap.baseline_p)
    m.baseline_learning.labels(q).set(1 if snap.baseline_state == "phase1" else 0)
    m.baseline_resets.labels(q).set(snap.baseline_epoch)
    lp = snap.last_point
    _set_or_remove(m.pchart_p, q, None if lp is None else lp.p)
    _set_or_remove(m.pchart_ucl, q, None if lp is None else lp.ucl)
    _set_or_remove(m.pchart_lcl, q, None if lp is None else lp.lcl)
    charted = snap.ewma is not None and snap.ewma_ucl is not None
    _set_or_remove(m.ewma, q, snap.ewma if charted else None)
    _set_or_remove(m.ewma_ucl, q, snap.ewma_ucl if charted else None)
    m.pending_verdicts.labels(q).set(snap.pending_verdicts)
    m.dropped_verdicts.labels(q).set(snap.dropped_verdicts)
    m.late_verdicts.labels(q).set(snap.late_verdicts_total)
    m.failed_batches.labels(q).set(snap.failed_batches)
    m.rejected_items.labels(q).set(snap.rejected_items)
    m.decisions_total.labels(q).set(snap.decisions_total)
    m.verdicts_total.labels(q).set(snap.verdicts_total)
    m.last_snapshot.labels(q).set(datetime.now(UTC).timestamp())
    h = health(
        snap, target=settings.quality.accuracy_target,
        confidence=settings.quality.target_confidence, min_sample=settings.min_sample, age_s=0.0,
        stale_after_s=settings.stale_after_s, firing=firing,
        site_target=settings.quality.site_target,
    )  # fmt: skip
    for side, chart in (("upper", snap.cusum_upper), ("lower", snap.cusum_lower)):
        for family, value in (
            (m.cusum_statistic, None if chart is None else chart.statistic),
            (m.cusum_h, None if chart is None else chart.h),
            (m.cusum_arl0_days, None if chart is None else chart.arl0_days),
        ):
            if value is None:
                family.remove(q, side)
            else:
                family.labels(q, side).set(value)
    upper = None if snap.n_24h < settings.min_sample else h.accuracy_24h_rule_upper
    _set_or_remove(m.rule_upper, q, upper)
    m.health_score.labels(q).set(float("nan") if h.score is None else h.score)
    m.sites.labels(q).set(sum(1 for s in h.sites if s.site != OTHER_SITES))
    # named sites only, on at least QW_MIN_SAMPLE verdicts: what makes the band red
    m.sites_below_target.labels(q).set(len(sites_below_target(h.sites, settings.min_sample)))


def _set_or_remove(gauge: QueueFamily, queue: str, value: float | None) -> None:
    if value is not None:
        gauge.labels(queue).set(value)
    else:
        gauge.remove(queue)  # (nothing when it was never set)


class AlertsConsumer:
    def __init__(
        self,
        settings: AlertsSettings,
        sessions: async_sessionmaker[AsyncSession],
        metrics: Metrics,
        view: HealthView | None = None,
    ) -> None:
        self.s = settings
        self._sessions = sessions
        self._m = metrics
        self._view = view  # told what each poll committed (services/alerts/view.py)
        t = settings.kafka.topics
        self._models: dict[str, type[Message]] = {
            t.snapshots: QualitySnapshot,
            t.breaches: Breach,
            t.subgroups: SubgroupPoint,
            t.baselines: BaselineEvent,
        }
        for topic in self._models:  # the series exist at 0, so rate() sees the first one
            metrics.events_malformed.labels(topic)
        self._deadletters = t.deadletter  # counted, not stored (qw_deadletters)
        for stage, kind in (("ingest", k) for k in deadletter.KINDS[:4]):
            metrics.deadletters.labels(stage, kind)
        metrics.deadletters.labels("scorer", "refused")
        self._firing_labels: set[tuple[str, str]] = set()
        self._firing_at = 0.0  # time.monotonic() of the last qw_alerts_firing export
        # snapshot partitions this replica reads (None: not in a group, e.g. handle() alone),
        # and the partition each exported queue's snapshots came from
        self._owned: set[int] | None = None
        self._exported: dict[str, int] = {}

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        consumer = make_consumer(self.s.kafka, self.s.consumer_group)
        consumer.subscribe([*self._models, self._deadletters], listener=_Rebalance(self))
        await consumer.start()
        if ready is not None:
            ready.set()
        try:
            while not stop.is_set():
                polled = await consumer.getmany(timeout_ms=200, max_records=2000)
                if polled:
                    await self.handle([r for recs in polled.values() for r in recs])
                    try:
                        await consumer.commit()
                    except CommitFailedError as exc:  # a rebalance; the replay is deduplicated
                        log.warning("offset commit failed (%s); the poll will be replayed", exc)
                elif time.monotonic() - self._firing_at > FIRING_REFRESH_S:
                    try:
                        await self.refresh_firing()
                    except Exception as exc:  # advisory, like the lag: a poll still fails hard
                        log.warning("refreshing qw_alerts_firing failed: %s", exc)
                        self._firing_at = time.monotonic()
        finally:
            await consumer.stop()

    def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Drop the gauges of queues whose snapshot partition another replica reads now:
        left here they would go stale (and page QueueDataStall); the new owner exports them
        with the queue's next snapshot."""
        topic = self.s.kafka.topics.snapshots
        self._owned = {tp.partition for tp in assigned if tp.topic == topic}
        for queue, partition in list(self._exported.items()):
            if partition not in self._owned:
                self._m.forget_queue(queue)
                del self._exported[queue]

    async def refresh_firing(self) -> None:
        """Export ``qw_alerts_firing`` from the database: another replica may have resolved
        or raised an alert since this one's last poll."""
        async with self._sessions() as session:
            firing = _by_queue(await db.firing_alerts(session))
            incidents = await db.open_incidents_by_severity(session)
        self._export_firing(firing, incidents)

    def _export_firing(self, firing: dict[str, list[str]], incidents: dict[str, int]) -> None:
        for severity, n in incidents.items():
            self._m.incidents_open.labels(severity).set(n)
        now_firing = {(q, rule) for q, rules in firing.items() for rule in rules}
        for q, rule in now_firing | self._firing_labels:
            self._m.alerts_firing.labels(q, rule).set(1 if (q, rule) in now_firing else 0)
        self._firing_labels = now_firing
        self._firing_at = time.monotonic()

    async def handle(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        latest: dict[str, QualitySnapshot] = {}
        partition: dict[str, int] = {}  # of each queue's latest snapshot
        breaches: list[Breach] = []
        points: list[SubgroupPoint] = []
        changes: list[BaselineEvent] = []
        for rec in records:
            self._m.events_consumed.labels(rec.topic).inc()
            if rec.topic == self._deadletters:
                self._m.deadletters.labels(*deadletter.classify(rec.value)).inc()
                continue
            try:
                msg = decode(self._models[rec.topic], rec.value)
            except (ValueError, ValidationError) as exc:
                # Produced by our own scorer: a bad one is a bug, not user input. Log, count
                # and go on.
                self._m.events_malformed.labels(rec.topic).inc()
                log.error(
                    "undecodable %s message at partition %s offset %s: %s",
                    rec.topic, rec.partition, rec.offset, exc,
                )  # fmt: skip
                continue
            if isinstance(msg, QualitySnapshot):
                latest[msg.queue_id] = msg
                partition[msg.queue_id] = rec.partition
            elif isinstance(msg, Breach):
                breaches.append(msg)
            elif isinstance(msg, BaselineEvent):
                changes.append(msg)
            else:
                points.append(msg)
        now = datetime.now(UTC)
        receivers = self.s.webhook_urls
        async with self._sessions() as session, session.begin():
            await db.lock_queues(session, [
                *latest, *(b.queue_id for b in breaches), *(p.queue_id for p in points),
                *(c.queue_id for c in changes),
            ])  # fmt: skip
            await db.upsert_subgroups(session, points, now)
            # baseline changes first: a chart breach raised before a reset (read in this
            # poll or a later one: the topics are read independently) opens no alert
            resets = [
                c for c in await db.record_baseline_changes(session, changes, now)
                if c.event == "reset"
            ]  # fmt: skip
            for snap in latest.values():
                await db.upsert_snapshot(session, snap, now)
                await db.resolve_recovered(
                    session, snap, receivers=receivers, now=now,
                    after_subgroups=self.s.resolve_after_subgroups,
                    target=self.s.quality.accuracy_target, min_sample=self.s.min_sample,
                )  # fmt: skip
            for br in breaches:
                self._m.breaches.labels(br.queue_id, br.rule, br.severity).inc()
                if br.kind is BreachKind.SPC and await _before_reset(session, br):
                    log.info(
                        "breach %s predates the queue's baseline reset: no alert", br.dedup_key
                    )
                    continue
                new = await db.record_breach(session, br, receivers=receivers, now=now)
                if new is not None:
                    log.warning(
                        "ALERT %s%s",
                        br.message,
                        f" (in open incident {new.incident_id}: no new page)"
                        if new.suppressed
                        else f" (incident {new.incident_id})",
                    )
            for reset in resets:  # the chart alerts raised against the old baseline end
                ended = await db.resolve_for_reset(session, reset, receivers=receivers, now=now)
                log.warning(
                    "baseline of %s reset by %s (epoch %d): %s; %d chart alert(s) resolved",
                    reset.queue_id, reset.actor, reset.epoch, reset.reason, len(ended),
                )  # fmt: skip
            firing = _by_queue(await db.firing_alerts(session))
            incidents = await db.open_incidents_by_severity(session)
        if self._view is not None:  # committed: the health API serves it from now on
            self._view.apply(((snap, now) for snap in latest.values()), firing)
        self._export_firing(firing, incidents)
        for snap in latest.values():
            q = snap.queue_id
            if self._owned is not None and partition[q] not in self._owned:
                continue  # revoked while this poll ran: the new owner exports it
            export_snapshot(self._m, snap, self.s, firing.get(q, []))
            self._exported[q] = partition[q]


async def _before_reset(session: AsyncSession, breach: Breach) -> bool:
    """Was the chart breach detected at or before the queue's last baseline reset (both
    are the queue's watermark, which only moves forward)? Then its baseline is gone."""
    at = await db.last_reset_at(session, breach.queue_id)
    return at is not None and breach.detected_at <= at


def _by_queue(alerts: list[db.Alert]) -> dict[str, list[str]]:
    firing: dict[str, list[str]] = {}
    for alert in alerts:
        firing.setdefault(alert.queue_id, []).append(alert.rule)
    return firing


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: AlertsConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass  # nothing to save: a poll's offsets are committed after its transaction

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._consumer.partitions_assigned(assigned)


class LagExporter:
    """Export consumer-group lag (end offset minus committed offset) per group and topic."""

    def __init__(self, settings: AlertsSettings, metrics: Metrics) -> None:
        self.s = settings
        self._m = metrics

    async def run(self, stop: asyncio.Event, interval_s: float = 10.0) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.s.kafka.bootstrap)
        probe = AIOKafkaConsumer(bootstrap_servers=self.s.kafka.bootstrap)
        await admin.start()
        await probe.start()
        try:
            while not stop.is_set():
                try:
                    await self.export_once(admin, probe)
                except Exception as exc:  # lag is advisory; never kill the service over it
                    log.warning("lag export failed: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_s)
        finally:
            await probe.stop()
            await admin.close()

    async def export_once(self, admin: AIOKafkaAdminClient, probe: AIOKafkaConsumer) -> None:
        prefix = self.s.kafka.topic_prefix
        for group in self.s.lag_groups:
            committed = await admin.list_consumer_group_offsets(prefix + group)
            tps = [tp for tp in committed if isinstance(tp, TopicPartition)]
            if not tps:
                continue
            ends = await probe.end_offsets(tps)
            lag: dict[str, int] = defaultdict(int)
            for tp in tps:
                off = committed[tp].offset
                if off >= 0:
                    lag[tp.topic] += max(0, ends[tp] - off)
            for topic, value in lag.items():
                self._m.consumer_lag.labels(group, topic).set(value)
