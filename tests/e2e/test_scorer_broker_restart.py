"""Broker restarts: the only broker stopped and restarted twice while the scorer drains a
backlog, and every count exact.

The test starts a broker of its own with ``deploy/local/kafka.sh`` (its own ports and state
directory: the shared test broker, which other tests and people use, is never touched). A
generator with known truth (``tests/e2e/chaos.py``) writes a backlog to it, a scorer worker
process drains it, and at two random points of the catch-up the broker goes away: once with
``kafka.sh stop`` (SIGTERM, a clean shutdown) and once with SIGKILL of its JVM (no shutdown
at all, the log recovered on start), in random order, each kept down a few seconds and
started again with its data. While kafka.sh brings the broker back the worker is held with
SIGSTOP (it can do nothing useful without a broker anyway), so that the test reads the
group's progress again before the worker races through the rest of the backlog. The worker either rides an outage out or exits; a worker that
exits must exit non-zero with a clear line in its log, and is restarted. At the end what it
published is compared exactly with the truth and the pure scorer (``chaos.compare``).

With the defaults the worker rides both outages out: its producer retries for up to Faust's
``producer_request_timeout`` (20 minutes) and its commit waits for the broker. Faust reads
that setting from the environment: with ``PRODUCER_REQUEST_TIMEOUT=8`` the worker's sends
expire during an outage, it exits 1 with "a changelog or dead-letter send failed; stopping"
and is restarted, which exercises the other path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from services.demo.orchestrator import KAFKA_SCRIPT, Services, local_kafka
from shared.kafka import wait_for_broker
from shared.settings import REPO_ROOT, KafkaSettings
from tests.conftest import unavailable
from tests.e2e.chaos import (
    chaos_settings,
    collect,
    compare,
    expected,
    generate,
    produce,
    progress,
    scorer_env,
)
from tests.integration.kafka_helpers import wait_for_progress

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

# Not the shared test broker's 19092/19093 nor the demo's 9092/9095; below the ephemeral
# range, so no outgoing connection takes them while the broker is down.
PORT = int(os.environ.get("QW_TEST_RESTART_KAFKA_PORT", "29092"))
CONTROLLER_PORT = int(os.environ.get("QW_TEST_RESTART_KAFKA_CONTROLLER_PORT", "29093"))
QUEUES = [f"restart-{i}" for i in range(8)]
HOURS, PER_HOUR = 72, 750  # a backlog of tens of seconds of work for the worker (250 a
# queue-hour was drained within one commit interval once the scorer got faster)
# a worker that exits must say why: the glue's own line, or Faust's crash report
CLEAR_EXIT = re.compile(
    r"CRITICAL.*(send failed; stopping|cannot read offsets)|Crashed reason=|experienced a crash"
)
# Faust's line when a commit waited (here: for the broker) longer than its interval
STALLED_COMMIT = re.compile(r"Timer commit is overlapping \(interval=[\d.]+ runtime=([\d.]+)\)")

T = TypeVar("T")


class PrivateBroker:
    """A single-node broker of this test alone: ``kafka.sh`` with its own ports and state."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.bootstrap = f"127.0.0.1:{PORT}"
        self.env = {
            **os.environ,
            "QW_STATE_DIR": str(state_dir),
            "QW_KAFKA_PORT": str(PORT),
            "QW_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
            "QW_KAFKA_REPLICATION_FACTOR": "1",
            "QW_KAFKA_MIN_INSYNC_REPLICAS": "1",
            # kafka.sh's heap; the client compiler only: the broker starts three times
            "QW_KAFKA_HEAP_OPTS": "-Xms256m -Xmx1g -XX:TieredStopAtLevel=1",
        }

    def reuse_classpath(self) -> None:
        """Without a classpath file in its state directory kafka.sh resolves the broker's
        jars with Maven (seconds of another JVM): copy the shared broker's, if there is one.
        kafka.sh checks it (newer than its pom, every jar present) and resolves again if not."""
        shared = [os.environ.get("QW_STATE_DIR") or REPO_ROOT / "var", REPO_ROOT / "var"]
        for found in [f for d in shared for f in sorted(Path(d, "kafka").glob("classpath-*.txt"))]:
            (self.state_dir / "kafka").mkdir(parents=True, exist_ok=True)
            shutil.copy2(found, self.state_dir / "kafka" / found.name)  # with its mtime
            return

    async def script(self, command: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run, ["bash", str(KAFKA_SCRIPT), command], env=self.env,
            capture_output=True, text=True, check=False, timeout=240,
        )  # fmt: skip

    async def start(self) -> float:
        """Start (again, with its data) and wait until it serves; the seconds it took."""
        t0 = time.monotonic()
        proc = await self.script("start")
        if proc.returncode != 0:
            raise RuntimeError(f"kafka.sh start failed:\n{proc.stderr[-3000:]}")
        return time.monotonic() - t0

    async def stop(self) -> None:
        """A clean stop: SIGTERM, the broker shuts down in order."""
        proc = await self.script("stop")
        assert proc.returncode == 0, proc.stderr

    def pid(self) -> int:
        """The broker's JVM, from the pid file kafka.sh writes (checked: ours, alive)."""
        pid = int((self.state_dir / "kafka" / "kafka.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert b"kafka.Kafka" in cmdline, cmdline
        assert str(self.state_dir).encode() in cmdline, cmdline
        return pid

    async def kill(self) -> None:
        """SIGKILL of the JVM: no shutdown, the log is recovered on the next start."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid):
            assert time.monotonic() < deadline, f"broker pid {pid} survived SIGKILL"
            await asyncio.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class Exit:
    code: int
    line: str  # the clear line of its log, or ""
    tail: str


class Worker:
    """The scorer worker process; one that exited is recorded and started again."""

    def __init__(self, services: Services, log: Path) -> None:
        self.services = services
        self.log = log
        self.exits: list[Exit] = []
        self._log_from = 0

    def start(self) -> None:
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        self.services.start("scorer")

    def check(self) -> None:
        p = self.services.procs["scorer"]
        if p.poll() is None:
            return
        text = self.log.read_bytes()[self._log_from :].decode(errors="replace")
        clear = next((ln for ln in text.splitlines() if CLEAR_EXIT.search(ln)), "")
        self.exits.append(Exit(p.returncode, clear.strip(), text[-3000:]))
        del self.services.procs["scorer"]
        self.start()

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP the worker (its whole process group) for the block, SIGCONT after."""
        p = self.services.procs["scorer"]
        alive = p.poll() is None
        if alive:
            os.killpg(p.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            if alive and p.poll() is None:
                os.killpg(p.pid, signal.SIGCONT)

    async def meanwhile(self, work: Awaitable[T]) -> T:
        """``work``, restarting the worker whenever it exits in the meantime."""
        task = asyncio.ensure_future(work)
        while not task.done():
            self.check()
            await asyncio.wait({task}, timeout=0.2)
        return task.result()


async def _progress(kafka: KafkaSettings) -> tuple[int, int]:
    """The scorer group's (committed, end); retried while a restarted broker settles."""
    for attempt in range(20):
        try:
            return await asyncio.wait_for(progress(kafka), 30)
        except Exception:
            if attempt == 19:
                raise
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


async def test_scorer_counts_exactly_across_broker_restarts(tmp_path: Path) -> None:
    seed = int(os.environ.get("QW_CHAOS_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    t_start = time.monotonic()
    broker = PrivateBroker(tmp_path / "broker")
    for port in (PORT, CONTROLLER_PORT):
        if not _port_free(port):
            unavailable(f"port 127.0.0.1:{port} for the private broker is taken")
    kafka = local_kafka(bootstrap=broker.bootstrap, topic_prefix="restart-", partitions=2)
    broker.reuse_classpath()
    # the broker's JVM starts while this process runs the reference
    starting = asyncio.ensure_future(broker.start())
    await asyncio.sleep(0)
    msgs, truth, n_events = generate(QUEUES, seed, hours=HOURS, per_hour=PER_HOUR)
    exp = expected(chaos_settings(kafka), msgs)
    outages: list[str] = []
    try:
        try:
            first_start = await starting
        except RuntimeError as exc:
            unavailable(str(exc))
        await wait_for_broker(kafka, timeout=60)
        await produce(kafka, msgs)

        services = Services(scorer_env(kafka, tmp_path / "scorer"), tmp_path / "logs")
        worker = Worker(services, tmp_path / "logs" / "scorer.log")
        modes = ["stop", "kill"]
        rng.shuffle(modes)
        # The first outage begins a second or so after the group's first commit, the second
        # a second or so after the worker is let go again: by time, not by a share of the
        # backlog, because the committed offset moves in jumps (one a commit interval, and
        # before bound_commit_flush in services/scorer/app.py a worker draining a backlog
        # committed its first message and then nothing until the end).
        first = 1 / 4000  # one committed message of the ~2,000 batches
        try:
            worker.start()
            for mode in modes:
                if not outages:
                    await wait_for_progress(lambda: _progress(kafka), worker.check, first)
                await worker.meanwhile(asyncio.sleep(rng.uniform(0.5, 1.5)))
                done, end = await worker.meanwhile(_progress(kafka))
                assert done < end, f"the backlog was committed before outage {len(outages) + 1}"
                t0 = time.monotonic()
                await worker.meanwhile(broker.stop() if mode == "stop" else broker.kill())
                await worker.meanwhile(asyncio.sleep(rng.uniform(1, 4)))
                # The worker saw the broker go; it is held still while kafka.sh starts the
                # broker and waits until it serves and until this test reads the group's
                # offsets again: a worker free meanwhile drains the rest of the backlog at
                # full speed (it is fast) before the next outage can find it mid-way.
                worker.check()
                with worker.frozen():
                    took = await broker.start()
                    await _progress(kafka)
                outages.append(
                    f"{mode} at {done}/{end}, down {time.monotonic() - t0:.0f}s (start {took:.0f}s)"
                )
            await wait_for_progress(lambda: _progress(kafka), worker.check)
            got = await collect(kafka, truth, QUEUES)
        finally:
            services.stop()
    finally:
        if not starting.done():
            await asyncio.wait({starting})
        await broker.stop()

    context = f"seed {seed}, outages {outages}"
    for e in worker.exits:
        assert e.code != 0, f"worker exited 0 by itself:\n{e.tail}"
        assert e.line, f"worker exited {e.code} without a clear reason:\n{e.tail}"
    lost, doubled = compare(got, truth, exp, QUEUES, context)
    log = (tmp_path / "logs" / "scorer.log").read_text(errors="replace")
    stalls = [float(x) for x in STALLED_COMMIT.findall(log)]
    behaviour = (
        f"rode both out (longest commit stall {max(stalls, default=0):.0f}s)"
        if not worker.exits
        else f"exited {len(worker.exits)}x and was restarted ("
        + "; ".join(f"code {e.code}: {e.line[-160:]}" for e in worker.exits)
        + ")"
    )
    print(
        f"\nbroker restarts: {n_events:,} events in {len(msgs):,} batches, outages "
        f"[{'; '.join(outages)}], worker {behaviour}; {len(got.points)} subgroups and "
        f"{len(exp.breaches)} breaches compared: lost {lost}, doubled {doubled} "
        f"(seed {seed}, first broker start {first_start:.0f}s, "
        f"{time.monotonic() - t_start:.0f}s in all)"
    )
