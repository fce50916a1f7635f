"""Every Prometheus metric QualityWatch's alerts service exports, declared once.

Labels are bounded: ``queue`` (hundreds, and only admitted ones: ingest takes no other),
``window`` (3), ``rule`` (a handful), ``receiver`` and ``alertmanager`` (configured URLs'
index), ``topic``/``group`` (a few). Never moderator, auditor or content ids: those would
explode the series count. Never a site either: a queue has up to
``QW_SCORER_SITES_PER_QUEUE`` of them (32), which would multiply its series; per-site figures
are in the health API and ``qw.subgroups.v1``, and here two counts a queue
(``qw_queue_sites``, ``qw_queue_sites_below_target``). A queue has at most
``SERIES_PER_QUEUE_MAX`` series (tests/unit/test_alerts_metrics.py holds every metric to it).

The families labelled by queue are ``QueueFamily``: each keeps every series' exposition line
rendered when its value changes, so a scrape joins lines instead of formatting some 20,000
samples (prometheus_client's ``generate_latest``: a scrape of 1,000 queues took p50 1,082 ms,
now 35 ms, against a bound of 250 ms; ``bench/metrics.py``, docs/operations.md). ``Metrics.exposition`` is the
scrape's body; the registry still holds every metric, for ``get_sample_value`` and others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

SERIES_PER_QUEUE_MAX = 50
_number: Callable[[float], str] = floatToGoString  # the exposition's number: 1.0, NaN, +Inf

WINDOWS = ("1h", "24h", "7d")  # the accuracy windows of a snapshot
CUSUM_SIDES = ("upper", "lower")  # the queue's live CUSUMs (side label)
# qw_webhook_deliveries_total{outcome}: what each attempt did to its delivery.
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed")
# qw_webhook_attempts_total{result}: what the receiver answered (or why there was no answer).
WEBHOOK_RESULTS = (
    "2xx", "3xx", "4xx", "408", "410", "429", "5xx", "other",
    "timeout", "connect_error", "refused_address",
)  # fmt: skip


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass(slots=True)
class _Series:
    value: float
    line: str  # its exposition line(s), rendered when the value changed
    created: float


class QueueFamily(Collector):
    """A gauge or counter whose first label is ``queue``, with the ``labels(...).set()``,
    ``.inc()`` and ``remove(...)`` of prometheus_client's, and each series' exposition line
    kept rendered (``render``). Used from one event loop, like the rest of the service."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        kind: Literal["gauge", "counter"] = "gauge",
    ) -> None:
        self.name, self.documentation, self.kind = name, documentation, kind
        self.labelnames = tuple(labelnames)
        self._series: dict[tuple[str, ...], _Series] = {}
        self._prefix: dict[tuple[str, ...], str] = {}
        sample = f"{name}_total" if kind == "counter" else name
        self._head = f"# HELP {sample} {documentation}\n# TYPE {sample} {kind}\n"
        if kind == "counter":
            self._created_head = (
                f"# HELP {name}_created {documentation}\n# TYPE {name}_created gauge\n"
            )

    def labels(self, *values: str) -> _Child:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        key = tuple(str(v) for v in values)
        if key not in self._series:
            self._put(key, 0.0, time.time())
        return _Child(self, key)

    def remove(self, *values: str) -> None:
        key = tuple(str(v) for v in values)
        self._series.pop(key, None)
        self._prefix.pop(key, None)

    def _labels_text(self, key: tuple[str, ...]) -> str:
        pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(self.labelnames, key, strict=True))
        return "{" + pairs + "}"

    def _put(self, key: tuple[str, ...], value: float, created: float) -> None:
        labels = self._prefix.get(key)
        if labels is None:
            labels = self._prefix[key] = self._labels_text(key)
        if self.kind == "counter":
            line = f"{self.name}_total{labels} {_number(value)}\n"
        else:
            line = f"{self.name}{labels} {_number(value)}\n"
        self._series[key] = _Series(value, line, created)

    def set(self, key: tuple[str, ...], value: float) -> None:
        old = self._series.get(key)
        if old is None or old.value != value or value != value:  # (NaN: always)
            self._put(key, float(value), old.created if old else time.time())

    def inc(self, key: tuple[str, ...], amount: float) -> None:
        old = self._series[key]
        self._put(key, old.value + amount, old.created)

    def render(self) -> str:
        """This family's exposition text (Prometheus text format 0.0.4)."""
        body = self._head + "".join(s.line for s in self._series.values())
        if self.kind == "counter":
            created = "".join(
                f"{self.name}_created{self._prefix[k]} {_number(s.created)}\n"
                for k, s in self._series.items()
            )
            body += self._created_head + created
        return body

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, self.kind)
        for key, s in self._series.items():
            labels = dict(zip(self.labelnames, key, strict=True))
            if self.kind == "counter":
                metric.add_sample(f"{self.name}_total", labels, s.value)
                metric.add_sample(f"{self.name}_created", labels, s.created)
            else:
                metric.add_sample(self.name, labels, s.value)
        yield metric


@dataclass(frozen=True, slots=True)
class _Child:
    family: QueueFamily
    key: tuple[str, ...]

    def set(self, value: float) -> None:
        self.family.set(self.key, value)

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.family.inc(self.key, amount)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    accuracy: QueueFamily
    sample_size: QueueFamily
    baseline_error_rate: QueueFamily
    baseline_learning: QueueFamily
    baseline_resets: QueueFamily
    pchart_p: QueueFamily
    pchart_ucl: QueueFamily
    pchart_lcl: QueueFamily
    ewma: QueueFamily
    ewma_ucl: QueueFamily
    cusum_statistic: QueueFamily
    cusum_h: QueueFamily
    cusum_arl0_days: QueueFamily
    rule_upper: QueueFamily
    pending_verdicts: QueueFamily
    dropped_verdicts: QueueFamily
    late_verdicts: QueueFamily
    failed_batches: QueueFamily
    rejected_items: QueueFamily
    decisions_total: QueueFamily
    verdicts_total: QueueFamily
    health_score: QueueFamily
    sites: QueueFamily
    sites_below_target: QueueFamily
    last_snapshot: QueueFamily
    breaches: QueueFamily
    alerts_firing: QueueFamily
    incidents_open: Gauge
    webhook_deliveries: Counter
    webhook_attempts: Counter
    webhook_endpoint_disabled: Gauge
    events_consumed: Counter
    events_malformed: Counter
    deadletters: Counter
    consumer_lag: Gauge
    alertmanager_pushes: Counter
    plain: CollectorRegistry = field(default_factory=CollectorRegistry)  # all but QueueFamily

    def exposition(self) -> bytes:
        """The body of ``GET /metrics``: the per-queue families' kept lines, and the other
        metrics as prometheus_client renders them."""
        families = [v for v in vars(self).values() if isinstance(v, QueueFamily)]
        text = "".join(f.render() for f in families)
        return generate_latest(self.plain) + text.encode()

    def forget_queue(self, queue: str) -> None:
        """Remove the queue's snapshot series (another replica exports them now)."""
        per_queue = (
            self.baseline_error_rate, self.baseline_learning, self.baseline_resets,
            self.pchart_p, self.pchart_ucl, self.pchart_lcl,
            self.ewma, self.ewma_ucl, self.rule_upper, self.pending_verdicts,
            self.dropped_verdicts,
            self.late_verdicts, self.failed_batches, self.rejected_items, self.decisions_total,
            self.verdicts_total,
            self.health_score, self.sites, self.sites_below_target, self.last_snapshot,
        )  # fmt: skip
        for gauge in per_queue:
            gauge.remove(queue)
        for window in WINDOWS:
            self.accuracy.remove(queue, window)
            self.sample_size.remove(queue, window)
        for side in CUSUM_SIDES:
            for family in (self.cusum_statistic, self.cusum_h, self.cusum_arl0_days):
                family.remove(queue, side)

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        r = registry if registry is not None else CollectorRegistry()
        q = ["queue"]
        m = cls(
            registry=r,
            # Share of RANDOM-sample QA verdicts judged correct, by decision time, per window.
            accuracy=_q(r, "qw_queue_accuracy", "QA accuracy (random sample)", [*q, "window"]),
            # Number of random-sample verdicts behind qw_queue_accuracy.
            sample_size=_q(r, "qw_queue_sample_size", "verdicts in the window", [*q, "window"]),
            # Frozen Phase I / configured baseline error rate (p-bar); absent during Phase I.
            baseline_error_rate=_q(r, "qw_queue_baseline_error_rate", "baseline p-bar", q),
            # 1 while the queue learns its baseline (Phase I: its first, or after a reset),
            # else 0; the snapshot's phase1_subgroups of phase1_length say how far it is.
            baseline_learning=_q(
                r, "qw_queue_baseline_learning", "1 while the baseline is learnt (Phase I)", q
            ),
            # Baseline resets the scorer applied to the queue (its baseline epoch): each one
            # started a new Phase I (who and why: GET /v1/queues/{id}/baselines).
            baseline_resets=_q(
                r, "qw_queue_baseline_resets", "baseline resets applied (new Phase I)", q
            ),
            # Last charted subgroup: error proportion and its p-chart limits.
            pchart_p=_q(r, "qw_queue_pchart_error_rate", "last subgroup error rate", q),
            pchart_ucl=_q(r, "qw_queue_pchart_ucl", "last subgroup upper control limit", q),
            pchart_lcl=_q(r, "qw_queue_pchart_lcl", "last subgroup lower control limit", q),
            # EWMA of the subgroup error rate and its exact-variance upper limit.
            ewma=_q(r, "qw_queue_ewma_error_rate", "EWMA of the error rate", q),
            ewma_ucl=_q(r, "qw_queue_ewma_ucl", "EWMA upper control limit", q),
            # The live per-verdict Bernoulli CUSUMs (side: upper, errors up; lower, errors
            # down): the statistic, the decision interval it signals at, and the design's
            # in-control ARL in days (its share of the false-alarm budget). Absent while the
            # side has no chart (learning, or no measured rate yet).
            cusum_statistic=_q(
                r,
                "qw_queue_cusum_statistic",
                "live CUSUM statistic (signals at h)",
                [*q, "side"],
            ),
            cusum_h=_q(r, "qw_queue_cusum_h", "live CUSUM decision interval h", [*q, "side"]),
            cusum_arl0_days=_q(
                r,
                "qw_queue_cusum_arl0_days",
                "live CUSUM designed in-control ARL, days",
                [*q, "side"],
            ),
            # The exact upper bound of the 24 h accuracy at the below-target rule's
            # confidence (the snapshot's target_rule): under the target, the rule holds.
            rule_upper=_q(
                r,
                "qw_queue_accuracy_24h_rule_upper",
                "upper bound of the 24h accuracy the below-target rule compares",
                q,
            ),
            # Verdicts waiting for their decision to arrive (join backlog).
            pending_verdicts=_q(r, "qw_queue_pending_verdicts", "verdicts awaiting decision", q),
            # Verdicts dropped because their decision never arrived (TTL or per-queue cap).
            dropped_verdicts=_q(
                r, "qw_queue_dropped_verdicts", "verdicts without decision dropped", q
            ),
            # Verdicts counted after their subgroup had closed (the snapshot's
            # late_verdicts_total); each one republishes its subgroup as a new revision.
            late_verdicts=_q(
                r, "qw_queue_late_verdicts", "verdicts counted after their subgroup closed", q
            ),
            # Batches of the queue the scorer dead-lettered whole because scoring them raised
            # (the snapshot's failed_batches): each is a bug or a poison input to look at.
            failed_batches=_q(
                r,
                "qw_queue_failed_batches",
                "event batches the scorer could not score (dead-lettered whole)",
                q,
            ),
            # Events of the queue the scorer refused one by one (the snapshot's rejected_items;
            # each is on the dead-letter topic with its reason): a producer past ingest.
            rejected_items=_q(
                r,
                "qw_queue_rejected_items",
                "events the scorer refused one by one (dead-lettered)",
                q,
            ),
            # Cumulative unique events the scorer has counted for the queue.
            decisions_total=_q(r, "qw_queue_decisions", "unique decisions scored", q),
            verdicts_total=_q(r, "qw_queue_verdicts", "unique verdicts joined", q),
            # 0-100 health score (docs/architecture.md, "Health score"); NaN when there is insufficient data.
            health_score=_q(r, "qw_queue_health_score", "health score 0-100", q),
            # Sites the queue names (decisions or verdicts in the last 7 days; those past
            # QW_SCORER_SITES_PER_QUEUE, summed as "(other)", are not counted).
            sites=_q(r, "qw_queue_sites", "sites with data in 7 days", q),
            # Sites (or "(other)") whose 24h accuracy is below their target with confidence
            # (Wilson upper bound under QW_SITE_TARGETS, else the queue's target).
            sites_below_target=_q(
                r,
                "qw_queue_sites_below_target",
                "sites whose 24h accuracy is below their target with confidence",
                q,
            ),
            # Unix time the last snapshot for the queue arrived (wall clock): data-stall signal.
            last_snapshot=_q(r, "qw_queue_last_snapshot_timestamp_seconds", "last snapshot", q),
            # Breach events received, by rule (SPC rule or target).
            breaches=_q(
                r, "qw_breaches", "breach events received", [*q, "rule", "severity"], "counter"
            ),
            # 1 while an alert for queue+rule is firing, 0 once resolved or absent.
            alerts_firing=_q(r, "qw_alerts_firing", "alerts currently firing", [*q, "rule"]),
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
            # Records on the dead-letter topic, by the stage that refused them (ingest,
            # scorer) and kind (shared/deadletter.py KINDS): every refusal, including the
            # scorer's of a batch no queue can be named for; `qwatch deadletters list` has
            # the reasons. Counted as this replica reads them (its share of the topic).
            deadletters=Counter(
                "qw_deadletters", "dead-lettered messages", ["stage", "kind"], registry=r
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
        for metric in vars(m).values():  # the plain ones, for the scrape's generate_latest
            if isinstance(metric, Gauge | Counter):
                m.plain.register(metric)
        return m


def _q(
    registry: CollectorRegistry,
    name: str,
    documentation: str,
    labelnames: Sequence[str],
    kind: Literal["gauge", "counter"] = "gauge",
) -> QueueFamily:
    family = QueueFamily(name, documentation, labelnames, kind)
    registry.register(family)
    return family
