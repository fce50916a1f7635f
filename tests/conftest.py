"""Test services: a real Kafka broker (started by deploy/local/kafka.sh when none answers).

Under CI=true a missing service fails the test; elsewhere it skips it, so a laptop without
Java can still run the unit tests.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from services.demo.orchestrator import local_kafka
from shared.kafka import wait_for_broker
from shared.settings import KafkaSettings

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# Services the tests start run in development with no API key, unless a test makes keys:
# a key a developer created for their own demo (var/api-keys.json) must not lock them out.
os.environ["QW_API_KEYS_FILE"] = str(
    Path(os.environ.get("TMPDIR", "/tmp")) / f"qw-test-no-keys-{uuid.uuid4().hex}.json"
)
# The tests' events are dated from a fixed day (tests/factories.py, T0): the ingest processes
# they start take every time from 2000-01-01 on (the floor), so the suite does not age out of
# QW_INGEST_MAX_AGE_DAYS, and a schema-valid time the contract test sends is taken.
os.environ["QW_INGEST_MAX_AGE_DAYS"] = "36500"


def unavailable(what: str) -> None:
    """Fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: a test that needs a service fails, never skips)")
    pytest.skip(what)


def need_module(name: str) -> ModuleType:
    """Import an optional package a test needs (pyarrow, in the [dev] extra): missing, it
    fails the test under CI and skips it (or the module that asks at import) elsewhere."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        what = f"{name} is not installed ({exc}); pip install -e '.[dev]' brings it"
        if IN_CI:
            pytest.fail(f"{what} (CI=true: a test that needs it fails, never skips)")
        pytest.skip(what, allow_module_level=True)


def _reachable(settings: KafkaSettings, timeout: float) -> bool:
    try:
        asyncio.run(wait_for_broker(settings, timeout=timeout))
    except TimeoutError:
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    settings = local_kafka()
    started = False
    if not _reachable(settings, 1.5):
        port = settings.bootstrap.split(",")[0].rpartition(":")[2]
        env = {**os.environ, "QW_KAFKA_PORT": port}
        proc = subprocess.run(
            ["bash", str(REPO / "deploy/local/kafka.sh"), "start"],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            unavailable(
                f"no Kafka broker at {settings.bootstrap} and kafka.sh start failed:\n{proc.stderr[-3000:]}"
            )
        started = True
        if not _reachable(settings, 60):
            unavailable(f"kafka.sh started a broker but {settings.bootstrap} does not answer")
    yield settings.bootstrap
    if started and not os.environ.get("QW_KEEP_KAFKA"):
        subprocess.run(["bash", str(REPO / "deploy/local/kafka.sh"), "stop"], check=False)


@pytest.fixture
def topic_prefix() -> str:
    """Topics (and consumer groups) private to one test."""
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, topic_prefix: str) -> KafkaSettings:
    """The local single-node broker's: one replica, whatever QW_KAFKA_REPLICATION_FACTOR says."""
    return local_kafka(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, partitions=2)
