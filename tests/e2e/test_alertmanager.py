"""Drift -> QualityWatch -> Prometheus and Alertmanager -> a webhook receiver, all real.

The simulator drifts three queues; ingest, scorer and alerts run as processes on the shared
broker (as in test_pipeline.py). The alerts service pushes its own alerts to Alertmanager;
Prometheus (Debian's package, the shipped prometheus.yml and rules, templated for the test's
ports and time-scaled) scrapes the service and sends the rules' alerts to the same
Alertmanager, which routes to an HTTP receiver on loopback. Both servers are started by
deploy/local/prometheus.sh and alertmanager.sh on free ports and stopped afterwards.

- the service's own alert and the shipped rule's alert (QueueSPCBreachFiring) for the first
  queue arrive, with the labels a routing tree needs (routed by the `team` label);
- a silence created through Alertmanager's API before the drift holds back every
  notification for the second queue, whose alerts Alertmanager holds as suppressed;
- a maintenance time interval covering now mutes the route of the third queue's team (its
  rule alert, which has no team label, still arrives by the default route).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from services.demo.orchestrator import Services, wait_http
from services.simulator.model import Drift, SimConfig, queue_profiles
from services.simulator.run import play
from shared.runtime import http_server
from shared.settings import KafkaSettings
from tests.deploy.artefacts import DEPLOY
from tests.monitoring import free_port, log_tail, need, running

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.prometheus]

SHIPPED_PROMETHEUS = DEPLOY / "prometheus"

# The test's Alertmanager: teams route to their own webhook path; the "migration" team's
# route is in a maintenance window that covers every minute of every day.
AM_CONFIG = """
route:
  receiver: default
  group_by: [alertname, queue]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['team="trust-spam"']
      receiver: trust-spam
    - matchers: ['team="migration"']
      receiver: migration
      mute_time_intervals: [always]
time_intervals:
  - name: always
    time_intervals:
      - times:
          - start_time: "00:00"
            end_time: "24:00"
receivers:
  - name: default
    webhook_configs: [{url: "http://127.0.0.1:PORT/default", send_resolved: true}]
  - name: trust-spam
    webhook_configs: [{url: "http://127.0.0.1:PORT/trust-spam", send_resolved: true}]
  - name: migration
    webhook_configs: [{url: "http://127.0.0.1:PORT/migration", send_resolved: true}]
"""


class Receiver:
    """Records every Alertmanager webhook notification: (path, alert) per alert."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path}")
        async def hook(path: str, request: Request) -> dict[str, str]:
            body = await request.json()
            for alert in body["alerts"]:
                self.got.append((path, alert))
            return {"status": "ok"}

        return app

    def alerts(self, queue: str, alertname: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        return [
            (path, a) for path, a in self.got
            if a["labels"].get("queue") == queue
            and (alertname is None or a["labels"]["alertname"] == alertname)
        ]  # fmt: skip


def prometheus_config(folder: Path, *, alerts: int, am: int, prom: int) -> Path:
    """The shipped prometheus.yml and rules, for the test's ports, scraping and evaluating
    every second, and each rule's `for` cut to 2 s (the rules' expressions, labels and
    annotations are the shipped ones; promtool's unit tests check the real durations)."""
    text = (SHIPPED_PROMETHEUS / "prometheus.yml").read_text()
    for old, new in (("127.0.0.1:8002", alerts), ("127.0.0.1:9093", am), ("127.0.0.1:9090", prom)):
        assert old in text, f"prometheus.yml no longer names {old}"
        text = text.replace(old, f"127.0.0.1:{new}")
    text = re.sub(r"(scrape|evaluation)_interval: 15s", r"\1_interval: 1s", text)
    (folder / "prometheus.yml").write_text(text)
    shutil.copytree(SHIPPED_PROMETHEUS / "rules", folder / "rules")
    for rules in (folder / "rules").glob("*.yml"):
        rules.write_text(re.sub(r"(?m)^(\s+for:) \S+$", r"\1 2s", rules.read_text()))
    return folder / "prometheus.yml"


async def test_drift_reaches_the_team_through_alertmanager_silences_and_maintenance_hold(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    need("prometheus")
    need("alertmanager")
    t0 = time.monotonic()
    ports = {n: free_port() for n in ("ingest", "alerts", "receiver", "am", "prom")}
    inbox = Receiver()
    receiver = http_server(inbox.app(), "127.0.0.1", ports["receiver"])
    receiver_task = asyncio.create_task(receiver.serve())

    cfg = SimConfig(seed=11, queues=3, decisions_per_hour=1500, random_qa_rate=0.15)
    notified, silenced, maintained = (p.queue_id for p in queue_profiles(cfg))
    drift_at = 12 * 3600
    cfg = dataclasses.replace(
        cfg, drifts=tuple(Drift(q, drift_at, -0.15) for q in (notified, silenced, maintained))
    )

    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(AM_CONFIG.replace("PORT", str(ports["receiver"])))
    prom_config = prometheus_config(
        tmp_path, alerts=ports["alerts"], am=ports["am"], prom=ports["prom"]
    )
    env = {
        **kafka_settings.as_env(),
        "QW_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'qw.db'}",
        "QW_INGEST_PORT": str(ports["ingest"]),
        "QW_ALERTS_PORT": str(ports["alerts"]),
        "QW_ALERTS_ALERTMANAGER_URLS": f'["http://127.0.0.1:{ports["am"]}"]',
        "QW_ALERTS_ALERTMANAGER_RESEND_S": "5",
        "QW_ALERTS_ALERTMANAGER_POLL_S": "0.5",
        "QW_ALERTS_ALERTMANAGER_TEAMS": f"{notified}=trust-spam,{maintained}=migration",
        "QW_SCORER_PHASE1_SUBGROUPS": "10",
        "QW_SCORER_GRACE_SECONDS": str(4 * 3600),
        "QW_SCORER_DATA_DIR": str(tmp_path / "scorer"),
    }
    services = Services(env, tmp_path / "logs")
    state = tmp_path / "state"
    try:
        with (
            running("alertmanager", state=state, config=am_config, port=ports["am"]) as am,
            running("prometheus", state=state, config=prom_config, port=ports["prom"]) as prom,
        ):
            async with httpx.AsyncClient(timeout=10) as client:
                # a silence for the second queue, through Alertmanager's API, before the drift
                now = datetime.now(UTC)
                r = await client.post(f"{am}/api/v2/silences", json={
                    "matchers": [{"name": "queue", "value": silenced, "isRegex": False,
                                  "isEqual": True}],
                    "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
                    "createdBy": "e2e", "comment": f"migration of {silenced}",
                })  # fmt: skip
                assert r.status_code == 200, r.text
                silence_id = r.json()["silenceID"]

                for name in ("ingest", "scorer", "alerts"):
                    services.start(name)
                await wait_http(f"http://127.0.0.1:{ports['ingest']}/healthz", services)
                await wait_http(f"http://127.0.0.1:{ports['alerts']}/healthz", services)
                await play(cfg, kafka_settings, duration_s=20 * 3600, speed=0, admit=True)
                played = time.monotonic()

                def arrived() -> bool:
                    return bool(
                        inbox.alerts(notified, "QualityWatchSPCBreach")
                        and inbox.alerts(notified, "QueueSPCBreachFiring")
                    )

                deadline = time.monotonic() + 90
                while not arrived() and time.monotonic() < deadline:
                    services.check()
                    await asyncio.sleep(0.5)
                first = time.monotonic()
                # every alert Alertmanager holds of the three queues, once all are in
                held: list[dict[str, Any]] = []
                while time.monotonic() < deadline:
                    held = (await client.get(f"{am}/api/v2/alerts")).json()
                    names = {(a["labels"].get("queue"), a["labels"]["alertname"]) for a in held}
                    if {
                        (q, n)
                        for q in (silenced, maintained)
                        for n in ("QualityWatchSPCBreach", "QueueSPCBreachFiring")
                    } <= names:
                        break  # fmt: skip
                    await asyncio.sleep(0.5)
                await asyncio.sleep(3)  # 1 s group_wait + a group_interval, twice over
                am_metrics = (await client.get(f"{am}/metrics")).text
                prom_alerts = (await client.get(f"{prom}/api/v1/alerts")).json()

        logs = "\n".join(
            f"--- {p.name}\n{p.read_text()[-1500:]}" for p in (tmp_path / "logs").glob("*.log")
        )
        context = (
            f"received: {inbox.got}\nheld: {held}\nprometheus: {prom_alerts}\n{logs}\n"
            f"--- alertmanager\n{log_tail('alertmanager', state)}\n"
            f"--- prometheus\n{log_tail('prometheus', state)}"
        )
        assert arrived(), context

        # (a) the service's own alert, routed by its team label to the team's receiver
        path, own = inbox.alerts(notified, "QualityWatchSPCBreach")[0]
        assert path == "trust-spam", context
        assert own["status"] == "firing"
        labels = own["labels"]
        assert labels["team"] == "trust-spam"
        assert labels["severity"] in {"warning", "critical"}
        assert labels["rule"]
        assert labels["kind"] == "spc"
        assert labels["service"] == "qualitywatch"
        health = f"http://127.0.0.1:{ports['alerts']}/v1/queues/{notified}/health"
        assert own["annotations"]["health_url"] == health
        assert own["annotations"]["runbook_url"].startswith("docs/operations.md#")
        assert own["generatorURL"].endswith(f"/v1/queues/{notified}/chart")

        # (b) the shipped rule's alert, from Prometheus scraping the service
        path, rule = inbox.alerts(notified, "QueueSPCBreachFiring")[0]
        assert path == "default"  # the rules carry no team label: the tree's default route
        assert rule["labels"]["severity"] == "warning"
        assert rule["labels"]["service"] == "qualitywatch"
        assert rule["labels"]["job"] == "qualitywatch-alerts"
        assert rule["labels"]["rule"]
        assert rule["annotations"]["runbook_url"] == "docs/operations.md#queuespcbreachfiring"
        assert rule["generatorURL"].startswith(f"http://127.0.0.1:{ports['prom']}/")

        # (c) the silence: Alertmanager has the second queue's alerts, holds them, sends none
        of_silenced = [a for a in held if a["labels"].get("queue") == silenced]
        assert {a["labels"]["alertname"] for a in of_silenced} == {
            "QualityWatchSPCBreach", "QueueSPCBreachFiring",
        }, context  # fmt: skip
        for a in of_silenced:
            assert a["status"]["state"] == "suppressed", a
            assert a["status"]["silencedBy"] == [silence_id], a
        assert inbox.alerts(silenced) == [], context

        # (d) the maintenance window: the third queue's own alert is active (not silenced),
        # routed by its team label to the migration team, whose route is muted: it never
        # arrives, while the same queue's rule alert (no team label: the default route,
        # not muted) does
        own_maintained = [
            a for a in held
            if a["labels"].get("queue") == maintained
            and a["labels"]["alertname"] == "QualityWatchSPCBreach"
        ]  # fmt: skip
        assert own_maintained, context
        for a in own_maintained:
            assert a["labels"]["team"] == "migration"
            assert a["status"]["silencedBy"] == []
        assert all(path != "migration" for path, _ in inbox.got), context
        assert inbox.alerts(maintained, "QualityWatchSPCBreach") == [], context
        assert [p for p, _ in inbox.alerts(maintained, "QueueSPCBreachFiring")][:1] == ["default"]
        assert re.search(
            r'alertmanager_notifications_total\{integration="webhook"\} [1-9]', am_metrics
        )
        print(
            f"\ntimings: played {played - t0:.1f}s, both alerts at receiver {first - t0:.1f}s, "
            f"total {time.monotonic() - t0:.1f}s"
        )
    finally:
        services.stop()
        receiver.should_exit = True
        await receiver_task
