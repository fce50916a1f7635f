"""A service run by ``run_until_signal`` says when a signal stops it, and when it stopped."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from shared.runtime import run_until_signal


async def test_a_signal_stop_is_said_when_it_comes_and_once_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    drained: list[str] = []

    async def main(stop: asyncio.Event) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # (a second signal: said once)
        await asyncio.wait_for(stop.wait(), 10)
        drained.append("drained")

    with caplog.at_level(logging.INFO, logger="qwatch"):
        await run_until_signal(main)
    said = [r.getMessage() for r in caplog.records if r.name == "qwatch"]
    assert said == ["SIGTERM received: stopping (what is in hand is finished first)", "stopped"]
    assert drained == ["drained"]
