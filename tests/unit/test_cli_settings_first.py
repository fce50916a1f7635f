"""``qwatch run`` and ``qwatch config`` read every service's settings from the environment
first: a value one of them refuses ends the command with one line naming the variable
(exit 2), before anything starts (no broker probed, no service started, nothing printed as
running); ``qwatch config``'s reference does not depend on the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import REPO_ROOT
from tests.unit.test_cli_broker import closed_port

DOC = REPO_ROOT / "docs" / "configuration.md"


def qwatch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QW_")}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env={**clean, **env}, cwd=REPO_ROOT, capture_output=True, text=True, timeout=90,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "says"),
    [
        # refused by the scorer and alerts only (QualitySettings)
        ({"QW_TARGET_RULE_CONFIDENCE": "2"}, "QW_TARGET_RULE_CONFIDENCE='2'"),
        # refused by alerts only
        ({"QW_ALERTS_WEBHOOK_URLS": '["ftp://hooks.example.com/x"]'}, "QW_ALERTS_WEBHOOK_URLS[0]"),
        # refused by the scorer only
        ({"QW_SCORER_GRACE_SECONDS": "-5"}, "QW_SCORER_GRACE_SECONDS='-5'"),
    ],
)
@pytest.mark.parametrize("command", ["run", "config"])
def test_a_bad_setting_ends_run_and_config_before_anything(
    command: str, env: dict[str, str], says: str, tmp_path: Path
) -> None:
    # a broker address nothing answers at: a command that probed it first would say so
    proc = qwatch(command, env={
        **env, "QW_STATE_DIR": str(tmp_path), "QW_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed_port()}",
        "QW_KAFKA_CONNECT_TIMEOUT_S": "1",
    })  # fmt: skip
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""  # no "running", no reference
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("qwatch: invalid settings: "), line
    assert says in line
    assert not (tmp_path / "run").exists()  # no service was started (their logs live there)


@pytest.mark.parametrize("command", ["run", "config"])
def test_an_unreadable_api_key_file_ends_run_and_config_before_anything(
    command: str, tmp_path: Path
) -> None:
    """The HTTP services read the key file at start-up and would exit: said here, once."""
    keys = tmp_path / "keys.json"
    keys.write_text('{"keys": [')  # cut short, as by an editor's crash
    proc = qwatch(command, env={
        "QW_API_KEYS_FILE": str(keys), "QW_STATE_DIR": str(tmp_path),
        "QW_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed_port()}", "QW_KAFKA_CONNECT_TIMEOUT_S": "1",
    })  # fmt: skip
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"qwatch: API key file: {keys}: not readable JSON"), line
    assert not (tmp_path / "run").exists()


def test_config_prints_the_reference_whatever_a_valid_environment_holds(tmp_path: Path) -> None:
    valid = {
        "QW_KAFKA_BOOTSTRAP": "broker.example:9092", "QW_STATE_DIR": str(tmp_path),
        "QW_ACCURACY_TARGET": "0.95", "QW_TARGET_RULE_CONFIDENCE": "",
        "QW_ALERTS_WEBHOOK_URLS": '["https://hooks.example.com/qa"]',
    }  # fmt: skip
    proc = qwatch("config", env=valid)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == DOC.read_text()


def test_backfill_reads_ingests_age_limit_before_it_probes_the_broker(tmp_path: Path) -> None:
    """Backfill checks each row as ingest will (QW_INGEST_MAX_AGE_DAYS): a bad value of it
    is one line, before the broker is asked anything (it used to be read after)."""
    export = tmp_path / "x.csv"
    export.write_text("decision_id,queue_id\nd1,q\n")
    proc = qwatch("backfill", str(export), env={
        "QW_INGEST_MAX_AGE_DAYS": "abc", "QW_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed_port()}",
        "QW_KAFKA_CONNECT_TIMEOUT_S": "1",
    })  # fmt: skip
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("qwatch: invalid settings: QW_INGEST_MAX_AGE_DAYS='abc'"), line
