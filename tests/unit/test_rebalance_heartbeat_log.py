"""aiokafka's "heartbeat failed ... because it is rebalancing" is a normal step of every
rebalance: logged at DEBUG, not WARNING (shared.runtime.quiet_rebalance_heartbeats); its
other heartbeat warnings stay warnings."""

from __future__ import annotations

import inspect
import logging

import pytest
from aiokafka.consumer import group_coordinator

from shared.runtime import REBALANCING_HEARTBEAT, quiet_rebalance_heartbeats


def test_the_words_are_aiokafkas() -> None:
    # (an aiokafka release that words it otherwise must fail here, not warn again quietly)
    assert f'"{REBALANCING_HEARTBEAT}"' in inspect.getsource(group_coordinator)


def test_a_rebalancing_heartbeat_is_debug_and_other_warnings_stay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_rebalance_heartbeats()
    quiet_rebalance_heartbeats()  # (idempotent: one filter)
    log = logging.getLogger("aiokafka.consumer.group_coordinator")
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    log.warning(REBALANCING_HEARTBEAT, "qw-scorer")
    log.warning("Heartbeat failed: local member_id was not recognized; resetting")
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert said == [
        ("DEBUG", "Heartbeat failed for group qw-scorer because it is rebalancing"),
        ("WARNING", "Heartbeat failed: local member_id was not recognized; resetting"),
    ]
    seen: list[logging.LogRecord] = []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Seen(logging.WARNING)
    log.addHandler(handler)
    try:
        log.warning(REBALANCING_HEARTBEAT, "qw-scorer")
    finally:
        log.removeHandler(handler)
    assert seen == []  # (a handler at WARNING, as the services' default, drops it)
    assert sum(type(f).__name__ == "_RebalancingHeartbeat" for f in log.filters) == 1
