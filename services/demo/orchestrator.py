"""``qwatch demo``: the whole pipeline on this machine, from one command.

Starts (unless already there) a local Kafka broker with the project's own script, then the
three services as subprocesses, a signed-webhook receiver, and the traffic simulator with a
drift on one queue; shows live progress, error rates per queue and each alert as it arrives;
stops everything it started on exit or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from services.alerts.webhook_policy import generate_secret
from services.demo import monitoring
from services.demo.receiver import Inbox
from services.simulator.model import Drift, SimConfig, queue_profiles
from services.simulator.run import SimProgress, play
from shared import admission
from shared.kafka import wait_for_broker
from shared.runtime import INTERRUPTED, http_server
from shared.settings import REPO_ROOT, KafkaSettings, local_state_dir
from shared.stats.intervals import wilson_interval

KAFKA_SCRIPT = REPO_ROOT / "deploy" / "local" / "kafka.sh"


DRAIN_S = 15.0  # after the scorer caught up: time for the last alerts to arrive
DRAIN_MAX_S = 300.0  # the longest the demo waits for a scorer that is behind


def caught_up(queues: list[dict[str, Any]], expected: int, end: float) -> bool:
    """Every queue's latest snapshot is within an hour of the traffic's end (event time)."""
    if len(queues) < expected:
        return False
    try:
        as_of = [datetime.fromisoformat(q["snapshot"]["as_of"]).timestamp() for q in queues]
    except (KeyError, TypeError, ValueError):
        return False
    return min(as_of) >= end - 3600


def scored_through(queues: list[dict[str, Any]], start: float) -> float | None:
    """Hours of simulated traffic every queue is scored through (the slowest queue's latest
    snapshot, in event time, since ``start``), or None before every queue has one."""
    try:
        as_of = [datetime.fromisoformat(q["snapshot"]["as_of"]).timestamp() for q in queues]
    except (KeyError, TypeError, ValueError):
        return None
    return (min(as_of) - start) / 3600 if as_of else None


def _scored(prog: SimProgress, queues: list[dict[str, Any]]) -> str:
    """ "scored +20.5 h" beside the simulator's clock: how far behind the scorer is."""
    if not prog.sim_time:
        return ""
    through = scored_through(queues, prog.sim_start)
    return "" if through is None else f", scored +{max(0.0, through):.1f} h"


@dataclass(frozen=True)
class DemoOptions:
    hours: float = 34.0  # simulated hours
    speed: float = 600.0  # simulated seconds per real second
    seed: int = 7
    queues: int = 20
    decisions_per_hour: float = 2000.0
    # 10% random QA (production: 1-5%) so hourly subgroups hold n~200 and the demo's
    # compressed days need no longer subgroups; see docs/statistics.md on subgroup size.
    random_qa_rate: float = 0.10
    phase1_subgroups: int = 16
    drift_queue: str | None = None  # default: the 4th queue of the scenario
    drift_at_h: float = 22.0
    # a new cohort at one of the four sites: 24 points worse there, six on the whole queue
    drift_delta: float = -0.24
    drift_site: str | None = "dublin"  # None: the whole queue drifts
    invalid_every: int = 5000
    # on 127.0.0.1; qwatch demo --ingest-port/--alerts-port/--receiver-port or the
    # QW_DEMO_INGEST_PORT/QW_DEMO_ALERTS_PORT/QW_DEMO_RECEIVER_PORT variables change them
    ingest_port: int = 8001
    alerts_port: int = 8002
    receiver_port: int = 8099
    keep_kafka: bool = False
    # the real Prometheus and Alertmanager too (services/demo/monitoring.py)
    alertmanager: bool = False


def busy_ports(opts: DemoOptions) -> list[str]:
    """Why the demo cannot have its ports, one reason per port ([] when it can): each is
    bound once on 127.0.0.1 (as uvicorn does, SO_REUSEADDR) and let go at once, before
    anything starts, so another server there (``qwatch run`` still up, an earlier demo) is
    never taken for the demo's own."""
    ports = {
        "ingest": (opts.ingest_port, "--ingest-port", "QW_DEMO_INGEST_PORT"),
        "alerts": (opts.alerts_port, "--alerts-port", "QW_DEMO_ALERTS_PORT"),
        "webhook receiver": (opts.receiver_port, "--receiver-port", "QW_DEMO_RECEIVER_PORT"),
    }
    reasons: list[str] = []
    seen: dict[int, str] = {}
    for name, (port, flag, var) in ports.items():
        if port in seen:
            reasons.append(
                f"{name} and {seen[port]} cannot share port {port} (set {flag} or {var})"
            )
            continue
        seen[port] = name
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError as exc:
                reasons.append(
                    f"port {port} (the demo's {name}, set by {flag} or {var}) is taken "
                    f"({exc.strerror})"
                )
    return reasons


def ports_refusal(reasons: list[str]) -> str:
    """Every reason of ``busy_ports`` in one line: what the demo says before it refuses."""
    return (
        f"cannot start the demo on 127.0.0.1: {'; '.join(reasons)}. Stop what listens there "
        "(another qwatch run or demo?) or choose other ports"
    )


def listener_pid_owns(port: int, pid: int) -> bool:
    """Whether process ``pid`` holds the socket listening on TCP ``port`` (Linux's /proc;
    True where /proc cannot tell), so the demo talks to the service it started and not to
    another one that answers on the same port."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            # local address "0100007F:1F41", state 0A = LISTEN, inode in column 10
            if len(f) > 9 and f[3] == "0A" and int(f[1].rpartition(":")[2], 16) == port:
                inodes.add(f[9])
    if not inodes and not Path("/proc/net/tcp").exists():
        return True
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
    return False


def local_kafka(**values: Any) -> KafkaSettings:
    """Kafka settings for the local single-node broker (deploy/local/kafka.sh): one replica
    per topic, min.insync.replicas 1. A larger cluster the demo or a benchmark may be pointed
    at (QW_KAFKA_BOOTSTRAP) takes such throwaway topics as well."""
    return KafkaSettings(**values, replication_factor=1, min_insync_replicas=1)


def service_env(
    opts: DemoOptions, kafka: KafkaSettings, db_path: Path, secret: str
) -> dict[str, str]:
    """The configuration the demo hands its services (compressed time needs short grace)."""
    return {
        **kafka.as_env(),
        "QW_DB_URL": f"sqlite+aiosqlite:///{db_path}",
        "QW_INGEST_PORT": str(opts.ingest_port),
        "QW_ALERTS_PORT": str(opts.alerts_port),
        "QW_ALERTS_WEBHOOK_URLS": f'["http://127.0.0.1:{opts.receiver_port}/hook"]',
        "QW_ALERTS_WEBHOOK_SECRET": secret,
        "QW_ALERTS_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",  # the receiver is on loopback
        "QW_ALERTS_STALE_AFTER_S": "60",
        "QW_SCORER_SUBGROUP_SECONDS": "3600",
        "QW_SCORER_GRACE_SECONDS": str(4 * 3600),
        "QW_SCORER_PHASE1_SUBGROUPS": str(opts.phase1_subgroups),
        "QW_SCORER_SNAPSHOT_INTERVAL_S": "1",
        "QW_SCORER_DATA_DIR": str(db_path.parent / f"{kafka.topic_prefix}scorer"),
    }


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ServiceExitError(RuntimeError):
    """A service the demo (or ``qwatch run``) started has ended on its own."""

    def __init__(self, name: str, code: int, log: Path) -> None:
        self.name, self.code, self.log = name, code, log
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        lines = [ln for ln in tail.splitlines() if ln.strip()]
        self.last_line = lines[-1].strip() if lines else ""
        super().__init__(f"service {name} exited with {code}:\n{tail}")


class Services:
    """The three services as child processes, with logs in files."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, *, as_: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        """Start service ``name``; ``as_`` names this instance (e.g. a second scorer worker),
        its log file and its entry in ``procs``; ``env`` adds to the shared environment."""
        label = as_ or name
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{label}.log").open("ab")
        self.procs[label] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", name],
            env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            cwd=REPO_ROOT, start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip

    def check(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise ServiceExitError(name, p.returncode, self.log_dir / f"{name}.log")

    def end(self, label: str, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal one instance (SIGKILL for a crash), wait for it and forget it; its exit
        status is returned."""
        p = self.procs.pop(label)
        p.send_signal(sig)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait()

    def stop(self, timeout: float = 20.0) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, deadline - time.monotonic()))
            if p.poll() is None:
                p.kill()
                p.wait()


async def wait_http(
    url: str, services: Services, timeout: float = 90.0, *, owner: str | None = None
) -> None:
    """Wait until ``url`` answers 200 (a started service dying meanwhile raises
    ``ServiceExitError``). With ``owner`` (a label in ``services.procs``) only an answer from
    that child counts: it must hold the port's listening socket, not some other server."""
    deadline = time.monotonic() + timeout
    port = httpx.URL(url).port
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            services.check()
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200 and (
                    owner is None
                    or port is None
                    or listener_pid_owns(port, services.procs[owner].pid)
                ):
                    return
            await asyncio.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


async def admit_queues(ingest_url: str, kafka: KafkaSettings, queue_ids: list[str]) -> str:
    """Admit the demo's queues on its ingest, as an operator would: ``PUT /v1/queues/{id}``
    (ingest takes known queues only). Where API keys are on (a key exists in the key file)
    the demo has none: it writes the admitted-queues topic directly instead. Says how."""
    async with httpx.AsyncClient(base_url=ingest_url, timeout=10.0) as client:
        for q in queue_ids:
            r = await client.put(f"/v1/queues/{q}")
            if r.status_code in (401, 403):
                await admission.admit_all(kafka, queue_ids, "qwatch demo")
                return "on the admitted-queues topic (API keys are on)"
            r.raise_for_status()
    return "with PUT /v1/queues/{id}"


def kafka_script(*args: str) -> None:
    # with the replication the demo's services use, kafka.sh does not print its hint
    env = {**os.environ, **local_kafka().as_env()}
    subprocess.run(["bash", str(KAFKA_SCRIPT), *args], check=True, env=env)


async def ensure_local_broker() -> bool:
    """The broker QW_KAFKA_BOOTSTRAP names (the local default otherwise) if it answers, else
    deploy/local/kafka.sh started; True when it was started here (``release_local_broker``)."""
    try:
        await wait_for_broker(local_kafka(), timeout=2)
        return False
    except TimeoutError:
        await asyncio.to_thread(kafka_script, "start")
        return True


async def release_local_broker(started: bool) -> None:
    """Stop the broker ``ensure_local_broker`` started, if it did."""
    if started:
        await asyncio.to_thread(subprocess.run, ["bash", str(KAFKA_SCRIPT), "stop"], check=False)


BANDS = {
    # band -> (text, colour): the text says it, colour only repeats it
    "green": ("ok", "green"),
    "amber": ("watch", "yellow"),
    "red": ("ALERT", "bold red"),
    "insufficient_data": ("no data", "grey50"),
}


def _status(q: dict[str, Any], phase1: int) -> tuple[str, str]:
    s, h = q["snapshot"], q["health"]
    if s.get("baseline_p") is None:
        # the subgroups taken into the Phase I under way (a snapshot from before baseline
        # resets has only the subgroups closed)
        done = s.get("phase1_subgroups", s.get("subgroups_closed")) or 0
        return f"learning ({min(int(done), phase1)}/{phase1})", "grey50"
    return BANDS.get(h["band"], (h["band"], "white"))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


ERROR_RATES = (
    "error rates: the share of randomly sampled decisions reviewers judged wrong, as in the alerts"
)


def queue_rows(queues: list[dict[str, Any]], phase1: int) -> list[tuple[str, ...]]:
    """One row per queue, worst first: queue, status, error rate 24h, its 95% interval,
    n 24h, baseline error rate, recent error rate (EWMA), health score. Error rates only,
    as the alerts say them ("13.8% against the baseline 7.5%"), never accuracies beside."""
    order = {"red": 0, "amber": 1, "green": 2, "insufficient_data": 3}

    def worst_first(q: dict[str, Any]) -> tuple[int, float, str]:
        score = q["health"].get("score")
        return order.get(q["health"]["band"], 4), 101.0 if score is None else score, q["queue_id"]

    rows: list[tuple[str, ...]] = []
    for q in sorted(queues, key=worst_first):
        s, h = q["snapshot"], q["health"]
        acc, n = s.get("accuracy_24h"), int(s.get("n_24h") or 0)
        err = None if acc is None else 1 - acc
        interval = "-"
        if err is not None and n > 0:
            ci = wilson_interval(err * n, n)
            interval = f"{ci.lower:.1%}-{ci.upper:.1%}"
        text, colour = _status(q, phase1)
        rows.append(
            (
                q["queue_id"], f"[{colour}]{text}[/]", _pct(err), interval, f"{n:,}",
                _pct(s.get("baseline_p")), _pct(s.get("ewma")),
                "-" if h.get("score") is None else f"{h['score']:.0f}",
            )
        )  # fmt: skip
    return rows


COLUMNS = (
    "queue", "status", "error\n24h", "95%\ninterval", "n\n24h", "baseline\nerror",
    "recent\nerror", "health",
)  # fmt: skip


def render(
    prog: SimProgress, queues: list[dict[str, Any]], alerts: list[str], phase1: int
) -> Group:
    """The terminal view, readable at 100 columns."""
    sim_now = datetime.fromtimestamp(prog.sim_time, UTC) if prog.sim_time else None
    head = (
        f"simulated [bold]{sim_now:%a %H:%M}[/] (+{prog.sim_elapsed_h:.1f} h"
        f"{_scored(prog, queues)})  "
        if sim_now
        else ""
    ) + (
        f"decisions [bold]{prog.decisions:,}[/]  verdicts [bold]{prog.verdicts:,}[/]  "
        f"malformed {prog.invalid} (to dead letter)"
    )
    table = Table(box=None, pad_edge=False, padding=(0, 1), caption=ERROR_RATES)
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("queue", "status") else "right")
    for row in queue_rows(queues, phase1):
        table.add_row(*row)
    alert_lines = "\n".join(alerts[-8:]) or "[grey50]no alert yet[/]"
    return Group(
        Panel(head, title="QualityWatch demo", width=100),
        table,
        Panel(alert_lines, title="alerts received by the webhook receiver", width=100),
    )


def plain_line(prog: SimProgress, queues: list[dict[str, Any]], phase1: int) -> str:
    """One progress line for a log (stdout not a terminal): queues by status and the worst
    queue's error rates (24 h, baseline, recent), as the terminal table shows them."""
    sim_now = datetime.fromtimestamp(prog.sim_time, UTC) if prog.sim_time else None
    counts: dict[str, int] = {}
    for q in queues:
        text = _status(q, phase1)[0].split(" (")[0]
        counts[text] = counts.get(text, 0) + 1
    bands = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no queue yet"
    when = (
        f"simulated {sim_now:%a %H:%M} (+{prog.sim_elapsed_h:.1f} h{_scored(prog, queues)})"
        if sim_now else "starting"
    )  # fmt: skip
    worst = ""
    rows = [r for r in queue_rows(queues, phase1) if r[5] != "-"]  # past Phase I
    if rows:
        qid, _, err, _, _, base, recent, _ = rows[0]
        worst = f"; worst {qid}: error rate 24h {err}, baseline {base}, recent {recent}"
    return (
        f"{datetime.now():%H:%M:%S} {when}: {prog.decisions:,} decisions, "
        f"{prog.verdicts:,} verdicts; queues: {bands}{worst}"
    )


def remove_run_files(run_dir: Path, *, keep_logs: bool) -> None:
    """Remove a demo run's directory (the scorer's RocksDB, the SQLite database, logs: some
    45 MB a run), all of it, or all but ``logs/`` when the run failed and they tell why."""
    if not keep_logs:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for child in run_dir.iterdir() if run_dir.is_dir() else ():
        if child.name == "logs":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


async def delete_run_topics(kafka: KafkaSettings) -> int:
    """Delete the topics of one demo run (its prefix), so runs leave no broker data behind."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(kafka.topic_prefix)]
        if names:
            await admin.delete_topics(names)
        return len(names)
    finally:
        await admin.close()


async def run_demo(
    opts: DemoOptions, console: Console | None = None, errors: Console | None = None
) -> int:
    """``errors``: where a refusal goes (standard error by default), one line."""
    console = console or Console()
    if not console.is_terminal:
        console.soft_wrap = True  # a log: one line per line, whatever the width
    busy = busy_ports(opts)
    if busy:
        errors = errors or Console(stderr=True)
        errors.soft_wrap = True  # one line, whatever the terminal's width
        errors.print(f"[red]{ports_refusal(busy)}[/]", highlight=False)
        return 2
    console.print(
        f"[bold]wall: http://127.0.0.1:{opts.alerts_port}/wall[/] (opens once the services are up)",
        highlight=False,
    )
    kafka = local_kafka()
    state = local_state_dir()  # as kafka.sh: QW_STATE_DIR, else the repository's var
    started_kafka = False
    try:
        await wait_for_broker(kafka, timeout=2.0)
        console.print(f"using the Kafka broker already at {kafka.bootstrap}")
    except TimeoutError:
        console.print("starting a local Kafka broker (deploy/local/kafka.sh start)...")
        await asyncio.to_thread(kafka_script, "start")
        started_kafka = not opts.keep_kafka
    prefix = f"demo{datetime.now(UTC):%Y%m%d%H%M%S}-"
    run_dir = state / "demo" / prefix.rstrip("-")
    run_dir.mkdir(parents=True, exist_ok=True)
    secret = generate_secret()
    kafka_demo = local_kafka(topic_prefix=prefix)
    env = service_env(opts, kafka_demo, run_dir / "qualitywatch.db", secret)

    alerts: list[str] = []

    plain = not console.is_terminal  # piped or logged: one line per event, no live view

    def on_alert(p: dict[str, Any]) -> None:
        a = p["alert"]
        colour = "red" if p["event"] == "firing" else "green"
        line = (
            f"[{colour}]{p['event'].upper():8}[/] {datetime.now():%H:%M:%S} "
            f"[bold]{a['queue_id']}[/] {a['rule']}: {a['message']}"
        )
        alerts.append(line)
        if plain:
            console.print(f"alert: {line}", highlight=False)

    def on_notification(receiver_name: str, a: dict[str, Any]) -> None:
        labels = a.get("labels") or {}
        status = str(a.get("status", "?"))
        colour = "red" if status == "firing" else "green"
        shown = " ".join(
            f"{k}={labels[k]}" for k in ("queue", "team", "site", "rule", "severity") if k in labels
        )
        line = (
            f"[{colour}]{status.upper():8}[/] {datetime.now():%H:%M:%S} Alertmanager -> "
            f"[bold]{receiver_name}[/]: {labels.get('alertname', '?')} {shown}"
        )
        alerts.append(line)
        if plain:
            console.print(f"alertmanager: {line}", highlight=False)

    inbox = Inbox(secret=secret, on_alert=on_alert, on_notification=on_notification)
    receiver = http_server(inbox.app(), "127.0.0.1", opts.receiver_port)
    receiver_task = asyncio.create_task(receiver.serve())
    stack: monitoring.Stack | None = None
    if opts.alertmanager:
        stack = monitoring.Stack(run_dir, f"http://127.0.0.1:{opts.receiver_port}/alertmanager")
        console.print("starting Prometheus and Alertmanager (deploy/local/*.sh)...")
        try:
            await asyncio.to_thread(stack.start)
        except subprocess.CalledProcessError as exc:
            receiver.should_exit = True
            await receiver_task
            await asyncio.to_thread(stack.stop)
            console.print(f"[red]could not start {Path(exc.cmd[1]).name}:[/] {exc.stderr.strip()}")
            remove_run_files(run_dir, keep_logs=True)
            if started_kafka:
                await asyncio.to_thread(kafka_script, "stop")
            return 2
        env = {**env, **stack.service_env()}
        console.print(
            f"Alertmanager {stack.alertmanager_url} (the shipped routing tree, every receiver "
            f"a webhook to this demo)   Prometheus {stack.prometheus_url}"
        )
    services = Services(env, run_dir / "logs")
    profiles = queue_profiles(SimConfig(seed=opts.seed, queues=opts.queues))
    drift = Drift(
        queue_id=opts.drift_queue or profiles[3].queue_id,
        at_s=opts.drift_at_h * 3600,
        delta=opts.drift_delta,
        site_id=opts.drift_site,
    )
    cfg = SimConfig(
        seed=opts.seed, queues=opts.queues, decisions_per_hour=opts.decisions_per_hour,
        random_qa_rate=opts.random_qa_rate,
        drifts=(drift,), start=datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        - timedelta(hours=opts.hours),
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    sim: asyncio.Task[SimProgress] | None = None
    ok = False  # the run's files go at the end; its logs stay when it failed
    try:
        for name in ("ingest", "scorer", "alerts"):
            services.start(name)
        console.print(f"services starting (logs in {run_dir / 'logs'}, kept if the run fails)...")
        console.print(
            f"scenario: {len(profiles)} queues, {opts.hours:.0f} simulated hours; one queue "
            f"drifts from +{opts.drift_at_h:.0f} h on (which one is shown at the end)"
        )
        ingest_url = f"http://127.0.0.1:{opts.ingest_port}"
        await wait_http(f"{ingest_url}/healthz", services, owner="ingest")
        how = await admit_queues(ingest_url, kafka_demo, [p.queue_id for p in profiles])
        console.print(f"admitted the {len(profiles)} simulated queues {how}")
        await wait_http(f"http://127.0.0.1:{opts.alerts_port}/healthz", services, owner="alerts")
        console.print(
            f"[bold]services up: the wall is ready at http://127.0.0.1:{opts.alerts_port}/wall[/]",
            highlight=False,
        )
        console.print(
            f"health API http://127.0.0.1:{opts.alerts_port}/v1/queues   metrics "
            f"http://127.0.0.1:{opts.alerts_port}/metrics   ingest http://127.0.0.1:{opts.ingest_port}/docs"
        )
        prog = SimProgress()
        sim = asyncio.create_task(
            play(cfg, kafka_demo, duration_s=opts.hours * 3600, speed=opts.speed,
                 invalid_every=opts.invalid_every, progress=prog, stop=stop)
        )  # fmt: skip
        queues: list[dict[str, Any]] = []
        drain_until: float | None = None
        sim_done = 0.0  # time.monotonic() when the simulator was first seen done
        end = cfg.start.timestamp() + opts.hours * 3600
        phase1 = opts.phase1_subgroups
        async with httpx.AsyncClient(timeout=5.0) as client:
            view = (
                contextlib.nullcontext(None)
                if plain
                else Live(
                    render(prog, queues, alerts, phase1), console=console, refresh_per_second=2
                )
            )
            next_line = 0.0
            with view as live:
                while not stop.is_set():
                    services.check()
                    with contextlib.suppress(httpx.HTTPError, ValueError):
                        r = await client.get(  # one page: the demo runs far fewer queues
                            f"http://127.0.0.1:{opts.alerts_port}/v1/queues?limit=1000"
                        )
                        queues = r.json()
                    if live is not None:
                        live.update(render(prog, queues, alerts, phase1))
                    elif time.monotonic() >= next_line:
                        console.print(plain_line(prog, queues, phase1), highlight=False)
                        next_line = time.monotonic() + 15
                    if sim.done():
                        sim.result()  # raise if the simulator failed
                        sim_done = sim_done or time.monotonic()
                        # the scorer may be behind (a busy machine): wait until every queue
                        # is scored to the end of the traffic (at most DRAIN_MAX_S), then
                        # DRAIN_S more for the alerts in flight
                        if drain_until is None and (
                            caught_up(queues, len(profiles), end)
                            or time.monotonic() - sim_done > DRAIN_MAX_S
                        ):
                            if not caught_up(queues, len(profiles), end):
                                console.print(
                                    f"the scorer is still behind after {DRAIN_MAX_S:.0f} s "
                                    "(a busy machine?): later alerts are not shown"
                                )
                            drain_until = time.monotonic() + DRAIN_S
                        if drain_until is not None and time.monotonic() > drain_until:
                            break
                    await asyncio.sleep(1.0)
        interrupted = stop.is_set()  # Ctrl-C (or SIGTERM, SIGHUP) before the scenario ended
        if not sim.done():
            stop.set()
            await sim
        fired = [a for a in inbox.received if a["event"] == "firing"]
        if interrupted:  # not "scenario over", nor the drifted queue, nor "too busy"
            console.print(
                f"\ninterrupted at simulated +{prog.sim_elapsed_h:.1f} h of {opts.hours:g}: "
                f"{len(fired)} alert(s) received so far; the drift begins at "
                f"+{opts.drift_at_h:g} h (which queue is shown when a run ends)"
            )
            ok = True
            return INTERRUPTED
        on_drift = [a for a in fired if a["alert"]["queue_id"] == drift.queue_id]
        where = f" at site {drift.site_id}" if drift.site_id else ""
        console.print(
            f"\nscenario over: {len(fired)} alert(s) received, {len(on_drift)} on the drifted "
            f"queue {drift.queue_id}{where}, {len(fired) - len(on_drift)} on the "
            f"{len(profiles) - 1} stable ones."
        )
        through = scored_through(queues, cfg.start.timestamp())
        if through is not None and through < opts.hours - 1:
            drifted = (
                f"the drift (from +{opts.drift_at_h:g} h) was never scored"
                if through < opts.drift_at_h
                else f"only {through - opts.drift_at_h:.1f} h of the drift were scored"
            )
            console.print(
                f"the scorer had scored the traffic through +{through:.1f} h of "
                f"{opts.hours:g}: {drifted}. This machine was too busy for the demo's speed; "
                "run it again slower: .venv/bin/qwatch demo --speed 300"
            )
        if stack is not None:
            by = Counter(
                f"{r} {a.get('labels', {}).get('alertname', '?')}"
                for r, a in inbox.notifications
                if a.get("status") == "firing"
            )
            console.print(
                f"Alertmanager notified {sum(by.values())} firing alert(s): "
                + (", ".join(f"{k} x{n}" for k, n in sorted(by.items())) or "none")
            )
        ok = True
        return 0
    except ServiceExitError as exc:
        console.print(
            f"[red]the demo's {exc.name} service stopped (exit code {exc.code}):[/] "
            f"{exc.last_line or 'no message'}; its log: {exc.log}",
            highlight=False,
        )
        return 1
    except TimeoutError as exc:  # a service that never answered
        console.print(f"[red]{exc}[/]; the services' logs: {services.log_dir}", highlight=False)
        return 1
    finally:
        if sim is not None and not sim.done():
            # the simulator's producer first: left running (it retries) it would recreate
            # the raw topics deleted below
            stop.set()
            with contextlib.suppress(Exception):  # a failure of its own is not the one told
                await asyncio.wait_for(sim, 30)  # cancelled after that
        console.print("stopping services...")
        services.stop()
        if stack is not None:
            await asyncio.to_thread(stack.stop)
        receiver.should_exit = True
        await receiver_task
        with contextlib.suppress(Exception):  # the broker may be gone: nothing to free then
            n = await asyncio.wait_for(delete_run_topics(kafka_demo), 30)
            console.print(f"deleted this run's {n} topics from the broker")
        remove_run_files(run_dir, keep_logs=not ok)
        if not ok:
            console.print(f"this run's logs are kept in {run_dir / 'logs'}", highlight=False)
        if started_kafka:
            console.print("stopping the local Kafka broker...")
            await asyncio.to_thread(kafka_script, "stop")
