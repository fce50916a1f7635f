"""The health API under load: a real alerts service with 1,000 queues, driven by Debian's
``wrk`` (saturation throughput) and vegeta (latency at a fixed rate).

    .venv/bin/python bench/api.py [--queues 1000] [--pg URL] [--duration 15] [--rate 2000]
                                  [--compare main]

One command, one run:

1. Starts ``qwatch alerts`` as its own process (SQLite in a temporary directory by default,
   ``--pg URL`` for PostgreSQL, in a private schema dropped at the end) on the broker
   QW_KAFKA_BOOTSTRAP names (``deploy/local/kafka.sh`` is started when none answers), with
   topics of its own (a ``apibench<time>-`` prefix, deleted at the end).
2. Publishes ``--queues`` snapshots (about 80% of queues green, the rest amber, red or with
   too few verdicts) and breaches for 5% of them on the snapshot and breach topics, as the
   scorer does, and waits until the API lists every queue: the service's own consumer
   loads them.
3. For each endpoint, ``wrk`` (2 threads, ``--connections``) for the saturation throughput,
   then vegeta at ``--rate`` requests/s for the latency, each for ``--duration`` seconds
   (at most 20), over random queue ids: ``GET /v1/queues/{id}/health``; ``GET /v1/queues``
   one page of ``--page`` queues after a random page boundary; ``POST /v1/health:batch``
   with ``--batch`` random ids. Prints req/s, p50, p99, errors (non-2xx answers and socket
   errors or timeouts) and the service's CPU time per phase. vegeta is skipped for an
   endpoint whose wrk throughput is under half of ``--rate``: a fixed rate far above
   capacity measures only a growing queue.

``--compare REF`` runs the same first on the code of git revision REF (``git archive`` into
a temporary directory, run with this virtualenv) and prints after/before ratios; an
endpoint the older code does not offer is marked as such. Loopback only; the service listens
on ``--port`` (default 38010).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from services.demo.orchestrator import ensure_local_broker, local_kafka, release_local_broker
from shared import codec
from shared.events import Breach, BreachKind, ChartPoint, QualitySnapshot
from shared.kafka import ensure_topics, make_producer
from shared.settings import REPO_ROOT, KafkaSettings
from shared.topics import queue_key

VEGETA = Path.home() / "go" / "bin" / "vegeta"
AREAS = ["spam", "hate", "cse", "fraud", "violence"]
MARKETS = ["en", "de", "pt", "es", "fr", "ja", "ar", "hi"]
TEAMS = "spam-*=trust-spam,cse-*=child-safety,hate-*=hate-speech"
MAX_PHASE_S = 20.0


def queue_ids(n: int) -> list[str]:
    return [f"{AREAS[i % 5]}-{MARKETS[(i // 5) % 8]}-{i:04d}" for i in range(n)]


def snapshot(rng: random.Random, queue: str, now: datetime) -> QualitySnapshot:
    kind = rng.random()
    if kind < 0.80:
        acc, n = rng.uniform(0.93, 0.99), rng.randint(300, 3000)  # green
    elif kind < 0.90:
        acc, n = rng.uniform(0.86, 0.92), rng.randint(300, 3000)  # amber or red
    elif kind < 0.95:
        acc, n = rng.uniform(0.70, 0.85), rng.randint(300, 3000)  # red
    else:
        acc, n = rng.uniform(0.8, 1.0), rng.randint(0, 29)  # too few verdicts
    errors = round((1 - acc) * n)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    p = errors / n if n else 0.0
    return QualitySnapshot(
        queue_id=queue, as_of=now, emitted_at=now, decisions_total=n * 20, verdicts_total=n,
        pending_verdicts=rng.randint(0, 50), accuracy_1h=acc, accuracy_24h=acc,
        accuracy_7d=acc, n_1h=n // 24, n_24h=n, n_7d=n * 7,
        errors_24h_by_type={"over_enforcement": errors // 2, "under_enforcement": errors - errors // 2},
        baseline_p=0.05, baseline_state="frozen", ewma=p, ewma_ucl=0.08,
        last_point=ChartPoint(start=start, n=max(n // 24, 1), errors=errors // 24, p=p,
                              center=0.05, lcl=0.0, ucl=0.12),
        in_control_streak=rng.randint(0, 20), subgroups_closed=rng.randint(24, 200),
    )  # fmt: skip


def breach(queue: str, now: datetime) -> Breach:
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return Breach(
        breach_id=f"{queue}:p_chart_ucl:bench", dedup_key=f"{queue}:p_chart_ucl:bench",
        queue_id=queue, kind=BreachKind.SPC, rule="p_chart_ucl", severity="warning",
        subgroup_start=start, observed_p=0.2, expected_p=0.05, ucl=0.12, n=100,
        message=f"queue {queue}: error rate above the control limit", detected_at=start,
        emitted_at=now,
    )  # fmt: skip


async def publish(kafka: KafkaSettings, queues: list[str], seed: int) -> int:
    """Every queue's snapshot, and a breach for 5% of them; returns the breaches sent."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    producer = make_producer(kafka)
    await producer.start()
    sent = 0
    try:
        for q in queues:
            snap = snapshot(rng, q, now)
            await producer.send(kafka.topics.snapshots, codec.dumps(snap), key=queue_key(q))
            if rng.random() < 0.05:
                await producer.send(
                    kafka.topics.breaches, codec.dumps(breach(q, now)), key=queue_key(q)
                )
                sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


# -- the service ------------------------------------------------------------------------------
@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"the alerts service exited with {self.proc.returncode}:\n{tail}")

    def cpu_s(self) -> float:
        """utime + stime of the service process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_service(
    source: Path, env: dict[str, str], log: Path, port: int, python: str = sys.executable
) -> Service:
    full = {**os.environ, **env, "PYTHONPATH": str(source)}
    proc = subprocess.Popen(
        [python, "-m", "services.cli", "alerts"], cwd=source, env=full,
        stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    return Service(proc, f"http://127.0.0.1:{port}", log)


async def wait_until(what: str, check: Any, service: Service, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        service.check()
        with contextlib.suppress(httpx.HTTPError):
            if await check():
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout:.0f} s (log: {service.log})")
        await asyncio.sleep(0.3)


async def listed(client: httpx.AsyncClient) -> int:
    """How many queues ``GET /v1/queues`` lists, following the pages (older code: one list)."""
    count, params = 0, {"limit": "1000"}
    while True:
        r = await client.get("/v1/queues", params=params, timeout=60)
        if r.status_code != 200:
            return count
        count += len(r.json())
        nxt = r.headers.get("x-next-after")
        if nxt is None:
            return count
        params["after"] = nxt


async def settle(client: httpx.AsyncClient, service: Service) -> None:
    """Wait (up to 60 s) until the service answers promptly again after a load phase."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        service.check()
        t = time.perf_counter()
        with contextlib.suppress(httpx.HTTPError):
            await client.get("/healthz", timeout=5)
            if time.perf_counter() - t < 0.05:
                return
        await asyncio.sleep(0.5)


# -- load ---------------------------------------------------------------------------------------
@dataclass
class Endpoint:
    name: str
    method: str
    paths: list[str]  # one per request pattern; picked at random
    bodies: list[bytes] = field(default_factory=list)  # POST bodies, picked at random


def endpoints(queues: list[str], page: int, batch: int, seed: int) -> list[Endpoint]:
    rng = random.Random(seed)
    ordered = sorted(queues)
    pages = [f"/v1/queues?limit={page}"] + [
        f"/v1/queues?limit={page}&after={ordered[i - 1]}" for i in range(page, len(ordered), page)
    ]
    bodies = [
        codec.dumps({"queue_ids": rng.sample(queues, min(batch, len(queues)))}) for _ in range(64)
    ]
    return [
        Endpoint("GET /v1/queues/{id}/health", "GET", [f"/v1/queues/{q}/health" for q in queues]),
        Endpoint(f"GET /v1/queues (pages of {page})", "GET", pages),
        Endpoint(f"POST /v1/health:batch ({batch} ids)", "POST", ["/v1/health:batch"], bodies),
    ]


def _lua_str(s: str | bytes) -> str:
    text = s.decode() if isinstance(s, bytes) else s
    return json.dumps(text)  # a JSON string is a valid Lua string for these characters


def wrk_script(ep: Endpoint, seed: int) -> str:
    paths = ",\n".join(_lua_str(p) for p in ep.paths)
    lines = [f"math.randomseed({seed})", f"local paths = {{{paths}}}"]
    if ep.bodies:
        bodies = ",\n".join(_lua_str(b) for b in ep.bodies)
        lines += [
            f"local bodies = {{{bodies}}}",
            'local headers = {["Content-Type"] = "application/json"}',
            "request = function()",
            f'  return wrk.format("{ep.method}", paths[math.random(#paths)], headers, '
            "bodies[math.random(#bodies)])",
            "end",
        ]
    else:
        lines += [
            "request = function()",
            f'  return wrk.format("{ep.method}", paths[math.random(#paths)])',
            "end",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Figures:
    tool: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_s: float = 0.0
    note: str = ""


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise ValueError(f"wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> Figures:
    def num(pattern: str) -> str:
        m = re.search(pattern, out)
        if m is None:
            raise ValueError(f"wrk output without {pattern!r}:\n{out}")
        return m.group(1)

    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return Figures(
        tool="wrk",
        rps=float(num(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(num(r"\n\s+50%\s+(\S+)")),
        p99_ms=_ms(num(r"\n\s+99%\s+(\S+)")),
        errors=errors,
        requests=int(num(r"(\d+) requests in")),
    )


def run_wrk(base: str, ep: Endpoint, args: argparse.Namespace, tmp: Path) -> Figures:
    script = tmp / "wrk.lua"
    script.write_text(wrk_script(ep, args.seed))
    cmd = [
        "wrk", "-t2", f"-c{args.connections}", f"-d{args.duration:g}s", "--latency",
        "--timeout", "5s", "-s", str(script), base,
    ]  # fmt: skip
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=args.duration + 30, check=True
    ).stdout
    return parse_wrk(out)


def run_vegeta(base: str, ep: Endpoint, args: argparse.Namespace, tmp: Path, rate: int) -> Figures:
    rng = random.Random(args.seed)
    targets = tmp / "targets.jsonl"
    with targets.open("w") as f:
        for _ in range(20_000):
            t: dict[str, Any] = {"method": ep.method, "url": base + rng.choice(ep.paths)}
            if ep.bodies:
                t["body"] = base64.b64encode(rng.choice(ep.bodies)).decode()
                t["header"] = {"Content-Type": ["application/json"]}
            f.write(json.dumps(t) + "\n")
    results = tmp / "vegeta.bin"
    attack = [
        str(VEGETA), "attack", f"-targets={targets}", "-format=json", f"-rate={rate}/1s",
        f"-duration={args.duration:g}s", "-timeout=5s", f"-max-workers={args.max_workers}",
        f"-output={results}",
    ]  # fmt: skip
    subprocess.run(attack, capture_output=True, timeout=args.duration + 30, check=True)
    report = subprocess.run(
        [str(VEGETA), "report", "-type=json", str(results)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    r = json.loads(report.stdout)
    ok = sum(n for code, n in r["status_codes"].items() if code.startswith("2"))
    return Figures(
        tool=f"vegeta {rate}/s",
        rps=float(r["throughput"]),
        p50_ms=r["latencies"]["50th"] / 1e6,
        p99_ms=r["latencies"]["99th"] / 1e6,
        errors=int(r["requests"]) - ok,
        requests=int(r["requests"]),
    )


async def offered(client: httpx.AsyncClient) -> set[str]:
    doc = (await client.get("/openapi.json")).json()
    return {f"{m.upper()} {p}" for p, ops in doc["paths"].items() for m in ops}


async def measure(
    label: str,
    source: Path,
    python: str,
    args: argparse.Namespace,
    kafka_base: KafkaSettings,
    tmp: Path,
) -> dict[str, list[Figures]]:
    """One service from ``source``: seed, then every endpoint under wrk and vegeta."""
    prefix = f"apibench{int(time.time())}{uuid.uuid4().hex[:4]}-"
    kafka = local_kafka(bootstrap=kafka_base.bootstrap, topic_prefix=prefix, partitions=4)
    run_dir = tmp / label
    run_dir.mkdir()
    db_url, drop = await database(args.pg, run_dir)
    env = {
        **kafka.as_env(),
        "QW_DB_URL": db_url,
        "QW_ALERTS_HOST": "127.0.0.1",
        "QW_ALERTS_PORT": str(args.port),
        "QW_API_KEYS_FILE": str(run_dir / "no-keys.json"),
        "QW_ALERTS_ALERTMANAGER_TEAMS": TEAMS,
        "QW_ALERTS_LAG_GROUPS": '["qw-alerts"]',
    }
    queues = queue_ids(args.queues)
    await ensure_topics(kafka)
    service = start_service(source, env, run_dir / "alerts.log", args.port, python)
    out: dict[str, list[Figures]] = {}
    try:
        async with httpx.AsyncClient(base_url=service.base, timeout=10) as client:

            async def up() -> bool:
                return (await client.get("/healthz")).status_code == 200

            await wait_until("the alerts service to answer", up, service, 120)
            print(f"[{label}] serving on {stack(service.log)}", flush=True)
            t = time.perf_counter()
            breaches = await publish(kafka, queues, args.seed)

            async def loaded() -> bool:
                return await listed(client) >= len(queues)

            await wait_until(f"{len(queues)} queues listed", loaded, service, 180)
            print(
                f"[{label}] {len(queues)} queues ({breaches} with a firing alert) served "
                f"{time.perf_counter() - t:.1f} s after publishing",
                flush=True,
            )
            have = await offered(client)
            for ep in endpoints(queues, args.page, args.batch, args.seed):
                op = (
                    "GET /v1/queues/{queue_id}/health"
                    if "{id}" in ep.name
                    else f"{ep.method} {ep.paths[0].split('?')[0]}"
                )
                if op not in have:
                    print(f"[{label}] {ep.name}: not offered by this code", flush=True)
                    continue
                out[ep.name] = []
                phases = [("wrk", 0)] if "wrk" in args.tools else []
                phases += [("vegeta", r) for r in args.rates] if "vegeta" in args.tools else []
                for tool, rate in phases:
                    saturated = [f.rps for f in out[ep.name] if f.tool == "wrk"]
                    if tool == "vegeta" and saturated and saturated[0] < rate / 2:
                        # a fixed rate far above what the service can do measures only a
                        # queue growing for the whole phase (and leaves minutes of backlog)
                        print(
                            f"[{label}] {ep.name}: vegeta at {rate}/s skipped: wrk "
                            f"saturates at {saturated[0]:,.0f} req/s, under half that rate",
                            flush=True,
                        )
                        continue
                    await settle(client, service)
                    cpu = service.cpu_s()
                    if tool == "wrk":
                        figures = await asyncio.to_thread(run_wrk, service.base, ep, args, run_dir)
                    else:
                        figures = await asyncio.to_thread(
                            run_vegeta, service.base, ep, args, run_dir, rate
                        )
                    figures.cpu_s = service.cpu_s() - cpu
                    out[ep.name].append(figures)
                    print(f"[{label}] {ep.name}: {row(figures)}", flush=True)
    finally:
        service.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(delete_topics(kafka, prefix), 30)
        await drop()
    return out


async def database(pg: str | None, run_dir: Path) -> tuple[str, Any]:
    """The service's database URL and a coroutine function that removes it."""
    if pg is None:

        async def nothing() -> None:
            return None

        return f"sqlite+aiosqlite:///{run_dir / 'alerts.db'}", nothing
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    schema = f"qw_apibench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(pg)
    async with admin.begin() as conn:
        await conn.execute(text(f"create schema {schema}"))

    async def drop() -> None:
        async with admin.begin() as conn:
            await conn.execute(text(f"drop schema {schema} cascade"))
        await admin.dispose()

    return f"{pg}{'&' if '?' in pg else '?'}options=-csearch_path%3D{schema}", drop


async def delete_topics(kafka: KafkaSettings, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def row(f: Figures) -> str:
    if f.requests == 0:
        return f"{f.tool}: no answer within the phase, service CPU {f.cpu_s:.1f} s"
    return (
        f"{f.tool}: {f.rps:,.0f} req/s, p50 {f.p50_ms:.2f} ms, p99 {f.p99_ms:.2f} ms, "
        f"{f.errors} errors of {f.requests:,}, service CPU {f.cpu_s:.1f} s"
    )


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def stack(log: Path) -> str:
    """What the service says it runs on (newer code logs it), else what uvicorn picks."""
    m = re.search(r"alerts listening on \S+ \((.+)\)", log.read_text(errors="replace"))
    return m.group(1) if m else "asyncio loop; uvicorn's parser: httptools if installed, else h11"


def table(results: dict[str, dict[str, list[Figures]]]) -> None:
    print()
    print("| code | endpoint | tool | req/s | p50 ms | p99 ms | errors | service CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    for label, by_ep in results.items():
        for name, figures in by_ep.items():
            for f in figures:
                if f.requests == 0:
                    print(f"| {label} | {name} | {f.tool} | 0 | no answer within the phase "
                          f"| | | {f.cpu_s:.1f} |")  # fmt: skip
                    continue
                print(
                    f"| {label} | {name} | {f.tool} | {f.rps:,.0f} | {f.p50_ms:.2f} | "
                    f"{f.p99_ms:.2f} | {f.errors:,} of {f.requests:,} | {f.cpu_s:.1f} |"
                )
    if len(results) == 2:
        (b_label, before), (a_label, after) = results.items()
        print()
        for name, figures in after.items():
            for f in figures:
                old = next((o for o in before.get(name, []) if o.tool == f.tool), None)
                if old is None or old.requests == 0 or f.requests == 0:
                    if old is not None:
                        print(f"ratio {a_label}/{b_label}, {name}, {f.tool}: {b_label} answered "
                              "nothing within the phase")  # fmt: skip
                    continue
                print(
                    f"ratio {a_label}/{b_label}, {name}, {f.tool}: req/s x{f.rps / old.rps:.1f}, "
                    f"p99 x{f.p99_ms / old.p99_ms:.3f}"
                )


def export(ref: str, tmp: Path) -> Path:
    """The tree of git revision ``ref`` in a directory of its own."""
    target = tmp / f"src-{re.sub(r'[^A-Za-z0-9_.-]', '_', ref)}"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", ref], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


async def main(args: argparse.Namespace) -> int:
    missing = [
        t for t in args.tools if not (shutil.which("wrk") if t == "wrk" else VEGETA.exists())
    ]
    if missing:
        print(
            "bench/api.py: missing load generator(s): "
            + ", ".join(
                "wrk (apt-get install -y wrk)"
                if t == "wrk"
                else f"vegeta at {VEGETA} (go install github.com/tsenart/vegeta/v12@v12.13.0)"
                for t in missing
            ),
            file=sys.stderr,
        )
        return 2
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    print(f"uptime at start: {uptime()}", flush=True)
    started = await ensure_local_broker()
    results: dict[str, dict[str, list[Figures]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="qw-apibench-") as tmp_name:
            tmp = Path(tmp_name)
            runs: list[tuple[str, Path, str]] = []
            if args.compare:
                before = args.before_python or sys.executable
                runs.append((f"before ({args.compare})", export(args.compare, tmp), before))
            runs.append(("after" if args.compare else "this code", REPO_ROOT, sys.executable))
            for label, source, python in runs:
                results[label] = await measure(label, source, python, args, local_kafka(), tmp)
    finally:
        await release_local_broker(started)
    table(results)
    print()
    print(f"uptime at end: {uptime()}")
    command = " ".join([Path(sys.executable).name, *sys.argv])
    masked = re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", command)  # no password shown
    print(f"command: {masked}")
    print(
        f"database: {'PostgreSQL' if args.pg else 'SQLite'}; {args.queues} queues; each phase "
        f"{args.duration:g} s; wrk -t2 -c{args.connections}; vegeta at {args.rate}/s, "
        f"max {args.max_workers} workers"
    )
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--queues", type=int, default=1000)
    p.add_argument(
        "--pg", metavar="URL", help="PostgreSQL (postgresql+psycopg://...) instead of SQLite"
    )
    p.add_argument("--duration", type=float, default=15.0, help="seconds per load phase (<= 20)")
    p.add_argument(
        "--rate", default="2000", help="vegeta's fixed rate(s), requests/s: 2000 or 2000,500"
    )
    p.add_argument("--connections", type=int, default=32, help="wrk's connections")
    p.add_argument("--max-workers", type=int, default=256, help="vegeta's most workers")
    p.add_argument("--page", type=int, default=100, help="queues per page of GET /v1/queues")
    p.add_argument("--batch", type=int, default=100, help="ids per POST /v1/health:batch")
    p.add_argument("--port", type=int, default=38010, help="the service's port (loopback)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--tools", default="wrk,vegeta", help="which of wrk,vegeta to run")
    p.add_argument("--compare", metavar="REF", help="also measure git revision REF first")
    p.add_argument(
        "--before-python",
        metavar="PY",
        help="the interpreter for REF (a virtualenv with REF's dependencies; default this one)",
    )
    args = p.parse_args(argv)
    args.tools = [t for t in args.tools.split(",") if t]
    try:
        args.rates = [int(r) for r in args.rate.split(",") if r]
    except ValueError:
        p.error("--rate: comma-separated integers")
    if not args.rates or not all(1 <= r <= 20_000 for r in args.rates):
        p.error("--rate: 1 to 20,000 requests/s")
    if not set(args.tools) <= {"wrk", "vegeta"}:
        p.error("--tools: a comma-separated subset of wrk,vegeta")
    if not 0 < args.duration <= MAX_PHASE_S:
        p.error(f"--duration: more than 0 and at most {MAX_PHASE_S:g} s")
    if not 1 <= args.queues <= 5000 or not 1 <= args.batch <= 500 or not 1 <= args.page <= 1000:
        p.error("--queues 1..5000, --batch 1..500, --page 1..1000")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
