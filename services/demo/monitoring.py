"""``qwatch demo --alertmanager``: the demo with the real Prometheus and Alertmanager.

Prometheus (``deploy/local/prometheus.sh``, the shipped ``prometheus.yml`` and rules) scrapes
the demo's alerts service and sends its rules' alerts to Alertmanager
(``deploy/local/alertmanager.sh``); the alerts service pushes its incidents there too. The
Alertmanager runs the **shipped routing tree** (``deploy/alertmanager/alertmanager.yml``:
teams, severities, inhibitions, maintenance intervals), with every receiver (Slack,
PagerDuty, e-mail, webhook) replaced by a webhook to the demo's own receiver at
``/alertmanager/<receiver>``, so the demo shows which of the shipped receivers each alert
would reach, and shorter grouping waits for the compressed time.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from shared.settings import REPO_ROOT

LOCAL = REPO_ROOT / "deploy" / "local"
SHIPPED = REPO_ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
ALERTMANAGER_PORT = 9093  # the shipped prometheus.yml sends its rules' alerts here
PROMETHEUS_PORT = 9090
# the demo's queues (services/simulator/model.py: <area>-<market>) to the shipped teams
TEAMS = "spam-*=trust-spam,scam-*=trust-spam,child_safety-*=child-safety"


def demo_config(receiver_url: str, shipped: Path = SHIPPED) -> dict[str, Any]:
    """The shipped configuration, each receiver a webhook to ``receiver_url/<name>``, and
    the root route's waits short (seconds, not minutes: the demo's hours are seconds)."""
    config: dict[str, Any] = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    config.pop("global", None)  # SMTP and chat settings for receivers that are gone
    config["receivers"] = [
        {
            "name": r["name"],
            "webhook_configs": [{"url": f"{receiver_url}/{r['name']}", "send_resolved": True}],
        }
        for r in config["receivers"]
    ]
    config["route"].update(group_wait="2s", group_interval="5s", repeat_interval="1h")

    def short(route: dict[str, Any]) -> None:
        for child in route.get("routes", []):
            for key, value in (("group_wait", "2s"), ("group_interval", "5s")):
                if key in child:
                    child[key] = value
            short(child)

    short(config["route"])
    return config


class Stack:
    """Prometheus and Alertmanager, started with their project scripts under the demo's
    run directory (their data goes with it), stopped at the end."""

    def __init__(self, run_dir: Path, receiver_url: str) -> None:
        self.run_dir = run_dir
        self.config = run_dir / "alertmanager.yml"
        self.config.write_text(
            yaml.safe_dump(demo_config(receiver_url), sort_keys=False), encoding="utf-8"
        )
        self.env = {
            **os.environ,
            "QW_STATE_DIR": str(run_dir),
            "QW_ALERTMANAGER_CONFIG": str(self.config),
            "QW_ALERTMANAGER_PORT": str(ALERTMANAGER_PORT),
            "QW_PROMETHEUS_PORT": str(PROMETHEUS_PORT),
        }

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{ALERTMANAGER_PORT}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{PROMETHEUS_PORT}"

    def service_env(self) -> dict[str, str]:
        """What the alerts service needs to push to this Alertmanager."""
        return {
            "QW_ALERTS_ALERTMANAGER_URLS": f'["{self.alertmanager_url}"]',
            "QW_ALERTS_ALERTMANAGER_TEAMS": TEAMS,
            "QW_ALERTS_ALERTMANAGER_RESEND_S": "30",
        }

    def _script(self, name: str, command: str) -> None:
        subprocess.run(
            ["bash", str(LOCAL / name), command], env=self.env, check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=180,
        )  # fmt: skip

    def start(self) -> None:
        """Alertmanager, then Prometheus (which sends to it); raises CalledProcessError with
        the script's message when one cannot start (a port taken, a package missing)."""
        self._script("alertmanager.sh", "start")
        self._script("prometheus.sh", "start")

    def stop(self) -> None:
        for name in ("prometheus.sh", "alertmanager.sh"):
            # best effort at the end of the demo
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                self._script(name, "stop")
