"""``bound_commit_flush`` (services/scorer/app.py) on stand-ins for Faust's producer and
consumer: the flush inside a commit of input offsets waits for what the producer's buffer
held when the commit began and for aiokafka's own flush, never for the buffer to empty;
every other flush is Faust's full one. The real path runs in the e2e tests
(tests/e2e/test_scorer_broker_restart.py, test_scorer_chaos.py): a worker draining a
backlog commits as it goes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

import pytest

from services.scorer.app import bound_commit_flush


class Buffer:
    def __init__(self, size: int) -> None:
        self.size = size
        self.calls: list[int] = []

    async def flush_atmost(self, n: int) -> int:
        self.calls.append(n)
        return n


class Inner:
    def __init__(self) -> None:
        self.flushes = 0

    async def flush(self) -> None:
        self.flushes += 1


def fake_app(
    guarantee: Any = "at_least_once", threaded: bool = False
) -> tuple[Any, list[Callable[[], Coroutine[Any, Any, None]]], list[str]]:
    """An app whose producer and consumer record what is called; the tasks it was given."""
    calls: list[str] = []
    tasks: list[Callable[[], Coroutine[Any, Any, None]]] = []

    async def full_flush() -> None:
        calls.append("full flush")

    async def commit_offsets(*args: Any, **kwargs: Any) -> str:
        calls.append(f"commit {args} {kwargs}")
        await app.producer.flush()  # as faust-streaming 0.15 does before committing
        return "committed"

    producer = SimpleNamespace(flush=full_flush, buffer=Buffer(5), _producer=Inner())
    consumer = SimpleNamespace(_commit_offsets=commit_offsets)
    app = SimpleNamespace(
        conf=SimpleNamespace(processing_guarantee=guarantee, producer_threaded=threaded),
        producer=producer,
        consumer=consumer,
        task=tasks.append,
    )
    return app, tasks, calls


def test_a_commit_flushes_what_the_buffer_held_then_and_other_flushes_are_full() -> None:
    app, tasks, calls = fake_app(SimpleNamespace(value="at_least_once"))
    bound_commit_flush(app)
    assert len(tasks) == 1  # installed once the app runs

    async def scenario() -> None:
        await tasks[0]()
        # a flush outside a commit (a revocation, shutdown): Faust's own
        await app.producer.flush()
        assert calls == ["full flush"]
        # a commit: the buffer's 5 messages and the one in hand, then aiokafka's batches
        assert await app.consumer._commit_offsets({"tp": 7}, force=True) == "committed"
        assert calls == ["full flush", "commit ({'tp': 7},) {'force': True}"]
        assert app.producer.buffer.calls == [6]
        assert app.producer._producer.flushes == 1
        # after the commit, a flush is a full one again
        await app.producer.flush()
        assert calls[-1] == "full flush"
        assert app.producer.buffer.calls == [6]

    asyncio.run(scenario())


def test_a_commit_before_aiokafkas_producer_exists_flushes_the_buffer_only() -> None:
    app, tasks, calls = fake_app()
    app.producer._producer = None
    bound_commit_flush(app)

    async def scenario() -> None:
        await tasks[0]()
        app.producer.buffer.size = 0
        await app.consumer._commit_offsets()
        assert app.producer.buffer.calls == [1]
        assert "full flush" not in calls

    asyncio.run(scenario())


def test_the_commit_flag_is_reset_when_the_commit_fails() -> None:
    app, tasks, calls = fake_app()
    bound_commit_flush(app)

    async def failing(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("broker gone")

    async def scenario() -> None:
        app.consumer._commit_offsets = failing
        await tasks[0]()
        with pytest.raises(RuntimeError, match="broker gone"):
            await app.consumer._commit_offsets()
        await app.producer.flush()
        assert calls == ["full flush"]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("guarantee", "threaded"), [("exactly_once", False), ("at_least_once", True)]
)
def test_nothing_is_installed_where_the_buffer_is_not_the_plain_producers(
    guarantee: str, threaded: bool
) -> None:
    app, tasks, _ = fake_app(guarantee, threaded)
    bound_commit_flush(app)
    assert tasks == []
