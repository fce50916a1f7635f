"""What ``qwatch scorer`` says at the default log level: a plain INFO line when it is ready
to score (its partitions, state directory and broker) and one when a rebalance assigns it
partitions, in the format of ingest's and alerts' lines, although the Faust worker takes the
root logger over at QW_LOG_LEVEL (default warning)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP

from services import cli
from services.scorer import app as scorer_app
from services.scorer.app import create_app, partition_list, ready_line, rebalance_line
from services.scorer.settings import ScorerSettings
from shared.settings import KafkaSettings

EVENTS = "qw.events.v1"


def test_partition_list() -> None:
    assert partition_list([3, 0, 1, 2, 6]) == "0-3, 6"
    assert partition_list([5]) == "5"
    assert partition_list([]) == "none"


def test_lines() -> None:
    where = "state in /s, broker b:9092"
    assert ready_line(EVENTS, {0, 1, 2, 3}, 8, where) == (
        "scorer ready: scoring partitions 0-3 of qw.events.v1 (8 in all); state in /s, "
        "broker b:9092"
    )
    assert ready_line(EVENTS, set(), 8, where).startswith(
        "scorer ready but idle: no partition of qw.events.v1 is assigned to this worker "
        "(more workers than its 8 partitions?)"
    )
    assert rebalance_line(EVENTS, None, {0, 1}) == (
        "partitions 0-1 of qw.events.v1 assigned; recovering their state"
    )
    assert rebalance_line(EVENTS, {0, 1, 2, 3}, {2, 3, 4}) == (
        "rebalance: partitions 2-4 of qw.events.v1 assigned (gained 4, lost 0-1); "
        "recovering their state"
    )
    assert rebalance_line(EVENTS, {0, 1}, {0, 1}).endswith("(unchanged); recovering their state")
    assert rebalance_line(EVENTS, {0, 1}, set()) == (
        "rebalance: no partition of qw.events.v1 assigned (lost 0-1)"
    )


class _Consumer:
    """What the readiness line asks of Faust's consumer."""

    def __init__(self) -> None:
        self.assigned: set[TP] = set()

    def assignment(self) -> set[TP]:
        return self.assigned

    def topic_partitions(self, topic: str) -> int | None:
        return 8 if topic == EVENTS else None


async def test_the_worker_says_when_it_is_ready_and_when_partitions_move(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The hooks on Faust's rebalance signals, driven as Faust drives them: an assignment,
    the table recovered (said once, however many times Faust signals it), a rebalance."""
    kafka = KafkaSettings(bootstrap="127.0.0.1:1", replication_factor=1, min_insync_replicas=1)
    settings = ScorerSettings(data_dir=str(tmp_path / "scorer"), kafka=kafka)
    app = create_app(settings, "a-cluster")
    where = tmp_path / "scorer" / "cluster-a-cluster" / "qw-scorer"
    assert where == scorer_app.state_dir(settings, "a-cluster")
    assert where.is_dir()
    app.finalize()
    consumer = _Consumer()
    app._consumer = consumer  # type: ignore[assignment]  # (faust: the cached consumer)
    changelog = TP("qw-scorer-state-changelog", 0)
    caplog.set_level(logging.INFO, logger="services.scorer.app")

    def said() -> list[str]:
        lines = [r.getMessage() for r in caplog.records if r.name == "services.scorer.app"]
        assert all(
            r.levelno == logging.INFO for r in caplog.records if r.name == "services.scorer.app"
        )
        caplog.clear()
        return lines

    consumer.assigned = {TP(EVENTS, p) for p in range(4)} | {changelog}
    await app.on_partitions_assigned.send(set(consumer.assigned))
    assert said() == ["partitions 0-3 of qw.events.v1 assigned; recovering their state"]
    await app.on_rebalance_complete.send()
    await app.on_rebalance_complete.send()
    assert said() == [
        "scorer ready: scoring partitions 0-3 of qw.events.v1 (8 in all); "
        f"state in {where}, broker 127.0.0.1:1"
    ]

    await app.on_partitions_revoked.send(set(consumer.assigned))
    consumer.assigned = {TP(EVENTS, p) for p in (2, 3, 4)}
    await app.on_partitions_assigned.send(set(consumer.assigned))
    await app.on_rebalance_complete.send()
    assert said() == [
        "rebalance: partitions 2-4 of qw.events.v1 assigned (gained 4, lost 0-1); "
        "recovering their state",
        "scorer ready: scoring partitions 2-4 of qw.events.v1 (8 in all); "
        f"state in {where}, broker 127.0.0.1:1",
    ]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """The root logger and the worker's logger as they were (the test hands them to a
    stand-in of Faust's logging set-up)."""
    root = logging.getLogger()
    own = logging.getLogger("services.scorer.app")
    saved = (root.handlers[:], root.level, own.handlers[:], own.level, own.propagate)
    try:
        yield
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        own.handlers[:], own.level, own.propagate = saved[2], saved[3], saved[4]


def test_the_scorer_command_shows_the_workers_lines_at_the_default_level(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restored_logging: None
) -> None:
    """``qwatch scorer`` with QW_LOG_LEVEL unset: the worker replaces the root logger's
    handlers with its own at WARNING (mode.utils.logging.setup_logging); the worker's INFO
    lines still reach standard error, as ingest's and alerts' do, once each."""
    monkeypatch.delenv("QW_LOG_LEVEL", raising=False)
    monkeypatch.setenv("QW_KAFKA_BOOTSTRAP", "127.0.0.1:1")

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr("shared.kafka.wait_for_broker", nothing)
    monkeypatch.setattr("shared.kafka.ensure_topics", nothing)
    faust_output = io.StringIO()
    levels: list[str] = []

    def worker(
        settings: ScorerSettings, loglevel: str = "warning", cluster_id: str | None = None
    ) -> None:
        levels.append(loglevel)
        # what the Faust worker does to logging when it starts
        root = logging.getLogger()
        root.handlers.clear()
        faust_handler = logging.StreamHandler(faust_output)
        faust_handler.setLevel(logging.WARNING)
        root.addHandler(faust_handler)
        root.setLevel(logging.WARNING)
        scorer_app.log.info("scorer ready: scoring partitions 0-3 of qw.events.v1")
        scorer_app.log.debug("not at the default level")

    monkeypatch.setattr(scorer_app, "run_worker", worker)
    cli.scorer()
    assert levels == ["warning"]  # Faust's own lines stay at QW_LOG_LEVEL's default
    err = capsys.readouterr().err.splitlines()
    ready = [ln for ln in err if "scorer ready" in ln]
    assert len(ready) == 1, err
    assert ready[0].endswith(
        " INFO services.scorer.app: scorer ready: scoring partitions 0-3 of qw.events.v1"
    )
    assert not any("not at the default level" in ln for ln in err)
    assert "scorer ready" not in faust_output.getvalue()  # not twice


def test_no_spinner_codes_when_the_output_is_not_a_terminal(tmp_path: Path) -> None:
    """Faust's start-up spinner wrote ESC[?25l, ESC[?25h and backspaces into the scorer's
    log file; it spins on a terminal only."""
    import contextlib

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    kafka = KafkaSettings(bootstrap="127.0.0.1:1", replication_factor=1, min_insync_replicas=1)
    app = scorer_app.create_app(ScorerSettings(data_dir=str(tmp_path / "scorer"), kafka=kafka))
    for out, spins in ((io.StringIO(), False), (Terminal(), True)):
        with contextlib.redirect_stdout(out):
            worker = scorer_app.make_worker(app, "warning")
        assert (worker.spinner is not None) is spins
