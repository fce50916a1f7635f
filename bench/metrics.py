"""``/metrics`` of the alerts service at 1,000 queues: series per queue and scrape time.

    .venv/bin/python bench/metrics.py [--queues 1000] [--scrapes 50] [--port 38011]
                                      [--source DIR]

1. Starts ``qwatch alerts`` as its own process (SQLite in a temporary directory) on the
   broker QW_KAFKA_BOOTSTRAP names (``deploy/local/kafka.sh`` is started when none answers),
   with topics of its own (a ``metricsbench<time>-`` prefix, deleted at the end).
2. Publishes, as the scorer does, every queue's snapshot (bench/api.py's mix: about 80%
   green, the rest amber, red or with too few verdicts; each with its p-chart point, EWMA
   and baseline) and breaches as a running system has them: 15% of the queues with one to
   five of the scorer's rules breached (p-chart, EWMA, both CUSUMs, below target), 1% with
   all five (the most series a queue can have today), so incidents are open, alerts firing
   and ``qw_breaches_total`` counted; then waits until the API lists every queue and every
   breach is an alert.
3. Scrapes ``GET /metrics`` ``--scrapes`` times with httpx (one client, one at a time) and
   prints: series in all, per queue (the most and the mean, against the bound of 50),
   series without a queue label, the body's size, and the scrape time p50 / p99 / max
   (against the bound of 250 ms).

``--source DIR`` runs the alerts service of another checkout (e.g. a ``git worktree`` of
an older revision) with this virtualenv, for a before/after. Loopback only. The figures and the machine they came from: docs/operations.md, "Metrics".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.api import delete_topics, listed, queue_ids, snapshot, start_service, wait_until
from services.demo.orchestrator import ensure_local_broker, local_kafka, release_local_broker
from shared import codec
from shared.events import Breach, BreachKind
from shared.kafka import ensure_topics, make_producer
from shared.settings import REPO_ROOT, KafkaSettings
from shared.topics import queue_key

SERIES_PER_QUEUE_MAX = 50
SCRAPE_MS_MAX = 250.0
# every rule the scorer raises today (services/scorer/core.py), with its severity
RULES = {
    "p_chart_ucl": "warning",
    "ewma_ucl": "warning",
    "cusum_upper": "warning",
    "cusum_site_upper": "warning",
    "cusum_lower": "warning",
    "accuracy_24h_below_target": "critical",
}
_QUEUE_LABEL = re.compile(r'queue="([^"]*)"')


def breaches(rng: random.Random, queues: list[str], now: datetime) -> list[Breach]:
    """15% of the queues with 1-5 rules breached, 1% with all five."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    out = []
    for q in queues:
        draw = rng.random()
        if draw < 0.01:
            rules = list(RULES)
        elif draw < 0.15:
            rules = rng.sample(list(RULES), rng.randint(1, len(RULES)))
        else:
            continue
        for rule in rules:
            kind = BreachKind.BELOW_TARGET if rule.startswith("accuracy") else BreachKind.SPC
            breach = Breach(
                breach_id=f"{q}:{rule}:bench", dedup_key=f"{q}:{rule}:bench", queue_id=q,
                kind=kind, rule=rule, severity=RULES[rule],
                subgroup_start=start, observed_p=0.2, expected_p=0.05, ucl=0.12, n=100,
                message=f"queue {q}: {rule}", detected_at=start, emitted_at=now,
            )  # fmt: skip
            out.append(breach)
    return out


async def publish(kafka: KafkaSettings, queues: list[str], seed: int) -> int:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    producer = make_producer(kafka)
    await producer.start()
    try:
        for q in queues:
            snap = snapshot(rng, q, now)
            await producer.send(kafka.topics.snapshots, codec.dumps(snap), key=queue_key(q))
        sent = breaches(rng, queues, now)
        for b in sent:
            await producer.send(kafka.topics.breaches, codec.dumps(b), key=queue_key(b.queue_id))
        await producer.flush()
    finally:
        await producer.stop()
    return len(sent)


def count_series(text: str) -> tuple[int, Counter[str], int]:
    """(series in all, series per queue, series without a queue label) of an exposition."""
    total, unlabelled = 0, 0
    per_queue: Counter[str] = Counter()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        total += 1
        m = _QUEUE_LABEL.search(line)
        if m:
            per_queue[m.group(1)] += 1
        else:
            unlabelled += 1
    return total, per_queue, unlabelled


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(args: argparse.Namespace) -> int:
    started = await ensure_local_broker()
    prefix = f"metricsbench{datetime.now(UTC):%Y%m%d%H%M%S}-"
    kafka = local_kafka(topic_prefix=prefix)
    service = None
    try:
        await ensure_topics(kafka)
        with tempfile.TemporaryDirectory(prefix="qw-metrics-bench-") as tmp:
            env = {
                **kafka.as_env(),
                "QW_DB_URL": f"sqlite+aiosqlite:///{Path(tmp) / 'qw.db'}",
                "QW_ALERTS_PORT": str(args.port),
            }
            service = start_service(args.source, env, Path(tmp) / "alerts.log", args.port)
            queues = queue_ids(args.queues)
            async with httpx.AsyncClient(base_url=service.base, timeout=30) as client:
                await wait_until("alerts answering", lambda: _ok(client, "/healthz"), service, 120)
                n_breaches = await publish(kafka, queues, args.seed)

                async def loaded() -> bool:
                    alerts = await client.get("/v1/alerts", params={"limit": 1000})
                    return await listed(client) >= len(queues) and len(alerts.json()) > 0

                await wait_until("every queue and alert loaded", loaded, service, 300)
                await asyncio.sleep(6)  # one more qw_alerts_firing refresh from the database
                times, body = [], ""
                for _ in range(args.scrapes):
                    t = time.perf_counter()
                    r = await client.get("/metrics")
                    times.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                    body = r.text
            total, per_queue, unlabelled = count_series(body)
            most = max(per_queue.values())
            mean = statistics.fmean(per_queue.values())
            print(f"machine: {platform.machine()}, {platform.python_implementation()} "
                  f"{platform.python_version()}, {_cpus()}; {args.scrapes} scrapes over httpx "
                  "on 127.0.0.1")  # fmt: skip
            print(f"queues: {len(per_queue):,} exported, {n_breaches} breaches published")
            print(f"series: {total:,} in all, {unlabelled} without a queue label, "
                  f"{len(body) / 1024:,.0f} KiB a scrape")  # fmt: skip
            print(f"series per queue: most {most} (bound {SERIES_PER_QUEUE_MAX}), "
                  f"mean {mean:.1f}")  # fmt: skip
            print(f"scrape: p50 {pct(times, 0.5):.1f} ms, p99 {pct(times, 0.99):.1f} ms, "
                  f"max {max(times):.1f} ms (bound {SCRAPE_MS_MAX:.0f} ms)")  # fmt: skip
            ok = most <= SERIES_PER_QUEUE_MAX and pct(times, 0.99) <= SCRAPE_MS_MAX
            print("within the bounds" if ok else "OVER A BOUND")
            return 0 if ok else 1
    finally:
        if service is not None:
            service.stop()
        await delete_topics(kafka, prefix)
        await release_local_broker(started)


async def _ok(client: httpx.AsyncClient, path: str) -> bool:
    return (await client.get(path)).status_code == 200


def _cpus() -> str:
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{os.cpu_count()} x {model}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queues", type=int, default=1000)
    p.add_argument("--scrapes", type=int, default=50)
    p.add_argument("--port", type=int, default=38011)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--source", type=Path, default=REPO_ROOT, help="the checkout to run")
    return p.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
