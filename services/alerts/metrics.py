"""Every Prometheus metric QualityWatch's alerts service exports, declared once.

Labels are bounded: ``queue`` (hundreds), ``window`` (3), ``rule`` (a handful),
``receiver`` and ``alertmanager`` (configured URLs' index), ``topic``/``group`` (a few).
Never moderator, auditor or content ids: those would explode the series count.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

WINDOWS = ("1h", "24h", "7d")  # the accuracy windows of a snapshot
# qw_webhook_deliveries_total{outcome}: what each attempt did to its delivery.
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed")
# qw_webhook_attempts_total{result}: what the receiver answered (or why there was no answer).
WEBHOOK_RESULTS = (
    "2xx", "3xx", "4xx", "408", "410", "429", "5xx", "other",
    "timeout", "connect_error", "refused_address",
)  # fmt: skip


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    accuracy: Gauge
    sample_size: Gauge
    baseline_error_rate: Gauge
    pchart_p: Gauge
    pchart_ucl: Gauge
    pchart_lcl: Gauge
    ewma: Gauge
    ewma_ucl: Gauge
    pending_verdicts: Gauge
    dropped_verdicts: Gauge
    late_verdicts: Gauge
    failed_batches: Gauge
    rejected_items: Gauge
    decisions_total: Gauge
    verdicts_total: Gauge
    health_score: Gauge
    last_snapshot: Gauge
    breaches: Counter
    alerts_firing: Gauge
    incidents_open: Gauge
    webhook_deliveries: Counter
    webhook_attempts: Counter
    webhook_endpoint_disabled: Gauge
    events_consumed: Counter
    events_malformed: Counter
    consumer_lag: Gauge
    alertmanager_pushes: Counter

    def forget_queue(self, queue: str) -> None:
        """Remove the queue's snapshot series (another replica exports them now)."""
        per_queue = (
            self.baseline_error_rate, self.pchart_p, self.pchart_ucl, self.pchart_lcl,
            self.ewma, self.ewma_ucl, self.pending_verdicts, self.dropped_verdicts,
            self.late_verdicts, self.failed_batches, self.rejected_items, self.decisions_total,
            self.verdicts_total,
            self.health_score, self.last_snapshot,
        )  # fmt: skip
        for gauge in per_queue:
            gauge.remove(queue)
        for window in WINDOWS:
            self.accuracy.remove(queue, window)
            self.sample_size.remove(queue, window)

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        r = registry if registry is not None else CollectorRegistry()
        q = ["queue"]
        return cls(
            registry=r,
            # Share of RANDOM-sample QA verdicts judged correct, by decision time, per window.
            accuracy=Gauge(
                "qw_queue_accuracy", "QA accuracy (random sample)", [*q, "window"], registry=r
            ),
            # Number of random-sample verdicts behind qw_queue_accuracy.
            sample_size=Gauge(
                "qw_queue_sample_size", "verdicts in the window", [*q, "window"], registry=r
            ),
            # Frozen Phase I / configured baseline error rate (p-bar); absent during Phase I.
            baseline_error_rate=Gauge(
                "qw_queue_baseline_error_rate", "baseline p-bar", q, registry=r
            ),
            # Last charted subgroup: error proportion and its p-chart limits.
            pchart_p=Gauge("qw_queue_pchart_error_rate", "last subgroup error rate", q, registry=r),
            pchart_ucl=Gauge(
                "qw_queue_pchart_ucl", "last subgroup upper control limit", q, registry=r
            ),
            pchart_lcl=Gauge(
                "qw_queue_pchart_lcl", "last subgroup lower control limit", q, registry=r
            ),
            # EWMA of the subgroup error rate and its exact-variance upper limit.
            ewma=Gauge("qw_queue_ewma_error_rate", "EWMA of the error rate", q, registry=r),
            ewma_ucl=Gauge("qw_queue_ewma_ucl", "EWMA upper control limit", q, registry=r),
            # Verdicts waiting for their decision to arrive (join backlog).
            pending_verdicts=Gauge(
                "qw_queue_pending_verdicts", "verdicts awaiting decision", q, registry=r
            ),
            # Verdicts dropped because their decision never arrived (TTL or per-queue cap).
            dropped_verdicts=Gauge(
                "qw_queue_dropped_verdicts", "verdicts without decision dropped", q, registry=r
            ),
            # Verdicts counted after their subgroup had closed (the snapshot's
            # late_verdicts_total); each one republishes its subgroup as a new revision.
            late_verdicts=Gauge(
                "qw_queue_late_verdicts",
                "verdicts counted after their subgroup closed",
                q,
                registry=r,
            ),
            # Batches of the queue the scorer dead-lettered whole because scoring them raised
            # (the snapshot's failed_batches): each is a bug or a poison input to look at.
            failed_batches=Gauge(
                "qw_queue_failed_batches",
                "event batches the scorer could not score (dead-lettered whole)",
                q,
                registry=r,
            ),
            # Events of the queue the scorer refused one by one (the snapshot's rejected_items;
            # each is on the dead-letter topic with its reason): a producer past ingest.
            rejected_items=Gauge(
                "qw_queue_rejected_items",
                "events the scorer refused one by one (dead-lettered)",
                q,
                registry=r,
            ),
            # Cumulative unique events the scorer has counted for the queue.
            decisions_total=Gauge("qw_queue_decisions", "unique decisions scored", q, registry=r),
            verdicts_total=Gauge("qw_queue_verdicts", "unique verdicts joined", q, registry=r),
            # 0-100 health score (docs/architecture.md, "Health score"); NaN when there is insufficient data.
            health_score=Gauge("qw_queue_health_score", "health score 0-100", q, registry=r),
            # Unix time the last snapshot for the queue arrived (wall clock): data-stall signal.
            last_snapshot=Gauge(
                "qw_queue_last_snapshot_timestamp_seconds", "last snapshot", q, registry=r
            ),
            # Breach events received, by rule (SPC rule or target).
            breaches=Counter(
                "qw_breaches", "breach events received", [*q, "rule", "severity"], registry=r
            ),
            # 1 while an alert for queue+rule is firing, 0 once resolved or absent.
            alerts_firing=Gauge(
                "qw_alerts_firing", "alerts currently firing", [*q, "rule"], registry=r
            ),
            # Open incidents (firing or acknowledged) by severity: one per queue in trouble.
            incidents_open=Gauge(
                "qw_incidents_open", "open incidents by severity", ["severity"], registry=r
            ),
            # Webhook delivery attempts by receiver index and outcome (WEBHOOK_OUTCOMES): failed is
            # final (schedule used up, or a 3xx/4xx other than 408/429 answered).
            webhook_deliveries=Counter(
                "qw_webhook_deliveries",
                "webhook delivery attempts",
                ["receiver", "outcome"],
                registry=r,
            ),
            # Webhook attempts by receiver index and result (WEBHOOK_RESULTS): the HTTP status
            # class, 408/410/429, or timeout, connect_error, refused_address (the URL's host
            # resolved to an address QW_ALERTS_WEBHOOK_ALLOW_PRIVATE_NETWORKS does not allow).
            webhook_attempts=Counter(
                "qw_webhook_attempts",
                "webhook delivery attempts by receiver answer",
                ["receiver", "result"],
                registry=r,
            ),
            # 1 while the receiver is disabled (it answered 410 Gone; a restart enables it).
            webhook_endpoint_disabled=Gauge(
                "qw_webhook_endpoint_disabled",
                "webhook receiver disabled after 410 Gone",
                ["receiver"],
                registry=r,
            ),
            # Messages the alerts service consumed, by topic.
            events_consumed=Counter(
                "qw_events_consumed", "messages consumed", ["topic"], registry=r
            ),
            # Messages the alerts service could not decode or validate, by topic (logged and
            # skipped: the scorer produces them, so any is a bug to look into).
            events_malformed=Counter(
                "qw_events_malformed", "messages not decodable or valid", ["topic"], registry=r
            ),
            # Consumer lag (end offset minus committed offset) summed over partitions.
            consumer_lag=Gauge(
                "qw_consumer_lag_messages", "consumer group lag", ["group", "topic"], registry=r
            ),
            # Pushes to Alertmanager by its index in QW_ALERTS_ALERTMANAGER_URLS and outcome
            # (ok, or error: refused, timed out or unreachable; retried, never blocking).
            alertmanager_pushes=Counter(
                "qw_alertmanager_pushes",
                "pushes of the alert set to Alertmanager",
                ["alertmanager", "outcome"],
                registry=r,
            ),
        )
