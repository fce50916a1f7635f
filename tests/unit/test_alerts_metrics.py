"""The alerts service's metrics: a queue's series stay under the bound, whatever fires, and
the scrape's own rendering says what prometheus_client would."""

from __future__ import annotations

import math
import re
from typing import Literal

from prometheus_client import CollectorRegistry, generate_latest

from services.alerts.consumer import export_snapshot
from services.alerts.metrics import SERIES_PER_QUEUE_MAX, Metrics, QueueFamily
from services.alerts.settings import AlertsSettings
from services.scorer.core import target_rule
from services.scorer.settings import ScorerSettings
from shared.events import OTHER_SITES, CusumInfo, SiteWindows
from tests.alerts_cases import make_snapshot

# every rule the scorer raises (services/scorer/core.py)
# every rule the scorer raises, at the one severity it raises it with (services/scorer/core.py)
RULES = {
    "p_chart_ucl": "warning", "ewma_ucl": "warning", "cusum_upper": "warning",
    "cusum_site_upper": "warning", "cusum_lower": "warning",
    "accuracy_24h_below_target": "critical",
}  # fmt: skip


# the most sites a queue names (QW_SCORER_SITES_PER_QUEUE's default), and the rest
SITES = {
    f"site-{i:02d}": SiteWindows(
        decisions_24h=400, n_24h=100, errors_24h=30, decisions_7d=2800, n_7d=700, errors_7d=90
    )
    for i in range(32)
}
SITES[OTHER_SITES] = SITES["site-00"]


def _cusum(side: Literal["upper", "lower"], statistic: float) -> CusumInfo:
    return CusumInfo(
        side=side, p0=0.05, p1=0.1 if side == "upper" else 0.0125, statistic=statistic,
        h=12.5 if side == "upper" else 9.0, verdicts=10, errors=1, signals=0,
        arl0_verdicts=8.3e5, arl0_days=833.3 if side == "upper" else 2500.0,
        rate_per_day=1000.0, design={},
    )  # fmt: skip


CHARTS = {"cusum_upper": _cusum("upper", 3.5), "cusum_lower": _cusum("lower", 0.0)}


def test_the_live_cusums_and_the_rules_bound_are_exported() -> None:
    """Publish what is computed: each side's statistic, h and designed ARL0 in days, and the
    bound the below-target rule compares; a side with no chart has no series (not a stale
    one), and neither has the bound with too few verdicts to say."""
    m = Metrics.create(CollectorRegistry())
    _busiest_queue(m, "q")
    r = m.registry
    assert r.get_sample_value("qw_queue_cusum_statistic", {"queue": "q", "side": "upper"}) == 3.5
    assert r.get_sample_value("qw_queue_cusum_h", {"queue": "q", "side": "lower"}) == 9.0
    assert r.get_sample_value("qw_queue_cusum_arl0_days", {"queue": "q", "side": "upper"}) == (
        833.3
    )
    upper = r.get_sample_value("qw_queue_accuracy_24h_rule_upper", {"queue": "q"})
    assert upper is not None
    assert 0.9 < upper < 1.0  # 90 of 100 correct: the bound at 99.9992% is well above
    learning = make_snapshot("q", 4, []).model_copy(update={"n_24h": 10})
    export_snapshot(m, learning, AlertsSettings(), [])
    text = m.exposition().decode()
    assert 'qw_queue_cusum_statistic{queue="q"' not in text
    assert 'qw_queue_accuracy_24h_rule_upper{queue="q"}' not in text
    export_snapshot(m, make_snapshot("q", 5, []).model_copy(update=CHARTS), AlertsSettings(), [])
    m.forget_queue("q")  # another replica exports the queue's snapshot series now
    text = m.exposition().decode()
    assert 'qw_queue_cusum_h{queue="q"' not in text
    assert 'qw_queue_accuracy_24h_rule_upper{queue="q"}' not in text


def _busiest_queue(m: Metrics, queue: str) -> None:
    """Everything a queue can export: a full snapshot with every site it can name, every
    rule breached (at its severity) and firing."""
    snap = make_snapshot(queue, 3, ["p_chart_ucl"]).model_copy(
        update={
            "sites": SITES, "cusum_upper": _cusum("upper", 3.5), "cusum_lower": _cusum("lower", 0.0),
            "target_rule": target_rule(ScorerSettings()),
        }
    )  # fmt: skip
    export_snapshot(m, snap, AlertsSettings(), list(RULES))
    for rule, severity in RULES.items():
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
    # its breach counters (and _created) and firing, one each per rule
    assert _series(m.exposition(), "b") == 3 * len(RULES)
    # the sites are two series, whatever their number: never one per site
    assert 'qw_queue_sites{queue="a"} 32.0' in m.exposition().decode()
    assert 'qw_queue_sites_below_target{queue="a"} 32.0' in m.exposition().decode()  # named
    assert "site=" not in m.exposition().decode()


def test_queue_family_counts_and_reads_like_prometheus_client() -> None:
    registry = CollectorRegistry()
    family = QueueFamily("qw_x", "x", ["queue", "rule"], "counter")
    registry.register(family)
    family.labels('q"1', "r").inc()
    family.labels('q"1', "r").inc(2)
    assert registry.get_sample_value("qw_x_total", {"queue": 'q"1', "rule": "r"}) == 3
    assert 'qw_x_total{queue="q\\"1",rule="r"} 3.0' in family.render()
