"""The demo's ports: refused in one line when taken (before anything starts), and only the
demo's own child counts as the service answering on its port."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from rich.console import Console
from typer.testing import CliRunner

from services.demo.orchestrator import (
    DemoOptions,
    Services,
    busy_ports,
    listener_pid_owns,
    remove_run_files,
    run_demo,
    wait_http,
)
from shared.runtime import http_server, log_when_listening
from tests.monitoring import free_port


def listening() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


taken = pytest.fixture(listening, name="taken")
taken_too = pytest.fixture(listening, name="taken_too")  # a second one


def test_free_ports_pass_and_a_taken_one_is_named_with_the_way_out(taken: int) -> None:
    free = DemoOptions(ingest_port=free_port(), alerts_port=free_port(), receiver_port=free_port())
    assert busy_ports(free) == []
    (reason,) = busy_ports(DemoOptions(ingest_port=free_port(), alerts_port=taken))
    assert (
        f"port {taken} (the demo's alerts, set by --alerts-port or QW_DEMO_ALERTS_PORT)" in reason
    )
    assert "--alerts-port" in reason
    assert "QW_DEMO_ALERTS_PORT" in reason
    (same,) = busy_ports(DemoOptions(ingest_port=free.ingest_port, alerts_port=free.ingest_port))
    assert "cannot share port" in same


async def test_run_demo_refuses_taken_ports_before_starting_anything(
    taken: int, taken_too: int
) -> None:
    out, err = io.StringIO(), io.StringIO()
    opts = DemoOptions(ingest_port=taken, alerts_port=free_port(), receiver_port=taken_too)
    assert await run_demo(opts, Console(file=out, width=100), Console(file=err, width=60)) == 2
    assert out.getvalue() == ""  # nothing on standard output: no broker, no wall address
    lines = err.getvalue().splitlines()
    assert len(lines) == 1, lines  # every taken port, in one line (however narrow)
    assert (
        f"port {taken} (the demo's ingest, set by --ingest-port or QW_DEMO_INGEST_PORT)" in lines[0]
    )
    assert (
        f"port {taken_too} (the demo's webhook receiver, set by --receiver-port or "
        "QW_DEMO_RECEIVER_PORT)" in lines[0]
    )
    assert "--alerts-port" not in lines[0]  # the free one is not named


def test_cli_exits_2_with_one_line_for_a_port_named_by_the_environment(taken: int) -> None:
    from services.cli import app

    env = {
        "QW_DEMO_RECEIVER_PORT": str(taken),
        "QW_DEMO_INGEST_PORT": str(free_port()),
        "QW_DEMO_ALERTS_PORT": str(free_port()),
    }
    result = CliRunner(env=env).invoke(app, ["demo"])
    assert result.exit_code == 2, result.output
    assert result.stdout == "", result.stdout  # the refusal goes to standard error
    assert f"port {taken} (the demo's webhook receiver, set by --receiver-port or " in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_listener_is_told_apart_by_process(
    taken: int, sleeper: subprocess.Popen[bytes]
) -> None:
    assert listener_pid_owns(taken, os.getpid())
    assert not listener_pid_owns(taken, sleeper.pid)
    assert not listener_pid_owns(free_port(), os.getpid())


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A child process that listens on nothing."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield child
    child.kill()
    child.wait()


async def test_wait_http_takes_no_answer_from_another_server_on_the_port(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """Another server answers 200 on the port the demo's child was to take: that is not the
    child being up (the demo once admitted its queues into a `qwatch run` left running)."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    port = free_port()
    server = http_server(app, "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    services = Services({}, tmp_path)
    services.procs["ingest"] = sleeper
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn sets a flag, has no event
            await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await wait_http(f"http://127.0.0.1:{port}/healthz", services, 2.0, owner="ingest")
        await wait_http(f"http://127.0.0.1:{port}/healthz", services, 2.0)  # no owner: any
    finally:
        server.should_exit = True
        await task


async def test_listening_is_logged_once_bound_not_before(caplog: pytest.LogCaptureFixture) -> None:
    """ingest said "listening" before its bind, which then failed (address in use)."""
    log = logging.getLogger("qw-test-listening")
    caplog.set_level(logging.INFO, logger=log.name)
    port = free_port()
    server = http_server(FastAPI(), "127.0.0.1", port)
    said = log_when_listening(server, log, "listening on %d", port)
    await asyncio.sleep(0.3)
    assert "listening" not in caplog.text  # not serving yet: nothing said
    task = asyncio.create_task(server.serve())
    await asyncio.wait_for(said, 10)
    assert server.started
    assert f"listening on {port}" in caplog.text
    server.should_exit = True
    await task


def test_run_files_go_and_only_a_failed_runs_logs_stay(tmp_path: Path) -> None:
    for run in ("ok", "failed"):
        d = tmp_path / run
        (d / "logs").mkdir(parents=True)
        (d / "logs" / "scorer.log").write_text("x")
        (d / "demo-scorer" / "rocksdb").mkdir(parents=True)
        (d / "qualitywatch.db").write_text("x")
    remove_run_files(tmp_path / "ok", keep_logs=False)
    remove_run_files(tmp_path / "failed", keep_logs=True)
    assert not (tmp_path / "ok").exists()
    assert [p.name for p in (tmp_path / "failed").iterdir()] == ["logs"]
    assert (tmp_path / "failed" / "logs" / "scorer.log").read_text() == "x"
    remove_run_files(tmp_path / "gone", keep_logs=True)  # nothing there: nothing to do
