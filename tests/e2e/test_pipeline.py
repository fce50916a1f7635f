"""The whole pipeline: simulator -> raw topics -> ingest -> scorer -> alerts -> webhook.

Every part is real: the broker, the three services as processes, SQLite, an HTTP receiver
that verifies signatures, and the Prometheus endpoint.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import standardwebhooks

from services.alerts.webhook_policy import generate_secret
from services.demo.orchestrator import Services, wait_http
from services.demo.receiver import Inbox
from services.simulator.model import SITES, Drift, SimConfig, queue_profiles
from services.simulator.run import play
from shared.runtime import http_server
from shared.settings import KafkaSettings

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_drifted_queue_alerts_and_stable_queue_stays_quiet(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    secret = generate_secret()
    ports = {name: free_port() for name in ("ingest", "alerts", "receiver")}
    # the reference Standard Webhooks verifier checks every delivery, not ours
    inbox = Inbox(secret=secret, verifier=standardwebhooks.Webhook(secret).verify)
    receiver = http_server(inbox.app(), "127.0.0.1", ports["receiver"])
    receiver_task = asyncio.create_task(receiver.serve())

    cfg = SimConfig(seed=11, queues=4, decisions_per_hour=1500, random_qa_rate=0.15)
    profiles = queue_profiles(cfg)
    drifted, stable = profiles[1].queue_id, profiles[2].queue_id
    # a new cohort at one of the four sites: 40 points worse there, 10 on the whole queue
    site = SITES[1]
    cfg = dataclasses.replace(cfg, drifts=(Drift(drifted, 14 * 3600, -0.40, site_id=site),))

    env = {
        **kafka_settings.as_env(),
        "QW_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'qw.db'}",
        "QW_INGEST_PORT": str(ports["ingest"]),
        "QW_ALERTS_PORT": str(ports["alerts"]),
        "QW_ALERTS_WEBHOOK_URLS": f'["http://127.0.0.1:{ports["receiver"]}/hook"]',
        "QW_ALERTS_WEBHOOK_SECRET": secret,
        "QW_ALERTS_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "QW_SCORER_PHASE1_SUBGROUPS": "10",
        "QW_SCORER_GRACE_SECONDS": str(4 * 3600),
        "QW_SCORER_DATA_DIR": str(tmp_path / "scorer"),
    }
    services = Services(env, tmp_path / "logs")
    try:
        for name in ("ingest", "scorer", "alerts"):
            services.start(name)
        await wait_http(f"http://127.0.0.1:{ports['ingest']}/healthz", services)
        await wait_http(f"http://127.0.0.1:{ports['alerts']}/healthz", services)

        prog = await play(
            cfg, kafka_settings, duration_s=26 * 3600, speed=0, invalid_every=3000, admit=True
        )
        assert prog.invalid > 0

        end = cfg.start.timestamp() + 26 * 3600
        deadline = time.monotonic() + 240
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['alerts']}") as client:
            # wait until every queue has been scored up to the end of the traffic, so a
            # false alarm that comes late would still be seen
            while time.monotonic() < deadline:
                services.check()
                queues = (await client.get("/v1/queues")).json()
                as_of = [datetime.fromisoformat(q["snapshot"]["as_of"]).timestamp() for q in queues]
                if len(queues) == len(profiles) and min(as_of) >= end - 3600:
                    break
                await asyncio.sleep(1)
        await asyncio.sleep(5)  # webhooks in flight
        logs = "\n".join(
            f"--- {p.name}\n{p.read_text()[-1500:]}" for p in (tmp_path / "logs").glob("*.log")
        )
        assert inbox.for_queue(drifted), f"no alert for the drifted queue {drifted}\n{logs}"
        assert not inbox.for_queue(stable), inbox.for_queue(stable)
        assert inbox.rejected == []  # every webhook carried a valid signature

        spc = [a["alert"] for a in inbox.for_queue(drifted) if a["alert"]["kind"] == "spc"]
        assert spc, inbox.for_queue(drifted)
        first = min(spc, key=lambda a: a["subgroup_start"])
        assert first["breach"]["observed_p"] > first["breach"]["expected_p"]
        drift_at = cfg.start.timestamp() + 14 * 3600
        assert datetime.fromisoformat(first["subgroup_start"]).timestamp() >= drift_at
        # root cause: the alert names the site first, in its fields, its words and its labels
        for alert in spc:
            causes = alert["breach"]["causes"]
            assert causes, alert
            assert site in causes[0]["value"].split("/"), causes
            assert alert["breach"]["site"] == site, alert["breach"]
            assert f"site {site}" in alert["message"], alert["message"]

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['alerts']}") as client:
            metrics = (await client.get("/metrics")).text
            line = next(
                ln for ln in metrics.splitlines()
                if ln.startswith("qw_queue_accuracy{") and f'queue="{stable}"' in ln and 'window="24h"' in ln
            )  # fmt: skip
            assert 0.85 < float(line.rsplit(" ", 1)[1]) < 1.0
            health = (await client.get(f"/v1/queues/{drifted}/health")).json()
            assert health["health"]["band"] in {"amber", "red"}
            # the drifted site's own chart (the queue's baseline was estimated) signalled,
            # and the others' stayed quiet
            charts = health["snapshot"]["site_cusums"]
            assert site in charts, charts.keys()
            assert charts[site]["signals"] >= 1, charts[site]
            assert all(c["signals"] == 0 for s, c in charts.items() if s != site), charts
            # per site: the drifted site is the least accurate of the drifted queue's sites
            # today, and the only one below the target with confidence; the site filter
            # finds the queues it works
            sites = {x["site"]: x for x in health["health"]["sites"]}
            assert site in sites, sites.keys()
            assert set(sites) <= set(SITES), sites.keys()
            day = {name: x["last_24h"] for name, x in sites.items()}
            assert min(day, key=lambda k: day[k]["accuracy"]) == site, day
            assert [k for k, w in day.items() if w["below_target_with_confidence"]] == [site]
            assert day[site]["prob_at_least_target"] < 0.01, day[site]
            assert sum(w["n"] for w in day.values()) == health["snapshot"]["n_24h"]
            on_site = (await client.get("/v1/queues", params={"site": site})).json()
            assert drifted in {q["queue_id"] for q in on_site}
            assert (await client.get("/v1/queues/nope/health")).status_code == 404
            # one incident holds the drifted queue's signals, each with its cause
            incidents = (await client.get("/v1/incidents", params={"queue_id": drifted})).json()
            assert incidents, "no incident for the drifted queue"
            detail = (await client.get(f"/v1/incidents/{incidents[-1]['id']}")).json()
            assert detail["signal_list"][0]["cause_summary"], detail
            assert not (await client.get("/v1/incidents", params={"queue_id": stable})).json()
            queues = (await client.get("/v1/queues")).json()
            assert {q["queue_id"] for q in queues} == {p.queue_id for p in profiles}
    finally:
        services.stop()
        receiver.should_exit = True
        await receiver_task
