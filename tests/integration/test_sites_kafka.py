"""Per-site accuracy through the real broker: the scorer and the alerts service as their own
processes, events in on the events topic, and out of the alerts service's API each site's
counts (exactly the ones sent), its Wilson interval and P(accuracy >= target) against its
own target, the ``site`` filter of ``GET /v1/queues``, the per-site counts of every
published subgroup, and the two per-queue site gauges on ``/metrics``."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.demo.orchestrator import Services, wait_http
from services.ingest.validation import validate_items
from shared import batches
from shared.kafka import ensure_topics, make_producer
from shared.settings import KafkaSettings
from shared.stats.intervals import exact_upper_bound, prob_at_least, wilson_interval
from shared.topics import queue_key
from tests.factories import T0, decision, verdict
from tests.integration.test_webhook_delivery import free_port

pytestmark = pytest.mark.kafka

H = timedelta(hours=1)
# queue -> site -> (decisions an hour, of which reviewed and found incorrect: every k-th)
PLAN: dict[str, dict[str, tuple[int, int]]] = {
    "q-a": {"manila": (40, 5), "dublin": (30, 50), "austin": (10, 10)},  # austin: 3rd site
    "q-b": {"dublin": (20, 20)},
}
HOURS = 6


def traffic() -> tuple[list[dict[str, Any]], dict[tuple[str, str], tuple[int, int]]]:
    """Six hours of reviewed decisions per queue and site, and the truth: (n, errors)."""
    items: list[dict[str, Any]] = []
    truth: dict[tuple[str, str], tuple[int, int]] = {}
    for queue, sites in PLAN.items():
        for site, (per_hour, every) in sites.items():
            n = e = 0
            for hour in range(HOURS):
                for i in range(per_hour):
                    k = f"{queue}-{site}-{hour}-{i}"
                    at = T0 + hour * H + timedelta(seconds=i * 3600 // per_hour)
                    wrong = i % every == 0
                    items.append(decision(k, queue, at, site_id=site))
                    items.append(verdict(k, queue, at + timedelta(minutes=5), correct=not wrong))
                    n, e = n + 1, e + wrong
            truth[(queue, site)] = (n, e)
    for queue in PLAN:  # moves each watermark on, so every hour closes
        items.append(decision(f"{queue}-tick", queue, T0 + (HOURS + 1) * H, site_id="dublin"))
    return items, truth


async def test_per_site_health_and_the_site_filter_through_the_pipeline(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await ensure_topics(kafka_settings)
    port = free_port()
    env = {
        **kafka_settings.as_env(),
        "QW_SCORER_DATA_DIR": str(tmp_path / "scorer"),
        "QW_SCORER_BASELINE_P": '{"q-a": 0.05, "q-b": 0.05}',
        "QW_SCORER_GRACE_SECONDS": "0",
        "QW_SCORER_SNAPSHOT_INTERVAL_S": "0",
        "QW_SCORER_SITES_PER_QUEUE": "2",  # q-a's third site is summed as "(other)"
        "QW_SITE_TARGETS": '{"manila": 0.9, "q-a/dublin": 0.98}',
        "QW_ACCURACY_TARGET": "0.9",
        "QW_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}",
        "QW_ALERTS_PORT": str(port),
        "QW_ALERTS_LAG_GROUPS": '["qw-alerts"]',
    }
    services = Services(env, tmp_path / "logs")
    base = f"http://127.0.0.1:{port}"
    items, truth = traffic()
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        services.start("scorer")
        services.start("alerts")
        await wait_http(f"{base}/healthz", services)
        events = validate_items(items, None).events
        for b in batches.group_by_queue(events):
            await producer.send_and_wait(
                kafka_settings.topics.events, batches.encode(b), key=queue_key(b["queue_id"])
            )
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            healths: dict[str, Any] = {}
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                services.check()
                for q in PLAN:
                    r = await client.get(f"/v1/queues/{q}/health")
                    if r.status_code == 200:
                        healths[q] = r.json()
                if all(
                    healths.get(q, {}).get("snapshot", {}).get("decisions_total")
                    == 1 + sum(p * HOURS for p, _ in PLAN[q].values())
                    for q in PLAN
                ):
                    break
                await asyncio.sleep(0.5)
            else:
                pytest.fail(f"not every event scored and served within 120 s: {healths}")

            a = {s["site"]: s for s in healths["q-a"]["health"]["sites"]}
            assert list(a) == ["dublin", "manila", "(other)"]  # by id; the first two seen are named
            for site, key in (("manila", "manila"), ("dublin", "dublin"), ("(other)", "austin")):
                n, e = truth[("q-a", key)]
                for window in ("last_24h", "last_7d"):
                    w = a[site][window]
                    assert (w["n"], w["errors"]) == (n, e), (site, window, w)
                    target = a[site]["target"]
                    ci = wilson_interval(n - e, n, 0.95)
                    assert w["interval"] == pytest.approx([ci.lower, ci.upper])
                    assert w["prob_at_least_target"] == pytest.approx(
                        prob_at_least(n - e, n, target)
                    )
            assert (a["manila"]["target"], a["manila"]["target_source"]) == (0.9, "site")
            assert (a["dublin"]["target"], a["dublin"]["target_source"]) == (0.98, "queue_site")
            assert a["(other)"]["target_source"] == "queue"
            # the below-target rule's bound, at the confidence the scorer published (its
            # share of the false-alarm budget: one-sided 99.9992% at the defaults)
            rule = healths["q-a"]["snapshot"]["target_rule"]
            assert rule["source"] == "budget"
            assert healths["q-a"]["health"]["target_rule"] == rule
            n, e = truth[("q-a", "manila")]
            assert a["manila"]["last_24h"]["rule_upper"] == pytest.approx(
                exact_upper_bound(n - e, n, rule["tail_per_look"])
            )
            # manila: 80% against 90%, below with confidence; dublin 96.7% against 98%: not yet
            assert a["manila"]["last_24h"]["below_target_with_confidence"]
            assert not a["dublin"]["last_24h"]["below_target_with_confidence"]
            b = healths["q-b"]["health"]["sites"]
            assert [(s["site"], s["target"], s["target_source"]) for s in b] == [
                ("dublin", 0.9, "queue")  # q-a's contract with dublin is q-a's alone
            ]
            assert b[0]["last_24h"]["n"] == truth[("q-b", "dublin")][0]

            # the site filter: queues with that site by name in the last 7 days
            async def listed(**params: Any) -> list[str]:
                r = await client.get("/v1/queues", params=params)
                assert r.status_code == 200, r.text
                return [q["queue_id"] for q in r.json()]

            assert await listed(site="manila") == ["q-a"]
            assert await listed(site="dublin") == ["q-a", "q-b"]
            assert await listed(site="dublin", limit=1) == ["q-a"]
            assert await listed(site="dublin", after="q-a") == ["q-b"]
            assert await listed(site="austin") == []  # counted, but as "(other)"
            assert (await client.get("/v1/queues", params={"site": "(other)"})).status_code == 422

            # every published subgroup's sites add up to it
            r = await client.get("/v1/queues/q-a/chart")
            points = r.json()["points"]
            assert len(points) >= HOURS
            for p in points:
                assert sum(s["n"] for s in p["sites"].values()) == p["n"]
                assert sum(s["errors"] for s in p["sites"].values()) == p["errors"]
                assert sum(s["decisions"] for s in p["sites"].values()) == p["decisions"]
            assert points[0]["sites"]["manila"] == {"decisions": 40, "n": 40, "errors": 8}

            metrics = (await client.get("/metrics")).text
            got = {
                (s.name, s.labels.get("queue")): s.value
                for fam in text_string_to_metric_families(metrics)
                for s in fam.samples
                if s.name.startswith("qw_queue_sites")
            }
            assert got[("qw_queue_sites", "q-a")] == 2
            assert got[("qw_queue_sites_below_target", "q-a")] == 1
            assert got[("qw_queue_sites", "q-b")] == 1
    finally:
        await producer.stop()
        services.stop()
