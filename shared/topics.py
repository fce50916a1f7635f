"""Kafka topic names, their shapes, and partition keys: one place for the whole system.

Data flow::

    upstream producers ──► qw.decisions.raw.v1 ─┐
                       ──► qw.verdicts.raw.v1  ─┤  ingest validator (aiokafka, batched)
    POST /v1/events (ingest API, validated) ────┤
                                                ├─► qw.events.v1      (EventBatch per queue)
                                                └─► qw.deadletter.v1  (reason + original bytes)
    alerts API (POST .../baseline:reset) ──────────► qw.events.v1      (control records)
    qw.events.v1 ──► scorer (Faust) ──► qw.snapshots.v1, qw.subgroups.v1, qw.breaches.v1,
                                        qw.baselines.v1
    qw.snapshots.v1, qw.subgroups.v1, qw.breaches.v1, qw.baselines.v1
        ──► alerts (Prometheus, webhooks, API)
    qw.queues.v1 (admitted queues, compacted) ──► every ingest process (shared/admission.py)

Every topic that carries queue data is keyed by ``queue_id``: a queue's decisions, verdicts
and state live on one partition, so one scorer worker owns a queue and the join of a verdict
to its decision is local.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.partitioner import murmur2


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int | None = None  # None: the broker's default
    compact: bool = False
    max_message_bytes: int | None = None
    doc: str = ""


_DAY_MS = 24 * 3600 * 1000
_BIG = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names, optionally prefixed (``QW_TOPIC_PREFIX``) so several environments or test
    runs can share one cluster."""

    prefix: str = ""
    partitions: int = 4

    def _n(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @property
    def decisions_raw(self) -> str:
        return self._n("qw.decisions.raw.v1")

    @property
    def verdicts_raw(self) -> str:
        return self._n("qw.verdicts.raw.v1")

    @property
    def events(self) -> str:
        return self._n("qw.events.v1")

    @property
    def deadletter(self) -> str:
        return self._n("qw.deadletter.v1")

    @property
    def snapshots(self) -> str:
        return self._n("qw.snapshots.v1")

    @property
    def breaches(self) -> str:
        return self._n("qw.breaches.v1")

    @property
    def subgroups(self) -> str:
        return self._n("qw.subgroups.v1")

    @property
    def queues(self) -> str:
        return self._n("qw.queues.v1")

    @property
    def baselines(self) -> str:
        return self._n("qw.baselines.v1")

    def specs(self) -> list[TopicSpec]:
        p = self.partitions
        return [
            TopicSpec(self.decisions_raw, p, 7 * _DAY_MS, doc="raw decisions, one JSON each"),
            TopicSpec(self.verdicts_raw, p, 7 * _DAY_MS, doc="raw QA verdicts, one JSON each"),
            TopicSpec(
                self.events, p, 14 * _DAY_MS, max_message_bytes=_BIG, doc="EventBatch per queue"
            ),
            # a rejected message travels base64-encoded with its reason: a third larger
            TopicSpec(
                self.deadletter, 1, 30 * _DAY_MS, max_message_bytes=_BIG, doc="invalid input"
            ),
            TopicSpec(self.snapshots, p, compact=True, doc="latest QualitySnapshot per queue"),
            TopicSpec(self.breaches, p, 30 * _DAY_MS, doc="Breach events"),
            TopicSpec(self.subgroups, p, compact=True, doc="SubgroupPoint, latest per queue@start"),
            # small (one record per queue) and read whole by every ingest process: one partition
            TopicSpec(self.queues, 1, compact=True, doc="admitted queues (tombstone: removed)"),
            # every baseline change of every queue, kept: one record per queue, epoch and event
            TopicSpec(self.baselines, p, compact=True, doc="BaselineEvent per queue@epoch:event"),
        ]


def queue_key(queue_id: str) -> bytes:
    """The partition key of everything that belongs to a queue."""
    return queue_id.encode()


_PARTITION_OF: dict[tuple[bytes, int], int] = {}
_PARTITION_OF_MAX = 65_536


def partition_of(key: bytes, partitions: int) -> int:
    """The partition a keyed record goes to when its producer does not choose one: the
    Java client's default partitioner (murmur2 of the key, made positive, modulo the
    partition count), which aiokafka's and so every writer of the internal topics here
    uses. (librdkafka's default, ``consistent_random``, hashes differently: a producer
    built on it that writes to an internal topic must set ``partitioner=murmur2_random``.)"""
    found = _PARTITION_OF.get((key, partitions))
    if found is None:
        if len(_PARTITION_OF) >= _PARTITION_OF_MAX:
            _PARTITION_OF.clear()
        found = (murmur2(key) & 0x7FFFFFFF) % partitions
        _PARTITION_OF[key, partitions] = found
    return found


def subgroup_key(queue_id: str, start_epoch: int) -> bytes:
    """The compaction key of one subgroup on ``qw.subgroups.v1``: ``queue@start`` with the
    start in epoch seconds (queue ids cannot contain ``@``, see ``QUEUE_ID_PATTERN``)."""
    return f"{queue_id}@{start_epoch}".encode()


def baseline_key(queue_id: str, epoch: int, event: str) -> bytes:
    """The compaction key of one baseline change on ``qw.baselines.v1``:
    ``queue@epoch:event`` (``spam-en@2:reset``), so compaction keeps every change."""
    return f"{queue_id}@{epoch}:{event}".encode()
