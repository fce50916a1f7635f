"""``qwatch baseline`` finds the alerts service where the services' own settings put it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from services.baseline_cli import DEFAULT_API, _local_api
from services.cli import app


def test_the_api_is_on_the_port_the_alerts_service_listens_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("QW_ALERTS_PORT", raising=False)
    assert _local_api() == DEFAULT_API
    monkeypatch.setenv("QW_ALERTS_PORT", "18002")
    assert _local_api() == "http://127.0.0.1:18002"


@pytest.mark.parametrize("port", ["0", "65536", "http://x", "-1"])
def test_a_port_that_is_not_one_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, port: str
) -> None:
    monkeypatch.delenv("QW_ALERTS_URL", raising=False)
    monkeypatch.setenv("QW_ALERTS_PORT", port)
    result = CliRunner().invoke(app, ["baseline", "list", "spam-en"])
    assert result.exit_code == 2
    assert result.output.strip() == f"qwatch: QW_ALERTS_PORT={port!r} is not a port (1-65535)"
