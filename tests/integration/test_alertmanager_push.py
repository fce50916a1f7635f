"""The alerts service's pusher against a real Alertmanager (Debian's package, started by
deploy/local/alertmanager.sh): what it receives, the resend, the resolution, and a push to an
Alertmanager that is down (counted, retried with backoff, delivered once it is up)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from services.alerts import db
from services.alerts.alertmanager import AlertmanagerPusher
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from tests.alerts_cases import make_breach, make_snapshot, sqlite_sessions
from tests.monitoring import free_port, log_tail, running

pytestmark = pytest.mark.prometheus

# Routes nowhere: these tests look at what Alertmanager holds, not at notifications.
CONFIG = """
route:
  receiver: nowhere
  group_wait: 1s
receivers:
  - name: nowhere
"""


def _settings(url: str) -> AlertsSettings:
    return AlertsSettings(
        alertmanager_urls=[url], alertmanager_resend_s=5, alertmanager_poll_s=0.2,
        alertmanager_teams="spam-*=trust-spam",
        alertmanager_public_url="https://qw.example.test",
        # a resolution ends the alert at once here (the hold that lets Prometheus' rule
        # resolve first is tested in tests/unit/test_alertmanager_settings.py)
        alertmanager_resolve_hold_s=0,
    )  # fmt: skip


async def _held(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    r = await client.get(f"{url}/api/v2/alerts")
    r.raise_for_status()
    alerts: list[dict[str, Any]] = r.json()
    return alerts


def _pushes(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "qw_alertmanager_pushes_total", {"alertmanager": "0", "outcome": outcome}
    )
    return value or 0.0


async def test_open_alerts_arrive_with_routing_labels_and_their_resolution_ends_them(
    tmp_path: Path,
) -> None:
    config = tmp_path / "am.yml"
    config.write_text(CONFIG)
    metrics = Metrics.create(CollectorRegistry())
    with running("alertmanager", state=tmp_path, config=config) as url:
        async with sqlite_sessions(tmp_path) as sessions, httpx.AsyncClient() as client:
            now = datetime.now(UTC)
            async with sessions() as s, s.begin():
                spam = await db.record_breach(s, make_breach("spam-en", 0), receivers=[], now=now)
                other = await db.record_breach(s, make_breach("hate-de", 0), receivers=[], now=now)
                # a second alert of the same queue and rule while the first is open
                again = await db.record_breach(s, make_breach("spam-en", 1), receivers=[], now=now)
                assert spam is not None
                assert other is not None
                assert again is not None
                assert again.suppressed
                spam.breach = {**spam.breach, "site_id": "manila-1"}  # a one-site cause
            pusher = AlertmanagerPusher(_settings(url), sessions, client, metrics)
            assert await pusher.push_once() == 1
            assert await pusher.push_once() == 0  # nothing changed, resend not due

            held = {a["labels"]["queue"]: a for a in await _held(client, url)}
            assert set(held) == {"spam-en", "hate-de"}, log_tail("alertmanager", tmp_path)
            got = held["spam-en"]
            assert got["labels"] == {
                "alertname": "QualityWatchSPCBreach", "queue": "spam-en", "rule": "p_chart_ucl",
                "kind": "spc", "severity": "warning", "team": "trust-spam", "site": "manila-1",
                "service": "qualitywatch", "incident": str(spam.incident_id),
            }  # fmt: skip
            assert held["hate-de"]["labels"]["team"] == "quality"  # the default team
            assert "site" not in held["hate-de"]["labels"]
            ann = got["annotations"]
            assert ann["health_url"] == "https://qw.example.test/v1/queues/spam-en/health"
            assert ann["runbook_url"] == "docs/operations.md#qualitywatchspcbreach"
            assert "20.0%" in ann["summary"]
            assert ann["description"] == "m"
            assert ann["incident_url"] == f"https://qw.example.test/v1/incidents/{spam.incident_id}"
            assert ann["signals"] == "p_chart_ucl"
            assert got["generatorURL"] == "https://qw.example.test/v1/queues/spam-en/chart"
            assert got["status"]["state"] == "active"
            ends = datetime.fromisoformat(got["endsAt"].replace("Z", "+00:00"))
            assert now + timedelta(seconds=15) < ends < now + timedelta(seconds=30)  # 4 x 5 s

            # before it expires, the unchanged set is re-sent with endsAt moved on
            await asyncio.sleep(5)  # QW_ALERTS_ALERTMANAGER_RESEND_S
            assert await pusher.push_once() == 1
            (again_held,) = [
                a for a in await _held(client, url) if a["labels"]["queue"] == "spam-en"
            ]
            assert again_held["endsAt"] > got["endsAt"]
            assert again_held["startsAt"] == got["startsAt"]

            async with sessions() as s, s.begin():
                snap = make_snapshot("spam-en", 3, signals=[], streak=3)
                resolved = await db.resolve_recovered(s, snap, receivers=[], now=datetime.now(UTC))
                assert {a.id for a in resolved} == {spam.id, again.id}
            assert await pusher.push_once() == 1  # the set changed: pushed at once
            held_after = {a["labels"]["queue"] for a in await _held(client, url)}
            assert held_after == {"hate-de"}  # resolved (endsAt passed) is no longer active
            assert _pushes(metrics, "ok") == 3
            assert _pushes(metrics, "error") == 0


async def test_a_down_alertmanager_is_counted_retried_and_reached_once_up(
    tmp_path: Path,
) -> None:
    config = tmp_path / "am.yml"
    config.write_text(CONFIG)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    metrics = Metrics.create(CollectorRegistry())
    async with sqlite_sessions(tmp_path) as sessions, httpx.AsyncClient() as client:
        async with sessions() as s, s.begin():
            now = datetime.now(UTC)
            await db.record_breach(s, make_breach("spam-en", 0), receivers=[], now=now)
        pusher = AlertmanagerPusher(_settings(url), sessions, client, metrics)
        stop = asyncio.Event()
        task = asyncio.create_task(pusher.run(stop))
        try:
            await asyncio.sleep(2.5)  # attempts at 0 s, 1 s (backoff 1 s), then 3 s (2 s)
            assert _pushes(metrics, "error") == 2
            assert _pushes(metrics, "ok") == 0
            with running("alertmanager", state=tmp_path, config=config, port=port):
                for _ in range(100):
                    if _pushes(metrics, "ok"):
                        break
                    await asyncio.sleep(0.1)
                assert _pushes(metrics, "ok") == 1
                held = await _held(client, url)
                assert [a["labels"]["queue"] for a in held] == ["spam-en"]
            async with sessions() as s:  # the pusher only reads
                (alert,) = await s.scalars(select(db.Alert))
                assert alert.status == "firing"
        finally:
            stop.set()
            await task
