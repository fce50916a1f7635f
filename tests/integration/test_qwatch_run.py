"""``qwatch run`` for real (the shared broker, its services on free ports): its logs go under
QW_STATE_DIR, as the local scripts' state does, and it says where."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.demo.orchestrator import local_kafka
from shared.settings import REPO_ROOT
from tests.monitoring import free_port

pytestmark = pytest.mark.kafka

SERVICES = ("ingest", "scorer", "alerts")


def _repo_logs() -> dict[str, tuple[int, int] | None]:
    """What the repository's own var/run/logs held, to see that ``run`` left it alone."""
    found: dict[str, tuple[int, int] | None] = {}
    for name in SERVICES:
        log = REPO_ROOT / "var" / "run" / "logs" / f"{name}.log"
        found[name] = (log.stat().st_size, log.stat().st_mtime_ns) if log.exists() else None
    return found


def test_run_writes_its_logs_under_the_state_dir_and_says_where(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A user's `QW_STATE_DIR=... qwatch run` wrote its logs to the repository's var/run."""
    ingest_port = free_port()
    kafka = local_kafka(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, partitions=2)
    env = {
        **os.environ,
        **kafka.as_env(),
        "QW_STATE_DIR": "state",  # relative: to the working directory, as kafka.sh reads it
        "QW_INGEST_PORT": str(ingest_port),
        "QW_ALERTS_PORT": str(free_port()),
        "QW_DB_URL": f"sqlite+aiosqlite:///{tmp_path}/qw.db",
        "QW_SCORER_DATA_DIR": str(tmp_path / "scorer"),
    }
    before = _repo_logs()
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "run"], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        logs = tmp_path / "state" / "run" / "logs"
        assert line == f"ingest, scorer and alerts running; logs in {logs}; Ctrl-C stops them\n"
        deadline = time.monotonic() + 90
        while True:  # the services are up, writing where it said
            assert proc.poll() is None, line + proc.stdout.read()
            try:
                httpx.get(f"http://127.0.0.1:{ingest_port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "ingest never answered"
                time.sleep(0.5)
        assert sorted(p.name for p in logs.iterdir()) == [f"{n}.log" for n in sorted(SERVICES)]
        assert _repo_logs() == before
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    # a stop says so (a trial found it silent on SIGTERM)
    assert out.splitlines()[-2:] == [
        "SIGTERM received: stopping ingest, scorer and alerts",
        "stopped",
    ], out


def test_run_refuses_a_bad_setting_before_it_says_running(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """From a new user's trial: with a broker up, a setting only alerts refuses was printed
    as "running" first, and the refusal came later from the alerts child's log."""
    kafka = local_kafka(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, partitions=2)
    env = {
        **os.environ, **kafka.as_env(), "QW_STATE_DIR": str(tmp_path / "state"),
        "QW_INGEST_PORT": str(free_port()), "QW_ALERTS_PORT": str(free_port()),
        "QW_ALERTS_WEBHOOK_URLS": '["https://hooks.example.com/a", "http://127.0.0.1/b"]',
    }  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "services.cli", "run"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("qwatch: invalid settings: QW_ALERTS_WEBHOOK_URLS[1] "), line
    assert "loopback" in line
    assert not (tmp_path / "state" / "run").exists()  # no service started
