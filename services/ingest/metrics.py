"""Every Prometheus metric the ingest service exports (``GET /metrics`` on its port).

No label carries a queue id: the events these count include those of queues nobody admitted,
and a label per such queue is exactly the series explosion admission prevents.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

SOURCES = ("http", "raw")  # the HTTP API, the raw topics
# why an event was refused: not a valid event, or its queue is not admitted
REFUSALS = ("invalid", "queue_not_admitted")


@dataclass(frozen=True)
class IngestMetrics:
    registry: CollectorRegistry
    accepted: Counter
    refused: Counter
    admitted_queues: Gauge
    verdicts_paused: Gauge
    decisions_held: Gauge
    verdict_pauses: Counter
    decision_holds: Counter

    def count(self, source: str, accepted: int, invalid: int = 0, not_admitted: int = 0) -> None:
        if accepted:
            self.accepted.labels(source).inc(accepted)
        if invalid:
            self.refused.labels(source, "invalid").inc(invalid)
        if not_admitted:
            self.refused.labels(source, "queue_not_admitted").inc(not_admitted)

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> IngestMetrics:
        r = registry if registry is not None else CollectorRegistry()
        m = cls(
            registry=r,
            # Events validated and produced to the events topic, by source.
            accepted=Counter(
                "qw_ingest_accepted_events", "events accepted", ["source"], registry=r
            ),
            # Events refused (to the dead-letter topic; over HTTP also named in the 422), by
            # source and reason (REFUSALS).
            refused=Counter(
                "qw_ingest_refused_events", "events refused", ["source", "reason"], registry=r
            ),
            # Queues admitted, by how: static (ids of QW_INGEST_QUEUES_ALLOW and the file;
            # globs not counted), runtime (PUT /v1/queues/{id}), open (taken on first sight).
            admitted_queues=Gauge(
                "qw_ingest_admitted_queues", "queues admitted, by how", ["how"], registry=r
            ),
            # Raw verdict partitions paused now, with verdicts in hand that ran ahead of a
            # decisions backlog (services/ingest/pipeline.py, RawAlignment): non-zero in a
            # catch-up or a backfill, 0 when live.
            verdicts_paused=Gauge(
                "qw_ingest_verdict_partitions_paused",
                "raw verdict partitions paused until the decisions catch up",
                registry=r,
            ),
            # Raw decision partitions paused now, with decisions in hand that ran ahead of a
            # verdicts backlog (the same class): non-zero in a catch-up or a backfill read
            # from a backlog, 0 when live.
            decisions_held=Gauge(
                "qw_ingest_decision_partitions_held",
                "raw decision partitions held back until the verdicts catch up",
                registry=r,
            ),
            # ... and how many times each was done (a partition each time): the gauges are
            # back to 0 seconds after a backlog is read, these say that it happened
            verdict_pauses=Counter(
                "qw_ingest_verdict_partition_pauses",
                "raw verdict partitions paused because they ran ahead of the decisions",
                registry=r,
            ),
            decision_holds=Counter(
                "qw_ingest_decision_partition_holds",
                "raw decision partitions held back because they ran ahead of the verdicts",
                registry=r,
            ),
        )
        for source in SOURCES:  # every series exists at 0, so rate() sees the first event
            m.accepted.labels(source)
            for reason in REFUSALS:
                m.refused.labels(source, reason)
        return m

    def set_admitted(self, counts: dict[str, int]) -> None:
        for how, n in counts.items():
            self.admitted_queues.labels(how).set(n)
