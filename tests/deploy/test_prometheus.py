"""The Prometheus configuration, rules and their unit tests.

promtool (Debian's ``prometheus`` package) checks the configuration and rules and runs the
rule unit tests; without it these fail under CI=true and skip elsewhere. The rest needs
only the files: each alert is labelled, annotated, has a runbook section and unit tests
that see it fire and stay quiet.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.artefacts import (
    DASHBOARDS,
    DEPLOY,
    OPERATIONS_DOC,
    RULE_FILES,
    RULE_TEST_FILES,
    dashboard_exprs,
    load_yaml,
    require_tool,
    rules,
)

PROM_DIR = DEPLOY / "prometheus"
CONFIGS = [PROM_DIR / "prometheus.yml", PROM_DIR / "prometheus.compose.yml"]
SEVERITIES = {"info", "warning", "critical"}
BRIEF_ALERTS = {
    "QueueAccuracyBelowTarget",
    "QueueSPCBreachFiring",
    "QueueDataStall",
    "ScorerConsumerLagHigh",
    "WebhookDeliveryFailing",
}


def _alerts() -> list[dict[str, Any]]:
    return [r for f in RULE_FILES for r in rules(f) if "alert" in r]


def _anchors(markdown: str) -> set[str]:
    """Explicit <a id|name="..."> anchors and GitHub heading slugs."""
    found = set(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", markdown))
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def _promtool() -> str:
    return require_tool("promtool", "prometheus")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=PROM_DIR, capture_output=True, text=True, timeout=120, check=False
    )


# ---------------------------------------------------------------- rules, statically


def test_brief_alerts_exist() -> None:
    names = [a["alert"] for a in _alerts()]
    assert len(names) == len(set(names)), "alert names must be unique"
    assert set(names) >= BRIEF_ALERTS


@pytest.mark.parametrize("alert", _alerts(), ids=lambda a: a["alert"])
def test_alert_is_labelled_and_annotated(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in SEVERITIES
    ann = alert["annotations"]
    assert ann["summary"].strip()
    assert ann["description"].strip()
    assert ann["runbook_url"] == f"docs/operations.md#{alert['alert'].lower()}"


def test_accuracy_alert_waits_before_firing() -> None:
    (acc,) = [a for a in _alerts() if a["alert"] == "QueueAccuracyBelowTarget"]
    assert acc.get("for"), "a 24h accuracy dip must persist before it pages anyone"


@pytest.mark.parametrize("alert", _alerts(), ids=lambda a: a["alert"])
def test_alert_has_a_runbook_section(alert: dict[str, Any]) -> None:
    assert OPERATIONS_DOC.is_file(), "docs/operations.md is missing"
    anchor = alert["annotations"]["runbook_url"].partition("#")[2]
    assert anchor in _anchors(OPERATIONS_DOC.read_text(encoding="utf-8"))


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TEST_FILES:
        for case in load_yaml(path)["tests"]:
            for t in case.get("alert_rule_test", []):
                (firing if t.get("exp_alerts") else quiet).add(t["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert not names - firing, f"no unit test sees these fire: {sorted(names - firing)}"
    assert not names - quiet, f"no unit test sees these stay quiet: {sorted(names - quiet)}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_configs_scrape_the_alerts_service(path: Any) -> None:
    config = load_yaml(path)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "qualitywatch-alerts"]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    expected = "alerts:8002" if path.name == "prometheus.compose.yml" else "127.0.0.1:8002"
    assert targets == [expected]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert config["rule_files"] == ["rules/*.rules.yml"]


def test_alerts_down_rule_watches_the_scrape_job() -> None:
    (down,) = [a for a in _alerts() if a["alert"] == "QualityWatchAlertsDown"]
    assert 'job="qualitywatch-alerts"' in down["expr"]


# ---------------------------------------------------------------- promtool


@pytest.mark.prometheus
def test_promtool_check_config() -> None:
    proc = _run(_promtool(), "check", "config", *(p.name for p in CONFIGS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.prometheus
def test_promtool_check_rules() -> None:
    proc = _run(_promtool(), "check", "rules", *(str(p) for p in RULE_FILES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.prometheus
def test_promtool_test_rules() -> None:
    assert RULE_TEST_FILES, "no promtool unit tests in deploy/prometheus/tests"
    proc = _run(_promtool(), "test", "rules", *(str(p) for p in RULE_TEST_FILES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


# Grafana's variables, replaced by what Grafana would send to Prometheus.
_GRAFANA_VALUES = {"$__rate_interval": "1m", "$__interval": "15s", "$queue": "q"}


@pytest.mark.prometheus
def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """Prometheus' own parser reads each panel's query (as a recording rule for promtool),
    so a panel never shows a parse error instead of its data."""
    exprs = [(where, expr) for path in DASHBOARDS for where, expr in dashboard_exprs(path)]
    rules_ = []
    for i, (where, expr) in enumerate(exprs):
        for var, value in _GRAFANA_VALUES.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"{where}: a Grafana variable this test does not know: {expr}"
        rules_.append({"record": f"dashboard:query:{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules_}]}))
    proc = _run(_promtool(), "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(rules_)} rules found" in proc.stdout, proc.stdout


@pytest.mark.prometheus
def test_check_script_passes() -> None:
    _promtool()
    proc = _run("bash", str(PROM_DIR / "check.sh"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
