"""deploy/alertmanager/alertmanager.yml: amtool accepts it, its routing tree sends each
team's alerts where the file says (amtool config routes test), warnings are inhibited by a
critical on the same queue, a maintenance interval mutes a team's route, and no secret is
written in it. Also: prometheus.yml sends its alerts to Alertmanager, and the local scripts
refuse bad settings. amtool comes with Debian's prometheus-alertmanager package; without it
these fail under CI=true and skip elsewhere."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.artefacts import DEPLOY, load_yaml, require_tool

AM_DIR = DEPLOY / "alertmanager"
CONFIG = AM_DIR / "alertmanager.yml"
LOCAL = DEPLOY / "local"


def _amtool() -> str:
    return require_tool("amtool", "prometheus-alertmanager")


def _config() -> dict[str, Any]:
    config: dict[str, Any] = load_yaml(CONFIG)
    return config


@pytest.mark.prometheus
def test_amtool_check_config() -> None:
    proc = subprocess.run(
        [_amtool(), "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.prometheus
@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ("team=trust-spam severity=critical", "trust-spam-pager,trust-spam-slack"),
        ("team=trust-spam severity=warning", "trust-spam-slack"),
        ("team=child-safety severity=warning", "child-safety-pager"),  # every severity pages
        ("team=child-safety severity=info", "child-safety-slack"),
        ("team=quality severity=critical", "quality-pager"),
        ("team=quality severity=warning", "quality-email"),
        (
            "service=qualitywatch team=trust-spam severity=warning queue=spam-en",
            "automation-webhook,trust-spam-slack",
        ),
        # the automation route matches every QualityWatch alert (continue): the rest still
        # reaches a person, by e-mail, not only the automation webhook
        ("service=qualitywatch team=quality severity=warning", "automation-webhook,quality-email"),
        (
            "service=qualitywatch alertname=QueueSPCBreachFiring severity=warning queue=q",
            "automation-webhook,quality-email",
        ),
    ],
)
def test_routing_tree_sends_each_alert_to_its_team(labels: str, receivers: str) -> None:
    proc = subprocess.run(
        [_amtool(), "config", "routes", "test", f"--config.file={CONFIG}", *labels.split()],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == receivers


def test_warnings_are_inhibited_by_a_critical_on_the_same_queue() -> None:
    rules = _config()["inhibit_rules"]
    assert any(
        'severity="critical"' in r["source_matchers"]
        and 'severity=~"warning|info"' in r["target_matchers"]
        and r["equal"] == ["queue"]
        for r in rules
    ), rules


def test_the_pushed_alert_holds_back_the_rule_that_says_the_same() -> None:
    rules = _config()["inhibit_rules"]
    (rule,) = [r for r in rules if r["target_matchers"] == ['alertname="QueueSPCBreachFiring"']]
    # every signal of the queue's incident, not only the rule that paged (qw_alerts_firing
    # has a series per signal)
    assert rule["equal"] == ["queue"]
    source = rule["source_matchers"][0]
    assert "QualityWatchSPCBreach" in source
    assert "QualityWatchBelowTarget" in source


def test_a_maintenance_interval_mutes_a_team_route() -> None:
    """Alertmanager does not pass a route's mute_time_intervals on to its child routes, and
    a matching child is the route that notifies: each child of a muted route carries the
    same mutes (or more), else the window mutes nothing (found by a new user's trial)."""
    config = _config()
    intervals = {i["name"] for i in config["time_intervals"]}
    muted = [r for r in config["route"]["routes"] if r.get("mute_time_intervals")]
    assert muted, "no route has a maintenance window"

    def children_keep(route: dict[str, Any], mutes: set[str]) -> None:
        for child in route.get("routes", []):
            own = set(child.get("mute_time_intervals", []))
            assert mutes <= own, f"child route {child} drops the mutes {mutes - own}"
            children_keep(child, own)

    for route in muted:
        assert set(route["mute_time_intervals"]) <= intervals
        assert any(m.startswith("team=") for m in route["matchers"])
        children_keep(route, set(route["mute_time_intervals"]))


def test_grouping_by_queue_and_site() -> None:
    assert {"queue", "site"} <= set(_config()["route"]["group_by"])


def test_receivers_cover_chat_paging_mail_and_webhooks() -> None:
    kinds = {k for r in _config()["receivers"] for k in r if k.endswith("_configs")}
    assert kinds >= {"slack_configs", "pagerduty_configs", "email_configs", "webhook_configs"}


def test_no_secret_is_written_in_the_file() -> None:
    """Each secret comes from a *_file under /etc/alertmanager/secrets/, never inline."""
    text = CONFIG.read_text(encoding="utf-8")
    config = _config()
    inline = ("api_url", "routing_key", "service_key", "auth_password", "api_key", "credentials")

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                assert key not in inline, f"{path}.{key} is inline: use {key}_file"
                if key.endswith("_file"):
                    assert str(value).startswith("/etc/alertmanager/secrets/"), value
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(config, "")
    assert not re.search(r"hooks\.slack\.com|xox[bp]-|[0-9a-f]{32}", text)
    assert text.count("PLACEHOLDER") >= 4


def test_prometheus_sends_its_alerts_to_alertmanager() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (am,) = config["alerting"]["alertmanagers"]
    assert am["static_configs"] == [{"targets": ["127.0.0.1:9093"]}]
    assert am.get("api_version", "v2") == "v2"


@pytest.mark.parametrize("name", ["prometheus.sh", "alertmanager.sh"])
def test_local_scripts_parse_and_refuse_a_bad_port(name: str, tmp_path: Path) -> None:
    script = LOCAL / name
    assert os.access(script, os.X_OK)
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    var = "QW_PROMETHEUS_PORT" if name == "prometheus.sh" else "QW_ALERTMANAGER_PORT"
    env = {**os.environ, var: "80", "QW_STATE_DIR": str(tmp_path)}
    proc = subprocess.run(
        ["bash", str(script), "status"], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert "invalid port 80" in proc.stderr
    env[var] = "41399"
    proc = subprocess.run(
        ["bash", str(script), "status"], env=env, capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stdout) == (3, f"stopped (state {tmp_path}/{name[:-3]})\n")


@pytest.mark.prometheus
def test_the_shipped_inhibitions_hold_in_a_real_alertmanager(tmp_path: Path) -> None:
    """The shipped file, in Debian's Alertmanager (deploy/local/alertmanager.sh): a critical
    holds back a warning of its queue only, and the pushed alert holds back the rule's, for
    every signal of its queue."""
    import httpx

    from tests.monitoring import running

    def alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
        return {"labels": {"alertname": name, "severity": severity, **labels}}

    with running("alertmanager", state=tmp_path, config=CONFIG) as url:
        sent = [
            alert("QualityWatchSPCBreach", "critical", queue="q1", rule="p_chart_ucl"),
            alert("QueueSPCBreachFiring", "warning", queue="q1", rule="p_chart_ucl"),
            alert("QueueSPCBreachFiring", "warning", queue="q2", rule="p_chart_ucl"),
            alert("QualityWatchSPCBreach", "warning", queue="q3", rule="ewma_ucl"),
            alert("QueueSPCBreachFiring", "warning", queue="q3", rule="p_chart_ucl"),
            alert("QualityWatchAlertsDown", "critical", instance="a:8002"),
            alert("ScorerConsumerLagHigh", "warning", group="qw-scorer"),
        ]
        assert httpx.post(f"{url}/api/v2/alerts", json=sent).status_code == 200
        held = httpx.get(f"{url}/api/v2/alerts").json()
    state = {
        (a["labels"]["alertname"], a["labels"].get("queue")): a["status"]["state"] for a in held
    }
    assert state == {
        ("QualityWatchSPCBreach", "q1"): "active",
        ("QueueSPCBreachFiring", "q1"): "suppressed",  # by the critical and by the pushed one
        ("QueueSPCBreachFiring", "q2"): "active",  # another queue
        ("QualityWatchSPCBreach", "q3"): "active",
        # another rule of the same queue's incident (it joined without a page)
        ("QueueSPCBreachFiring", "q3"): "suppressed",
        ("QualityWatchAlertsDown", None): "active",
        ("ScorerConsumerLagHigh", None): "active",  # no queue: no critical of "its" queue
    }


def test_every_pushed_alertname_has_a_runbook_section() -> None:
    from services.alerts.alertmanager import ALERTNAMES, FALLBACK_ALERTNAME
    from tests.deploy.artefacts import OPERATIONS_DOC

    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    for name in [*ALERTNAMES.values(), FALLBACK_ALERTNAME]:
        assert f'<a id="{name.lower()}"></a>' in text, name


@pytest.mark.prometheus
def test_the_demos_alertmanager_runs_the_shipped_tree_with_webhooks(tmp_path: Path) -> None:
    """``qwatch demo --alertmanager``: the shipped routes, inhibitions and intervals, every
    receiver a webhook to the demo's receiver under its own name; amtool accepts it and
    routes as the shipped file does."""
    from services.demo.monitoring import demo_config

    shipped = _config()
    config = demo_config("http://127.0.0.1:8099/alertmanager")
    assert config["inhibit_rules"] == shipped["inhibit_rules"]
    assert config["time_intervals"] == shipped["time_intervals"]
    assert [r.get("matchers") for r in config["route"]["routes"]] == [
        r.get("matchers") for r in shipped["route"]["routes"]
    ]
    assert {r["name"] for r in config["receivers"]} == {r["name"] for r in shipped["receivers"]}
    for r in config["receivers"]:
        assert r["webhook_configs"] == [
            {"url": f"http://127.0.0.1:8099/alertmanager/{r['name']}", "send_resolved": True}
        ]
        assert set(r) == {"name", "webhook_configs"}
    path = tmp_path / "alertmanager.yml"
    import yaml

    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    check = subprocess.run(
        [_amtool(), "check-config", str(path)], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    routed = subprocess.run(
        [_amtool(), "config", "routes", "test", f"--config.file={path}",
         "service=qualitywatch", "team=trust-spam", "severity=critical"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert routed.stdout.strip() == "automation-webhook,trust-spam-pager,trust-spam-slack"
