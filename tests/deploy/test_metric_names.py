"""Dashboards and alerting rules name only series the alerts service exports.

A panel or rule that names a series nobody exports shows "No data" or never fires, silently:
the commonest way monitoring rots. Names come from a fresh registry built by
``Metrics.create()``; counters count as ``<name>_total`` (and ``_created``), never bare.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.artefacts import (
    DASHBOARDS,
    PROMETHEUS_SYNTHETIC,
    RULE_FILES,
    dashboard_exprs,
    exported_families,
    exported_series_names,
    promql_metric_names,
    rules,
)

EXPORTED = exported_series_names()


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('qw_queue_accuracy{window="24h"} < 0.90', {"qw_queue_accuracy"}),
        (
            'sum by (receiver, outcome) (rate(qw_webhook_deliveries_total{outcome="failed"}[$__rate_interval])) > 0',
            {"qw_webhook_deliveries_total"},
        ),
        (
            "time() - qw_queue_last_snapshot_timestamp_seconds > 900",
            {"qw_queue_last_snapshot_timestamp_seconds"},
        ),
        (
            "a and on (job, instance, queue) b offset 1h unless ignoring(window) c or vector(0)",
            {"a", "b", "c"},
        ),
        ('label_replace(up, "dst", "$1", "src", "(.*)")', {"up"}),
        ("sum(rate(x[5m])) without (le) / 1e3", {"x"}),
        ('recorded:series:rate5m{queue="$queue"} * 100', {"recorded:series:rate5m"}),
    ],
)
def test_promql_metric_names_parser(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


def test_exported_names_include_counter_suffixes() -> None:
    assert "qw_breaches_total" in EXPORTED
    assert "qw_breaches" not in EXPORTED  # PromQL must say _total
    assert {"qw_queue_accuracy", "qw_alerts_firing", "qw_consumer_lag_messages"} <= EXPORTED


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_use_only_exported_metrics(path: Path) -> None:
    exprs = dashboard_exprs(path)
    assert len(exprs) >= 10, "expected the dashboard's queries; found almost none"
    unknown = {
        where: sorted(promql_metric_names(expr) - EXPORTED)
        for where, expr in exprs
        if promql_metric_names(expr) - EXPORTED
    }
    assert not unknown, (
        f"queries name series that services/alerts/metrics.py does not export: {unknown}"
    )
    used = set().union(*(promql_metric_names(e) for _, e in exprs))
    assert used, "no metric names found in any query"


def test_every_exported_metric_is_charted_or_alerted_on() -> None:
    """The other way round: a series a service exports that no panel and no rule reads is
    one nobody looks at; when a metric is added, so is its panel (or a reason here)."""
    used: set[str] = set()
    for path in DASHBOARDS:
        for _, expr in dashboard_exprs(path):
            used |= promql_metric_names(expr)
    for path in RULE_FILES:
        for rule in rules(path):
            used |= promql_metric_names(rule["expr"])
    unread = sorted(
        name
        for name in exported_families()
        if not any(name + suffix in used for suffix in ("", "_total", "_bucket", "_count"))
    )
    assert not unread, f"exported but on no dashboard panel and in no rule: {unread}"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_expressions_use_only_exported_or_recorded_metrics(path: Path) -> None:
    all_rules = [r for f in RULE_FILES for r in rules(f)]
    recorded = {r["record"] for r in all_rules if "record" in r}
    allowed = EXPORTED | recorded | PROMETHEUS_SYNTHETIC
    file_rules = list(rules(path))
    assert any("alert" in r for r in file_rules), f"{path.name}: no alerting rules"
    unknown = {
        r.get("alert") or r.get("record"): sorted(promql_metric_names(r["expr"]) - allowed)
        for r in file_rules
        if promql_metric_names(r["expr"]) - allowed
    }
    assert not unknown, f"rules name series nobody exports or records: {unknown}"
