"""The alerts service's metrics: a queue's series stay under the bound, whatever fires, and
the scrape's own rendering says what prometheus_client would."""

from __future__ import annotations

import math
import re

from prometheus_client import CollectorRegistry, generate_latest

from services.alerts.consumer import export_snapshot
from services.alerts.metrics import SERIES_PER_QUEUE_MAX, Metrics, QueueFamily
from services.alerts.settings import AlertsSettings
from tests.alerts_cases import make_snapshot

# every rule the scorer raises (services/scorer/core.py)
RULES = ("p_chart_ucl", "ewma_ucl", "cusum_upper", "cusum_lower", "accuracy_24h_below_target")


def _busiest_queue(m: Metrics, queue: str) -> None:
    """Everything a queue can export: a full snapshot, every rule breached at both
    severities and firing."""
    export_snapshot(m, make_snapshot(queue, 3, ["p_chart_ucl"]), AlertsSettings(), list(RULES))
    for rule in RULES:
        for severity in ("warning", "critical"):
            m.breaches.labels(queue, rule, severity).inc()
        m.alerts_firing.labels(queue, rule).set(1)


def _series(body: bytes, queue: str) -> int:
    return sum(
        1
        for line in body.decode().splitlines()
        if not line.startswith("#") and re.search(f'queue="{queue}"', line)
    )


def test_a_queue_stays_under_the_series_bound() -> None:
    m = Metrics.create(CollectorRegistry())
    _busiest_queue(m, "q")
    n = _series(m.exposition(), "q")
    assert 20 < n <= SERIES_PER_QUEUE_MAX, f"queue q exports {n} series"


def test_the_exposition_is_what_prometheus_client_renders() -> None:
    m = Metrics.create(CollectorRegistry())
    for q in ("a", "b"):
        _busiest_queue(m, q)
    m.webhook_deliveries.labels("0", "delivered").inc()
    m.accuracy.labels("a", "1h").set(math.nan)
    m.forget_queue("b")

    def lines(body: bytes) -> list[str]:
        # _created carries the creation time, which differs by microseconds
        return sorted(
            line.rsplit(" ", 1)[0] if "_created{" in line else line
            for line in body.decode().splitlines()
        )

    assert lines(m.exposition()) == lines(generate_latest(m.registry))
    assert 'qw_queue_accuracy{queue="a",window="1h"} NaN' in m.exposition().decode()
    assert _series(m.exposition(), "b") == 20 + 5  # its breach counters (and _created), firing


def test_queue_family_counts_and_reads_like_prometheus_client() -> None:
    registry = CollectorRegistry()
    family = QueueFamily("qw_x", "x", ["queue", "rule"], "counter")
    registry.register(family)
    family.labels('q"1', "r").inc()
    family.labels('q"1', "r").inc(2)
    assert registry.get_sample_value("qw_x_total", {"queue": 'q"1', "rule": "r"}) == 3
    assert 'qw_x_total{queue="q\\"1",rule="r"} 3.0' in family.render()
