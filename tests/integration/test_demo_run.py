"""``qwatch demo`` run for real (the shared broker, its three services on free ports): a
service that dies mid-run ends the demo with one line naming it and its log, exit 1, and the
run's topics, deleted at the end, are not recreated by the simulator's producer."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import signal

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console

from services.demo.orchestrator import DemoOptions, listener_pid_owns, run_demo
from shared.settings import local_state_dir
from tests.monitoring import free_port

pytestmark = pytest.mark.kafka


def listener_pid(port: int) -> int:
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and listener_pid_owns(port, int(entry)):
            return int(entry)
    raise AssertionError(f"no process listens on {port}")


async def _topics(bootstrap: str, prefix: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t for t in await admin.list_topics() if t.startswith(prefix)}
    finally:
        await admin.close()


async def test_a_service_dying_mid_run_ends_the_demo_in_one_line(kafka_bootstrap: str) -> None:
    opts = DemoOptions(ingest_port=free_port(), alerts_port=free_port(), receiver_port=free_port())
    out = io.StringIO()
    demo = asyncio.create_task(run_demo(opts, Console(file=out, width=100)))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 180
    while "health API" not in out.getvalue():  # printed once both services answer
        assert not demo.done(), out.getvalue()
        assert loop.time() < deadline, out.getvalue()
        await asyncio.sleep(0.3)
    text = out.getvalue()
    # the wall's address comes first, before the broker and the services
    assert text.splitlines()[0].startswith(f"wall: http://127.0.0.1:{opts.alerts_port}/wall")
    run = re.search(r"demo\d{14}", text)
    assert run, text
    await asyncio.sleep(3)  # the simulator is producing
    os.kill(listener_pid(opts.alerts_port), signal.SIGKILL)
    assert await asyncio.wait_for(demo, 120) == 1
    text = out.getvalue()
    assert "Traceback" not in text, text
    (line,) = [ln for ln in text.splitlines() if "service stopped" in ln]
    assert "the demo's alerts service stopped (exit code -9)" in line
    assert f"{run.group()}/logs/alerts.log" in line
    # the failed run's files are gone but its logs, and the demo says where they are
    run_dir = local_state_dir() / "demo" / run.group()
    assert [p.name for p in run_dir.iterdir()] == ["logs"]
    assert f"this run's logs are kept in {run_dir / 'logs'}" in text
    shutil.rmtree(run_dir)
    prefix = run.group() + "-"
    while await _topics(kafka_bootstrap, prefix):  # deletion reaches the metadata async
        assert loop.time() < deadline + 60
        await asyncio.sleep(0.5)
    await asyncio.sleep(5)
    assert not await _topics(kafka_bootstrap, prefix)  # nothing recreated them


async def test_a_finished_run_leaves_neither_files_nor_topics(kafka_bootstrap: str) -> None:
    """A short scenario played to its end: exit 0, the run's directory (scorer state,
    database, logs) removed, its topics deleted."""
    opts = DemoOptions(
        hours=3, speed=1800, queues=4, ingest_port=free_port(), alerts_port=free_port(),
        receiver_port=free_port(),
    )  # fmt: skip
    out = io.StringIO()
    assert await asyncio.wait_for(run_demo(opts, Console(file=out, width=100)), 600) == 0
    text = out.getvalue()
    assert "Traceback" not in text, text
    assert "scenario over" in text, text
    run = re.search(r"demo\d{14}", text)
    assert run, text
    assert not (local_state_dir() / "demo" / run.group()).exists()
    assert "logs are kept" not in text
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while await _topics(kafka_bootstrap, run.group() + "-"):
        assert loop.time() < deadline
        await asyncio.sleep(0.5)


async def test_ctrl_c_ends_the_demo_as_interrupted(kafka_bootstrap: str) -> None:
    """Ctrl-C mid-run printed the ending of a finished run: 'scenario over', the drifted
    queue the run keeps hidden until its end, and 'This machine was too busy for the demo's
    speed', with exit status 0. It says it was interrupted now, exit 130, and cleans up as
    a finished run does."""
    opts = DemoOptions(ingest_port=free_port(), alerts_port=free_port(), receiver_port=free_port())
    out = io.StringIO()
    demo = asyncio.create_task(run_demo(opts, Console(file=out, width=100)))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 180
    while "health API" not in out.getvalue():
        assert not demo.done(), out.getvalue()
        assert loop.time() < deadline, out.getvalue()
        await asyncio.sleep(0.3)
    await asyncio.sleep(3)  # the simulator is producing
    os.kill(os.getpid(), signal.SIGINT)  # (the demo's own handler takes it)
    assert await asyncio.wait_for(demo, 120) == 130
    text = out.getvalue()
    assert "Traceback" not in text, text
    assert re.search(r"\ninterrupted at simulated \+\d+\.\d h of 34: \d+ alert\(s\) received", text)
    for hidden in ("scenario over", "too busy", "drifted queue"):
        assert hidden not in text, text
    run = re.search(r"demo\d{14}", text)
    assert run, text
    assert not (local_state_dir() / "demo" / run.group()).exists()
