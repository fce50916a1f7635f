"""The OpenAPI contract of both HTTP services, checked by schemathesis against them running.

Ingest runs as its own process on the real broker; alerts as its own process with SQLite and
its consumer on the broker, fed a snapshot and a breach the way the scorer publishes them,
so the health, chart and alert endpoints answer with data, not only 404s. Schemathesis
(pinned in the dev extra) runs every check it has (server errors, undocumented statuses,
response schemas and headers, negative data refused, positive data accepted, unsupported
methods, ...) over every phase, stateful included (the alerts document's OpenAPI links), with
a fixed seed and a bounded example count. Both documents must come out with no failure.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TypeAlias

import httpx
import pytest

from services.demo.orchestrator import Services, wait_http
from shared import codec
from shared.apikeys import KeyStore
from shared.events import SiteWindows
from shared.kafka import ensure_topics, make_producer
from shared.settings import REPO_ROOT, KafkaSettings
from shared.topics import queue_key
from tests.alerts_cases import make_breach, make_snapshot
from tests.integration.test_webhook_delivery import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

# examples per operation and phase: enough to cover every status and branch the documents
# name (the coverage phase adds every boundary case on top), small enough for < 60 s in all
MAX_EXAMPLES = 6

Completed: TypeAlias = subprocess.CompletedProcess[str]


def schemathesis(
    base_url: str, phases: str, log: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{base_url}/openapi.json",
        "--checks", "all", "--phases", phases, "--max-examples", str(MAX_EXAMPLES),
        "--seed", "20261202", "--workers", "1", "--request-timeout", "10", "--no-color", *options,
    ]  # fmt: skip
    # run from the test's folder (schemathesis keeps a cache where it runs); the hooks
    # module is imported from the repository
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.integration.contract_hooks",
        "PYTHONPATH": str(REPO_ROOT),
    }
    proc = subprocess.run(
        command, cwd=log.parent, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    log.write_text(proc.stdout + proc.stderr)
    return proc


def verdict(proc: subprocess.CompletedProcess[str]) -> str:
    """The run's summary, or its whole output when it failed."""
    out = proc.stdout + proc.stderr
    return out if proc.returncode else out[-1500:]


async def _seed_alerts(
    kafka: KafkaSettings, base_url: str, services: Services, auth: tuple[str, ...] = ()
) -> None:
    """A snapshot and a breach of queue ``q-1``, produced as the scorer does; back when the
    alerts API serves both."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        # with sites, so each site's health is in the answers whose schema is checked
        site = SiteWindows(
            decisions_24h=400, n_24h=100, errors_24h=7, decisions_7d=2800, n_7d=700, errors_7d=40
        )
        snap = make_snapshot("q-1", 3, ["p_chart_ucl"]).model_copy(
            update={
                "sites": {
                    "manila": site,
                    "(other)": site.model_copy(update={"n_24h": 0, "errors_24h": 0}),
                }
            }
        )
        await producer.send_and_wait(
            kafka.topics.snapshots, codec.dumps(snap), key=queue_key("q-1")
        )
        breach = make_breach("q-1", 3)
        await producer.send_and_wait(
            kafka.topics.breaches, codec.dumps(breach), key=queue_key("q-1")
        )
    finally:
        await producer.stop()
    deadline = time.monotonic() + 60
    headers = dict([auth[1].split(": ", 1)]) if auth else {}
    async with httpx.AsyncClient(base_url=base_url, timeout=5, headers=headers) as client:
        while time.monotonic() < deadline:
            services.check()
            if (await client.get("/v1/queues")).json() and (await client.get("/v1/alerts")).json():
                return
            await asyncio.sleep(0.3)
    pytest.fail("the alerts service did not serve the seeded snapshot and breach within 60 s")


@pytest.mark.parametrize(
    ("keys", "protect_reads"),
    [(True, False), (False, False), (True, True)],
    ids=["with-a-key", "development-without-keys", "reads-protected"],
)
async def test_both_services_keep_their_openapi_contract(
    kafka_settings: KafkaSettings, tmp_path: Path, keys: bool, protect_reads: bool
) -> None:
    """With a key (as in production): every phase, and schemathesis checks that no key or a
    bad one is refused where the documents declare security. Without a key file (the default
    development set-up, where every call is served without a key): the documents declare no
    security, so the ignored-auth check has nothing to flag; a short run (fuzzing) says so.
    With reads protected (QW_API_PROTECT_READS), every read of the alerts service declares
    and enforces a key: its refusals, the wall's HTML page's included (ST105: its 401 was
    documented as text/html), are checked by the examples and coverage phases."""
    await ensure_topics(kafka_settings)
    ports = {"ingest": free_port(), "alerts": free_port()}
    auth: tuple[str, ...] = ()
    if keys:
        # a key exists, so both services enforce keys where their documents declare them:
        # schemathesis calls with it, and checks that no key or a bad one is refused
        _, token = KeyStore(tmp_path / "api-keys.json").create("contract", ["admin"])
        auth = ("--header", f"Authorization: Bearer {token}")
    env = {
        **kafka_settings.as_env(),
        "QW_ENV": "development",
        "QW_API_KEYS_FILE": str(tmp_path / "api-keys.json"),  # absent without keys
        "QW_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'qw.db'}",
        "QW_INGEST_PORT": str(ports["ingest"]),
        # every schema-valid event must be taken (positive_data_acceptance), whatever queue
        # schemathesis makes up (its coverage phase runs no hook that could change it): open
        # mode with room for all; the refusal of unknown queues is tests/integration/
        # test_ingest_admission.py's
        "QW_INGEST_QUEUES": "open",
        "QW_INGEST_QUEUES_OPEN_MAX": "1000000",
        "QW_ALERTS_PORT": str(ports["alerts"]),
        "QW_API_PROTECT_READS": "true" if protect_reads else "false",
    }
    services = Services(env, tmp_path / "logs")
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    runs: dict[str, asyncio.Future[Completed]] = {}

    def start(name: str, service: str, phases: str, *options: str) -> None:
        log = tmp_path / f"st-{name}.log"
        runs[name] = asyncio.ensure_future(
            asyncio.to_thread(schemathesis, urls[service], phases, log, *options)
        )

    try:
        for name in ("ingest", "alerts"):
            services.start(name)
        await wait_http(f"{urls['ingest']}/healthz", services)
        if protect_reads:  # (ingest has no reads to protect: its runs are the others')
            pass
        elif keys:
            # the coverage phase tries every boundary case of a schema: on /v1/events, whose
            # body is both event schemas (the two other endpoints take one each, the same
            # components)
            start("ingest-coverage", "ingest", "coverage", "--include-path", "/v1/events", *auth)
        if not protect_reads:
            start("ingest", "ingest", "examples,fuzzing" if keys else "fuzzing", *auth)
        await wait_http(f"{urls['alerts']}/healthz", services)
        await _seed_alerts(kafka_settings, urls["alerts"], services, auth)
        # stateful where the document has links: a queue from the list to its health and
        # chart, an alert from the list to its acknowledgement
        # /wall/events is an endless server-sent event stream, which a request/response
        # checker can only time out on: its document is checked in tests/unit/test_wall.py
        # and its behaviour in a browser in tests/e2e/test_wall.py
        phases = "examples,coverage,fuzzing,stateful" if keys else "fuzzing"
        start(
            "alerts", "alerts", "examples,coverage" if protect_reads else phases,
            "--exclude-path", "/wall/events", *auth,
        )  # fmt: skip
        await asyncio.gather(*runs.values())
        services.check()  # neither service died under the run
        if not keys:  # the default development set-up: no operation asks for a key
            for url in urls.values():
                async with httpx.AsyncClient(base_url=url, timeout=5) as client:
                    doc = (await client.get("/openapi.json")).json()
                declared = [
                    (m, p) for p, ops in doc["paths"].items() for m, op in ops.items()
                    if "security" in op
                ]  # fmt: skip
                assert declared == [], (url, declared)
    finally:
        for run in runs.values():
            run.cancel()
        services.stop()
    for name, run in runs.items():
        proc = run.result()
        assert proc.returncode == 0, f"schemathesis found problems in {name}:\n{verdict(proc)}"
        assert "No issues found" in proc.stdout, verdict(proc)
