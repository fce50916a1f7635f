"""A setting the environment gets wrong ends a command with one line naming the variable
(operations.md promises it), not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.settings import REPO_ROOT


@pytest.mark.parametrize(
    ("env", "command", "says"),
    [
        ({"QW_KAFKA_ACKS": "2"}, "ingest", "QW_KAFKA_ACKS='2'"),
        ({"QW_KAFKA_REPLICATION_FACTOR": "1"}, "scorer", "QW_KAFKA_MIN_INSYNC_REPLICAS=2 exceeds"),
        ({"QW_SCORER_GRACE_SECONDS": "-5"}, "scorer", "QW_SCORER_GRACE_SECONDS='-5'"),
        ({"QW_ALERTS_WEBHOOK_URLS": "not json"}, "alerts", "QW_ALERTS_WEBHOOK_URLS"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    env: dict[str, str], command: str, says: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QW_")}
    proc = subprocess.run(
        [sys.executable, "-m", "services.cli", command],
        env={**clean, **env}, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("qwatch: invalid settings: ")
    assert says in lines[0]
