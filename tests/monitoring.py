"""Real Prometheus and Alertmanager for tests, started by the project's own scripts
(deploy/local/prometheus.sh, deploy/local/alertmanager.sh) on a free loopback port, in the
test's own state directory, and stopped afterwards. A missing binary fails the test under
CI=true and skips it elsewhere."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.deploy.artefacts import DEPLOY, require_tool

SCRIPTS = {
    "prometheus": (DEPLOY / "local" / "prometheus.sh", "QW_PROMETHEUS", ("prometheus", "promtool")),
    "alertmanager": (
        DEPLOY / "local" / "alertmanager.sh",
        "QW_ALERTMANAGER",
        ("prometheus-alertmanager", "amtool"),
    ),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def need(name: str) -> None:
    """Fail (CI=true) or skip when the server's binaries are not installed."""
    package = "prometheus" if name == "prometheus" else "prometheus-alertmanager"
    for binary in SCRIPTS[name][2]:
        require_tool(binary, package)


def script(name: str, command: str, *, state: Path, port: int, config: Path) -> str:
    path, prefix, _ = SCRIPTS[name]
    env = {
        **os.environ,
        f"{prefix}_PORT": str(port),
        f"{prefix}_CONFIG": str(config),
        "QW_STATE_DIR": str(state),
    }
    proc = subprocess.run(
        ["bash", str(path), command], env=env, capture_output=True, text=True, timeout=90,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{path.name} {command}: {proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


@contextlib.contextmanager
def running(name: str, *, state: Path, config: Path, port: int | None = None) -> Iterator[str]:
    """The server's base URL while it runs."""
    need(name)
    port = port or free_port()
    script(name, "start", state=state, port=port, config=config)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        script(name, "stop", state=state, port=port, config=config)


def log_tail(name: str, state: Path, n: int = 3000) -> str:
    path = state / name / f"{name}.log"
    return path.read_text(errors="replace")[-n:] if path.exists() else f"(no {path})"
