"""Pipeline throughput: raw per-event JSON in, counted; QualityWatch beside Quix Streams and
a bare aiokafka loop, on the same data, on one broker, in one run.

    .venv/bin/python bench/pipeline.py [--events 500000] [--paths a,b,c] [--quick]

A seeded generator makes decisions and QA verdicts as upstream systems send them, one JSON
object per message (about 260 bytes), with duplicates (1% of decisions, 3% of verdicts),
decisions hours late (3%), verdicts hours after their decision (15% of them 4-9 hours), and
knows the truth per queue and hour. The same bytes, in arrival order and keyed by queue, go
to the raw topics (``qw.decisions.raw.v1``, ``qw.verdicts.raw.v1``) and to a peer topic.
Then, one after the other:

(a) QualityWatch: ``qwatch ingest`` (its raw-topic consumer validates and batches per queue
    onto ``qw.events.v1``) and ``qwatch scorer`` (``--scorer-workers`` of them, one group) as
    real processes; timed from their start
    until the ingest group's committed offsets reach the end of the raw topics and the
    scorer group's the end of the events topic.
(b) Quix Streams (pinned, in its own virtualenv under ~/.cache, created on first run): a
    per-queue hourly tumbling-window count with RocksDB state, at-least-once, on the peer
    topic (``bench/pipeline_quix.py``).
(c) a bare aiokafka loop: getmany + orjson + a dict of per-queue hourly counts, on the peer
    topic (``bench/pipeline_bare.py``).

Each path's CPU time per event is read per process from /proc/<pid>/stat (utime + stime,
start-up included), and the broker's over the same time when it runs on this machine (found
by its listening port): on two cores its work is part of what the paths compete for. After (a), the scorer's published snapshots and closed subgroups are
checked exactly against the generator's truth; a lost or doubled count makes the exit
status 1. Uses the broker QW_KAFKA_BOOTSTRAP names (deploy/local/kafka.sh is started when
none answers, and stopped again); this run's topics are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.demo.orchestrator import (
    Services,
    ensure_local_broker,
    local_kafka,
    release_local_broker,
)
from services.ingest.settings import IngestSettings
from services.scorer.settings import ScorerSettings
from shared import admission
from shared.kafka import ensure_topics, make_producer
from shared.settings import REPO_ROOT, KafkaSettings
from shared.topics import TopicSpec, queue_key

QUIX_VERSION = "3.28.1"
HOUR = 3600
GRACE = 2 * HOUR  # the scorer's grace in this run: late data makes revisions
T0 = datetime(2026, 10, 1, tzinfo=UTC).timestamp()
AREAS = ("hate_speech", "spam", "violence", "nudity", "self_harm", "fraud", "bullying")
MARKETS = ("en-US", "de-DE", "pt-BR", "ja-JP", "es-MX", "fr-FR", "hi-IN")
SITES = ("mnl-2", "lis-1", "aus-3", "nbo-1")


@dataclass(frozen=True)
class Lateness:
    """When each event arrives, against its event time (hours), and how often it comes twice."""

    decision_late: tuple[float, float, float] = (0.03, 2, 5)  # share, from, to
    decision_dup: tuple[float, float] = (0.01, 1)  # share, within
    qa_share: float = 0.6  # decisions that get a verdict
    random_share: float = 0.9  # verdicts of the random sample (the rest targeted)
    verdict_lag: tuple[float, float] = (0.2, 2.5)  # most verdicts
    verdict_very_late: tuple[float, float, float] = (0.15, 4, 9)  # share, from, to
    verdict_dup: tuple[float, float] = (0.03, 2)

    def per_decision(self) -> float:
        """Raw messages per decision, on average."""
        return 1 + self.decision_dup[0] + self.qa_share * (1 + self.verdict_dup[0])

    def decision(self, rng: random.Random, at: float, truth: Truth) -> list[float]:
        share, lo, hi = self.decision_late
        first = at + (rng.uniform(lo, hi) * HOUR if rng.random() < share else 0)
        return [first, *self._dup(rng, first, self.decision_dup, truth)]

    def lag(self, rng: random.Random) -> float:
        share, lo, hi = self.verdict_very_late
        return rng.uniform(*(self.verdict_lag if rng.random() >= share else (lo, hi))) * HOUR

    def verdict(self, rng: random.Random, reviewed: float, truth: Truth) -> list[float]:
        return [reviewed, *self._dup(rng, reviewed, self.verdict_dup, truth)]

    @staticmethod
    def _dup(
        rng: random.Random, first: float, dup: tuple[float, float], truth: Truth
    ) -> list[float]:
        if rng.random() >= dup[0]:
            return []
        truth.duplicates += 1
        return [first + rng.uniform(0, dup[1] * HOUR)]


LATENESS = Lateness()


# -- the data ---------------------------------------------------------------------------------
@dataclass
class Truth:
    decisions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    verdicts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # (queue, subgroup start) -> [random verdicts, errors among them, decisions]
    subgroups: dict[tuple[str, int], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0])
    )
    last_event: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    duplicates: int = 0


@dataclass
class Raw:
    """The messages in arrival order: (kind, key, value)."""

    messages: list[tuple[str, bytes, bytes]]
    truth: Truth
    queues: list[str]

    @property
    def decisions(self) -> int:
        return sum(1 for kind, _, _ in self.messages if kind == "decision")

    @property
    def mean_bytes(self) -> float:
        return sum(len(v) for _, _, v in self.messages) / max(1, len(self.messages))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _id(rng: random.Random, kind: str) -> str:
    return f"{kind}-{rng.getrandbits(64):016x}"


def generate(events: int, n_queues: int, hours: int, seed: int) -> Raw:
    """About ``events`` raw messages over ``hours`` hours of ``n_queues`` queues."""
    rng = random.Random(seed)
    truth = Truth()
    queues = [
        f"{AREAS[i % len(AREAS)]}.{MARKETS[i // len(AREAS) % len(MARKETS)]}"
        + (f".{i // (len(AREAS) * len(MARKETS))}" if i >= len(AREAS) * len(MARKETS) else "")
        for i in range(n_queues)
    ]
    per_hour = max(1, round(events / (n_queues * hours * LATENESS.per_decision())))
    arrivals: list[tuple[float, str, bytes, dict[str, Any]]] = []
    for q in queues:
        key = queue_key(q)
        area, market = q.split(".")[:2]
        error = rng.uniform(0.03, 0.08)
        for h in range(hours):
            for _ in range(per_hour):
                at = T0 + h * HOUR + rng.uniform(0, HOUR - 1)
                did = _id(rng, "d")
                d = {
                    "kind": "decision", "decision_id": did,
                    "content_id": f"c{rng.getrandbits(48):012x}", "queue_id": q,
                    "moderator_id": f"mod-{rng.randrange(40000):05d}",
                    "site_id": SITES[rng.randrange(len(SITES))], "policy_id": f"{area}.v7",
                    "action": "remove" if rng.random() < 0.4 else "approve",
                    "decided_at": _iso(at), "market": market, "severity": 2,
                }  # fmt: skip
                truth.decisions[q] += 1
                truth.subgroups[(q, int(at) // HOUR * HOUR)][2] += 1
                truth.last_event[q] = max(truth.last_event[q], at)
                arrivals += [(t, "decision", key, d) for t in LATENESS.decision(rng, at, truth)]
                if rng.random() >= LATENESS.qa_share:
                    continue
                wrong = rng.random() < error
                sample = "random" if rng.random() < LATENESS.random_share else "targeted"
                reviewed = at + LATENESS.lag(rng)
                v = {
                    "kind": "verdict", "verdict_id": _id(rng, "v"), "decision_id": did,
                    "queue_id": q, "auditor_id": f"qa-{rng.randrange(800):04d}",
                    "reviewed_at": _iso(reviewed), "outcome": "incorrect" if wrong else "correct",
                    "error_type": "under_enforcement" if wrong else None, "sample_type": sample,
                }  # fmt: skip
                truth.verdicts[q] += 1
                truth.last_event[q] = max(truth.last_event[q], reviewed)
                if sample == "random":
                    truth.subgroups[(q, int(at) // HOUR * HOUR)][0] += 1
                    truth.subgroups[(q, int(at) // HOUR * HOUR)][1] += wrong
                arrivals += [(t, "verdict", key, v) for t in LATENESS.verdict(rng, reviewed, truth)]
    arrivals.sort(key=lambda a: a[0])
    messages = [(kind, key, orjson.dumps(value)) for _, kind, key, value in arrivals]
    return Raw(messages, truth, queues)


async def produce(kafka: KafkaSettings, raw: Raw, peer: str) -> float:
    """The raw messages to the raw topics and to the peer topic; returns seconds taken."""
    await ensure_topics(kafka, [*kafka.topics.specs(), TopicSpec(peer, kafka.partitions)])
    await admission.admit_all(kafka, raw.queues, "bench")  # ingest takes admitted queues only
    topic = {"decision": kafka.topics.decisions_raw, "verdict": kafka.topics.verdicts_raw}
    producer = make_producer(kafka, linger_ms=50, max_batch_size=1024 * 1024)
    await producer.start()
    t = time.perf_counter()
    try:
        for name in (*topic.values(), peer):
            await producer.partitions_for(name)  # metadata first: no send waits for it
        pending: list[asyncio.Future[Any]] = []
        for kind, key, value in raw.messages:
            pending.append(await producer.send(topic[kind], value, key=key))
            pending.append(await producer.send(peer, value, key=key))
            if len(pending) >= 20000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - t


# -- measuring --------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def listener_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` on this machine (the broker: its CPU is spent
    on the same cores), from /proc; None if it is not visible here."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in list(f)[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return None


class BrokerCpu:
    """The broker's CPU seconds over a path's run (when its process is visible here)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        port = int(kafka.bootstrap.split(",")[0].rsplit(":", 1)[1])
        self.pid = listener_pid(port)
        self.start = 0.0 if self.pid is None else cpu_seconds(self.pid)

    def seconds(self) -> float | None:
        return None if self.pid is None else cpu_seconds(self.pid) - self.start


class Progress:
    """Committed offsets of consumer groups against end offsets, on long-lived clients."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        self.probe = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap)

    async def __aenter__(self) -> Progress:
        await self.admin.start()
        await self.probe.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.probe.stop()
        await self.admin.close()

    async def __call__(self, group: str, topics: Sequence[str]) -> tuple[int, int]:
        tps = [TopicPartition(t, p) for t in topics for p in range(self.kafka.partitions)]
        ends = await self.probe.end_offsets(tps)
        committed = await self.admin.list_consumer_group_offsets(group)
        done = sum(max(0, committed[tp].offset) for tp in tps if tp in committed)
        return done, sum(ends.values())


@dataclass
class Result:
    path: str
    events: int
    seconds: float
    first_commit_s: float
    cpu_s: dict[str, float]
    # each process's CPU seconds when its own group first committed (start-up and the first
    # poll): what a restart costs before it makes progress
    cpu_first_s: dict[str, float] = field(default_factory=dict)
    broker_s: float | None = None  # the broker's CPU over the same time, if visible
    note: str = ""

    def broker_cell(self) -> str:
        return "-" if self.broker_s is None else f"{self.broker_s * 1e6 / self.events:.1f}"

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def cpu_cell(self) -> str:
        per = {name: s * 1e6 / self.events for name, s in self.cpu_s.items()}
        parts = [f"{name} {us:.1f}" for name, us in per.items()]
        if len(per) > 1:
            parts.append(f"total {sum(per.values()):.1f}")
        return ", ".join(parts)

    def first_commit_line(self) -> str:
        """CPU at each process's first commit, and per event after it."""
        parts = [
            f"{name} {first:.2f} s, then {(self.cpu_s[name] - first) * 1e6 / self.events:.1f} "
            "µs/event"
            for name, first in self.cpu_first_s.items()
        ]
        return f"{self.path[:3]} CPU at each process's first commit: " + "; ".join(parts)


async def watch(
    progress: Progress,
    pids: dict[str, int],
    alive: Any,
    stages: list[tuple[str, list[str]]],
    expect: int,
    timeout: float,
    timeline: Path | None = None,
    broker: int | None = None,
) -> tuple[float, float, dict[str, float], dict[str, float]]:
    """Wait until every stage's group committed the end of its topics, in order (the first
    stage's end must be ``expect``; a later stage's end is final once the earlier ones are
    done). Returns (seconds, seconds to the first commit, CPU seconds per process, CPU
    seconds of each process when its stage first committed: the i-th process's is the i-th
    stage's), timed from the call (the processes were started just before). With
    ``timeline``, each poll's seconds, committed offsets per stage and CPU seconds per
    process (and the ``broker`` process's, if given) go to that file, one tab-separated
    line per poll."""
    t0 = time.perf_counter()
    trace = timeline.open("w") if timeline is not None else None
    if trace is not None:
        columns = ["s", *(g for g, _ in stages), *pids, *(["broker"] if broker else [])]
        trace.write("\t".join(columns) + "\n")
    first: float | None = None
    owners = dict(zip((group for group, _ in stages), pids.items(), strict=False))
    cpu_first: dict[str, float] = {}
    try:
        while True:
            alive()
            now = time.perf_counter()
            done_all = True
            row = [f"{now - t0:.2f}"]
            for i, (group, topics) in enumerate(stages):
                done, end = await progress(group, topics)
                row.append(str(done))
                if first is None and done > 0:
                    first = now - t0
                owner = owners.get(group)
                if owner is not None and owner[0] not in cpu_first and done > 0:
                    cpu_first[owner[0]] = cpu_seconds(owner[1])
                if done_all and (done < end or (i == 0 and end < expect)):
                    done_all = False
                    status = f"{group}: {done:,}/{end:,}"
                    if len(cpu_first) == len(owners):
                        break  # (the later stages are polled until each has committed once)
            if trace is not None:
                if len(row) <= len(stages):  # a stage not polled this time (see the break)
                    row += ["" for _ in range(len(stages) + 1 - len(row))]
                row += [f"{cpu_seconds(pid):.2f}" for pid in pids.values()]
                if broker is not None:
                    row.append(f"{cpu_seconds(broker):.2f}")
                trace.write("\t".join(row) + "\n")
                trace.flush()
            if done_all:
                cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
                return time.perf_counter() - t0, first if first is not None else 0.0, cpu, cpu_first
            if now - t0 > timeout:
                raise TimeoutError(f"not done after {timeout:.0f}s ({status})")
            await asyncio.sleep(0.2)
    finally:
        if trace is not None:
            trace.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- (a) QualityWatch -------------------------------------------------------------------------
@dataclass
class Check:
    lines: list[str]
    ok: bool


async def read_to_end(
    bootstrap: str, topic: str, partitions: int, timeout: float = 60.0
) -> list[Any]:
    """Every record value of ``topic`` up to its end offsets now, decoded."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    out: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        left = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + timeout
        while left:
            if time.monotonic() > deadline:
                raise TimeoutError(f"cannot read {topic} to its end")
            for tp, records in (await reader.getmany(*left, timeout_ms=500)).items():
                out.extend(orjson.loads(r.value) for r in records if r.value is not None)
                if await reader.position(tp) >= ends[tp]:
                    left.discard(tp)
    finally:
        await reader.stop()
    return out


async def check_counts(kafka: KafkaSettings, raw: Raw) -> Check:
    """The scorer's published counts against the generator's truth, exactly: each queue's
    snapshot totals (decisions, verdicts), and every subgroup the final watermark closed
    (random verdicts, errors, decisions; the latest revision)."""
    truth, queues = raw.truth, raw.queues
    want = {q: (truth.decisions[q], truth.verdicts[q]) for q in queues}
    snaps: dict[str, Any] = {}
    settle = time.monotonic() + 60  # the deferred flush publishes within about a second
    while time.monotonic() < settle:
        for s in await read_to_end(kafka.bootstrap, kafka.topics.snapshots, kafka.partitions):
            snaps[s["queue_id"]] = s
        got = {
            q: (snaps[q]["decisions_total"], snaps[q]["verdicts_total"]) if q in snaps else (0, 0)
            for q in queues
        }
        if got == want:
            break
        await asyncio.sleep(1)
    points: dict[tuple[str, int], Any] = {}
    for p in await read_to_end(kafka.bootstrap, kafka.topics.subgroups, kafka.partitions):
        k = (p["queue_id"], int(datetime.fromisoformat(p["start"]).timestamp()))
        if k not in points or p["revision"] >= points[k]["revision"]:
            points[k] = p
    lost_d = sum(max(0, want[q][0] - got[q][0]) for q in queues)
    doubled_d = sum(max(0, got[q][0] - want[q][0]) for q in queues)
    lost_v = sum(max(0, want[q][1] - got[q][1]) for q in queues)
    doubled_v = sum(max(0, got[q][1] - want[q][1]) for q in queues)
    closed = {
        k for k in truth.subgroups if k[1] + HOUR + GRACE <= truth.last_event[k[0]] and k[0] in want
    }
    missing, extra = closed - set(points), set(points) - closed
    lost_n = doubled_n = off_errors = off_decisions = 0
    for k in closed & set(points):
        n, errors, decisions = truth.subgroups[k]
        p = points[k]
        lost_n += max(0, n - p["n"])
        doubled_n += max(0, p["n"] - n)
        off_errors += abs(p["errors"] - errors)
        off_decisions += abs(p["decisions"] - decisions)
    revised = sum(1 for p in points.values() if p["revision"] > 0)
    ok = not (
        lost_d or doubled_d or lost_v or doubled_v or missing or extra or lost_n or doubled_n
    ) and not (off_errors or off_decisions)
    lines = [
        f"scorer snapshots, {len(queues)} queues: decisions {sum(g[0] for g in got.values()):,} "
        f"of {sum(w[0] for w in want.values()):,} (lost {lost_d}, doubled {doubled_d}), "
        f"verdicts {sum(g[1] for g in got.values()):,} of {sum(w[1] for w in want.values()):,} "
        f"(lost {lost_v}, doubled {doubled_v})",
        f"scorer subgroups: {len(points):,} published, {len(closed):,} closed by the final "
        f"watermark ({len(missing)} missing, {len(extra)} unexpected, {revised} revised by "
        f"late data); random verdicts lost {lost_n}, doubled {doubled_n}; errors off by "
        f"{off_errors}, decisions off by {off_decisions}",
        "counts: exact" if ok else "counts: WRONG",
    ]
    return Check(lines, ok)


async def path_a(
    kafka: KafkaSettings, raw: Raw, tmp: Path, timeout: float, profile: Path | None,
    workers: int = 1,
) -> tuple[Result, Check]:  # fmt: skip
    env = {
        **kafka.as_env(),
        "QW_INGEST_PORT": str(_free_port()),
        "QW_INGEST_MAX_AGE_DAYS": "3650",  # the generator's events are dated from T0
        "QW_SCORER_GRACE_SECONDS": str(GRACE),
        "QW_SCORER_SNAPSHOT_INTERVAL_S": "1",
    }
    services = Services(env, tmp / "logs")
    ingest_group = kafka.topic_prefix + IngestSettings().consumer_group
    scorer_group = kafka.topic_prefix + ScorerSettings().app_id
    spies: list[subprocess.Popen[bytes]] = []
    try:
        async with Progress(kafka) as progress:
            broker = BrokerCpu(kafka)
            services.start("ingest")
            for i in range(workers):  # one consumer group: the partitions are split
                label = "scorer" if i == 0 else f"scorer{i + 1}"
                services.start("scorer", as_=label, env={"QW_SCORER_DATA_DIR": str(tmp / label)})
            pids = {name: p.pid for name, p in services.procs.items()}
            if profile is not None:
                spies = [py_spy(pid, profile / f"{name}.txt") for name, pid in pids.items()]
            seconds, first, cpu, cpu_first = await watch(
                progress, pids, services.check,
                [
                    (ingest_group, [kafka.topics.decisions_raw, kafka.topics.verdicts_raw]),
                    (scorer_group, [kafka.topics.events]),
                ],
                len(raw.messages), timeout, tmp / "timeline.tsv", broker.pid,
            )  # fmt: skip
            broker_s = broker.seconds()
            for spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            for spy in spies:
                spy.wait(30)
        check = await check_counts(kafka, raw)
    finally:
        for spy in spies:
            if spy.poll() is None:
                spy.kill()
        services.stop()
    scorers = "scorer" if workers == 1 else f"{workers} scorer workers"
    return Result(
        f"(a) QualityWatch: ingest + {scorers}", len(raw.messages), seconds, first, cpu,
        cpu_first, broker_s,
    ), check  # fmt: skip


def py_spy_exe() -> Path:
    """py-spy beside this Python (the `[bench]` extra), or a one-line refusal."""
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        raise SystemExit(f"--profile needs py-spy at {exe}: pip install -e '.[bench]'")
    return exe


def py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling one process into a raw (collapsed stacks) file, until SIGINT."""
    exe = py_spy_exe()
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(exe), "record", "--pid", str(pid), "--format", "raw", "--rate", "50",
         "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


# -- (b) and (c): one subprocess on the peer topic ---------------------------------------------
async def path_peer(
    name: str,
    argv: list[str],
    kafka: KafkaSettings,
    group: str,
    peer: str,
    events: int,
    log: Path,
    timeout: float,
) -> tuple[Result, str]:
    broker = BrokerCpu(kafka)
    proc = spawn(argv, log)

    def alive() -> None:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    try:
        async with Progress(kafka) as progress:
            seconds, first, cpu, cpu_first = await watch(
                progress, {"process": proc.pid}, alive, [(group, [peer])], events, timeout
            )
        broker_s = broker.seconds()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    return Result(name, events, seconds, first, cpu, cpu_first, broker_s), out.decode(
        errors="replace"
    ).strip()


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """A peer process: stdout piped back, stderr to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as err:
        return subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=err, cwd=REPO_ROOT, start_new_session=True
        )


def quix_python() -> Path:
    """The pinned Quix Streams in its own virtualenv, created on first use and reused."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = cache / "qualitywatch-bench" / f"quixstreams-{QUIX_VERSION}"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import quixstreams; print(quixstreams.__version__)"]
    if python.exists():
        found = subprocess.run(probe, capture_output=True, text=True, check=False)
        if found.returncode == 0 and found.stdout.strip() == QUIX_VERSION:
            return python
    print(f"creating {venv} with quixstreams=={QUIX_VERSION} (once)...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"quixstreams=={QUIX_VERSION}"], check=True
    )
    subprocess.run(probe, check=True, capture_output=True)
    return python


async def delete_topics(kafka: KafkaSettings, marker: str) -> int:
    """This run's topics: every topic whose name holds the run's prefix (Quix names its
    changelog topics after the consumer group, which carries the prefix too)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if marker in t]
        if names:
            await admin.delete_topics(names)
        return len(names)
    finally:
        await admin.close()


# -- the run ----------------------------------------------------------------------------------
def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.platform()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load average at start {load}"
    )


async def main(args: argparse.Namespace) -> int:
    paths = set(args.paths.split(","))
    if not paths <= {"a", "b", "c"}:
        raise SystemExit(f"--paths: a comma-separated subset of a,b,c, not {args.paths!r}")
    if args.profile is not None:
        py_spy_exe()  # before the broker and the data, not at the end of generating them
    started = await ensure_local_broker()
    prefix = f"pipe{int(time.time())}-"
    kafka = local_kafka(topic_prefix=prefix, partitions=args.partitions)
    peer = f"{prefix}peer.raw.v1"
    load_at_start = machine()
    results: list[Result] = []
    check: Check | None = None
    notes: list[str] = []
    try:
        quix = quix_python() if "b" in paths else None
        t = time.perf_counter()
        raw = generate(args.events, args.queues, args.hours, args.seed)
        print(
            f"generated {len(raw.messages):,} raw messages ({raw.decisions:,} decisions, "
            f"{len(raw.messages) - raw.decisions:,} verdicts, {raw.truth.duplicates:,} "
            f"duplicates; {raw.mean_bytes:.0f} B each on average) in "
            f"{time.perf_counter() - t:.1f}s",
            flush=True,
        )
        produce_s = await produce(kafka, raw, peer)
        print(f"produced them to the raw topics and to {peer} in {produce_s:.1f}s", flush=True)
        with contextlib.ExitStack() as stack:
            if args.keep is not None:
                tmp = args.keep
                tmp.mkdir(parents=True, exist_ok=True)
            else:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qw-pipeline-")))
            if "a" in paths:
                result, check = await path_a(
                    kafka, raw, tmp, args.timeout, args.profile, args.scorer_workers
                )
                results.append(result)
                print(f"{result.path}: {result.rate:,.0f} events/s", flush=True)
            if quix is not None:
                result, _ = await path_peer(
                    f"(b) Quix Streams {QUIX_VERSION}: hourly count, RocksDB, at-least-once",
                    [str(quix), str(REPO_ROOT / "bench" / "pipeline_quix.py"), kafka.bootstrap,
                     peer, f"{prefix}quix", str(tmp / "quix-state")],
                    kafka, f"{prefix}quix", peer, len(raw.messages), tmp / "quix.log",
                    args.timeout,
                )  # fmt: skip
                results.append(result)
                print(f"{result.path}: {result.rate:,.0f} events/s", flush=True)
            if "c" in paths:
                result, out = await path_peer(
                    "(c) bare aiokafka loop: getmany + orjson + dict",
                    [sys.executable, str(REPO_ROOT / "bench" / "pipeline_bare.py"),
                     kafka.bootstrap, peer, f"{prefix}bare"],
                    kafka, f"{prefix}bare", peer, len(raw.messages), tmp / "bare.log",
                    args.timeout,
                )  # fmt: skip
                counted = orjson.loads(out)["counted"] if out else None
                if counted != len(raw.messages):
                    notes.append(f"the bare loop counted {counted} of {len(raw.messages)}")
                results.append(result)
                print(f"{result.path}: {result.rate:,.0f} events/s", flush=True)
    finally:
        if args.keep is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(delete_topics(kafka, prefix), 30)
        else:
            print(f"kept: the topics {prefix}*, and the processes' logs and state in {args.keep}")
        await release_local_broker(started)

    print()
    print(
        "| path | events | seconds | events/s | first commit after (s) | CPU µs/event per process "
        "| broker CPU µs/event |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.path} | {r.events:,} | {r.seconds:.1f} | {r.rate:,.0f} "
            f"| {r.first_commit_s:.1f} | {r.cpu_cell()} | {r.broker_cell()} |"
        )
    print()
    for r in results:
        print(r.first_commit_line())
    by = {r.path[:3]: r for r in results}
    print()
    for other in ("(b)", "(c)"):
        if "(a)" in by and other in by:
            print(
                f"ratio (a)/{other[1]}: {by['(a)'].rate / by[other].rate:.2f} in events/s, "
                f"{sum(by[other].cpu_s.values()) / sum(by['(a)'].cpu_s.values()):.2f} in "
                f"CPU per event ({other[1]}'s CPU / a's)"
            )
    print()
    print(f"machine: {load_at_start}")
    print(f"broker: {kafka.bootstrap}, {args.partitions} partitions, {args.queues} queues")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    for line in notes:
        print(f"note: {line}")
    if check is not None:
        print()
        for line in check.lines:
            print(line)
    return 0 if (check is None or check.ok) and not notes else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=500_000, help="about this many raw messages")
    p.add_argument("--quick", action="store_true", help="a smoke run: --events 50000")
    p.add_argument("--paths", default="a,b,c", help="which of a,b,c to run (default all)")
    p.add_argument("--queues", type=int, default=20)
    p.add_argument("--hours", type=int, default=24, help="hours of event time")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument(
        "--scorer-workers",
        type=int,
        default=1,
        help="(a) with this many scorer worker processes in one group (default 1)",
    )
    p.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per path")
    p.add_argument(
        "--profile",
        type=Path,
        help="sample ingest and scorer with py-spy (beside this Python) into this directory",
    )
    p.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the run's topics (prefix pipe<time>-), and the processes' logs and state in "
        "DIR, to look into a run (a wrong count: the dead-letter topic, the scorer's log)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.events = 50_000
    if not 1_000 <= args.events <= 20_000_000:
        p.error("--events: between 1,000 and 20,000,000")
    if not 1 <= args.scorer_workers <= args.partitions:
        p.error("--scorer-workers: 1 to --partitions (a worker beyond them would idle)")
    if not 1 <= args.queues <= 1000 or not 4 <= args.hours <= 24 * 6:
        p.error("--queues: 1 to 1,000; --hours: 4 to 144 (within the scorer's 7-day horizon)")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
