"""Every command that needs the broker, pointed at a closed port, ends with one line naming
the address it tried and exit status 2 (operations.md), not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from shared.settings import REPO_ROOT

# every qwatch command that talks to the broker (demo only probes a broker the user named)
COMMANDS = [
    ["ingest"], ["alerts"], ["scorer"], ["simulate", "--hours", "1"], ["run"], ["demo"],
    ["queues", "list"], ["queues", "admit", "q1"], ["queues", "remove", "q1"],
    ["deadletters", "list"], ["deadletters", "replay", "--yes"],
]  # fmt: skip


def closed_port() -> int:
    """A loopback port nothing listens on: bound, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_commands_that_need_the_broker_say_they_cannot_reach_it(tmp_path: Path) -> None:
    bootstrap = f"127.0.0.1:{closed_port()}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QW_")}
    env = {
        **clean,
        "QW_KAFKA_BOOTSTRAP": bootstrap,
        "QW_KAFKA_CONNECT_TIMEOUT_S": "1",
        "QW_KAFKA_REPLICATION_FACTOR": "1",
        "QW_KAFKA_MIN_INSYNC_REPLICAS": "1",
        "QW_DB_URL": f"sqlite+aiosqlite:///{tmp_path}/qw.db",
    }
    export = tmp_path / "history.ndjson"
    export.write_text("{}\n")
    # all at once: each is a Python start and a one-second wait
    procs = {
        " ".join(cmd): subprocess.Popen(
            [sys.executable, "-m", "services.cli", *cmd],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd in [*COMMANDS, ["backfill", str(export)]]
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 2, f"qwatch {name}: exit {proc.returncode}\n{out}\n{err}"
        lines = (out + err).strip().splitlines()
        assert len(lines) == 1, f"qwatch {name} printed more than one line:\n{out}\n{err}"
        assert lines[0] == (
            f"qwatch: cannot reach the Kafka broker at {bootstrap} (QW_KAFKA_BOOTSTRAP): "
            "nothing answered within 1 s (QW_KAFKA_CONNECT_TIMEOUT_S); is a broker running "
            "there? deploy/local/kafka.sh start starts one on 127.0.0.1 (QW_KAFKA_PORT), and "
            "qwatch demo starts it itself when QW_KAFKA_BOOTSTRAP is unset"
        ), name


def test_a_backfill_rerun_of_loaded_files_says_so_without_the_broker(tmp_path: Path) -> None:
    """A rerun whose files are all loaded (to this destination) sends nothing: it says they
    are loaded, exit 0, with no broker to answer (it waited for one, then said it could not
    reach it)."""
    from services import backfill
    from shared.settings import KafkaSettings

    bootstrap = f"127.0.0.1:{closed_port()}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QW_")}
    env = {**clean, "QW_KAFKA_BOOTSTRAP": bootstrap, "QW_KAFKA_CONNECT_TIMEOUT_S": "1"}
    export = tmp_path / "history.ndjson"
    export.write_text('{"kind": "decision"}\n')
    state = tmp_path / "state"
    kafka = KafkaSettings(bootstrap=bootstrap)
    path = backfill.Checkpoint.path_for(state, export, kafka)
    cp = backfill.Checkpoint.load_or_new(path, export, restart=False)
    cp.rows, cp.sent, cp.done = 1, 1, True
    cp.save(path)
    run = [sys.executable, "-m", "services.cli", "backfill", str(export), "--state-dir", str(state)]
    done = subprocess.run(run, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert "history.ndjson: already loaded" in done.stdout + done.stderr
    # another destination: rows to send, so the broker is asked (and is not there)
    elsewhere = {**env, "QW_TOPIC_PREFIX": "other."}
    done = subprocess.run(
        run, env=elsewhere, cwd=REPO_ROOT, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 2
    assert "cannot reach the Kafka broker" in done.stderr


def test_a_long_wait_for_the_broker_is_said_at_once() -> None:
    """A new user's backfill against a broker that was not running printed nothing for a
    minute (QW_KAFKA_CONNECT_TIMEOUT_S), then its one line: a command waiting longer than
    a few seconds says so, once."""
    from shared.kafka import BROKER_NOTE_AFTER_S

    bootstrap = f"127.0.0.1:{closed_port()}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QW_")}
    timeout = BROKER_NOTE_AFTER_S + 2
    env = {**clean, "QW_KAFKA_BOOTSTRAP": bootstrap, "QW_KAFKA_CONNECT_TIMEOUT_S": f"{timeout:g}"}
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "queues", "list"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[0] == (
        f"qwatch: no answer yet from the Kafka broker at {bootstrap} (QW_KAFKA_BOOTSTRAP); "
        "waiting up to 2 s more (QW_KAFKA_CONNECT_TIMEOUT_S)"
    )
    assert len(lines) == 2
    assert lines[1].startswith(f"qwatch: cannot reach the Kafka broker at {bootstrap}")


def test_qwatch_says_its_version() -> None:
    from importlib.metadata import version

    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "--version"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"qwatch (qualitywatch) {version('qualitywatch')}\n"
