"""The deploy scripts parse, and postgres.sh's no-server commands behave.

Starting PostgreSQL for real is tests/integration/test_postgres_local.py's job.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.deploy.artefacts import DEPLOY

SCRIPTS = [
    DEPLOY / "postgres" / "postgres.sh",
    DEPLOY / "prometheus" / "check.sh",
    DEPLOY / "docker" / "check-compose.sh",
]
POSTGRES_SH = DEPLOY / "postgres" / "postgres.sh"


def _postgres_sh(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QW_PG_")}
    return subprocess.run(
        ["bash", str(POSTGRES_SH), *args],
        env={**clean, **env}, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_executable_bash_that_parses(script: Path) -> None:
    assert os.access(script, os.X_OK), f"{script} is not executable"
    assert script.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_postgres_url_default() -> None:
    proc = _postgres_sh("url")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "postgresql+psycopg://qw:qw@127.0.0.1:15432/qualitywatch\n"


def test_postgres_url_follows_the_environment() -> None:
    proc = _postgres_sh(
        "url", QW_PG_PORT="25432", QW_PG_USER="app", QW_PG_PASSWORD="s3cret", QW_PG_DB="qw_test"
    )
    assert proc.stdout == "postgresql+psycopg://app:s3cret@127.0.0.1:25432/qw_test\n"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"QW_PG_PORT": "http"}, "QW_PG_PORT=http"),
        ({"QW_PG_PORT": "80"}, "QW_PG_PORT=80"),
        ({"QW_PG_PASSWORD": "p@ss"}, "QW_PG_PASSWORD"),
        ({"QW_PG_DB": "drop table"}, "QW_PG_DB"),
        ({"QW_PG_USER": "postgres"}, "superuser"),
    ],
)
def test_postgres_rejects_bad_settings_clearly(env: dict[str, str], message: str) -> None:
    proc = _postgres_sh("url", **env)
    assert proc.returncode == 1
    assert "ERROR" in proc.stderr
    assert message in proc.stderr
    assert proc.stdout == ""


def test_postgres_unknown_command() -> None:
    proc = _postgres_sh("frobnicate")
    assert proc.returncode == 1
    assert "unknown command: frobnicate" in proc.stderr


def test_cluster_ids_never_start_with_a_dash() -> None:
    """kafka-storage reads '-x...' as an option; a CI run failed on one such id (1 in 64)."""
    import contextlib
    import importlib.util
    import io
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "deploy" / "local" / "kafka_probe.py"
    spec = importlib.util.spec_from_file_location("kafka_probe", path)
    assert spec is not None
    assert spec.loader is not None
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for _ in range(2000):
            probe.cmd_cluster_id()
    ids = out.getvalue().split()
    assert len(ids) == 2000
    assert all(len(i) == 22 for i in ids)
    assert not [i for i in ids if i.startswith("-")]
