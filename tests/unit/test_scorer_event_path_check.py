"""``guard_event_path_check`` (services/scorer/app.py): Faust's livelock check on a
partition that aiokafka is resetting (its offset deleted by the broker) no longer crashes
the worker. Faust's own check runs here, on a real Faust app's consumer and a real aiokafka
consumer's subscription state; only the fetcher that holds that state is a stand-in (it
exists once the consumer has connected). The path on the broker is
tests/e2e/test_scorer_retention.py."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Coroutine
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from services.scorer.app import awaiting_reset, guard_event_path_check

EV = TP("ev", 0)


@pytest.fixture
async def setup() -> AsyncIterator[tuple[Any, Any, list[Callable[[], Coroutine[Any, Any, None]]]]]:
    """A Faust app whose consumer's thread holds an aiokafka consumer assigned ``ev`` 0,
    fetched a moment ago at offset 5 of 10; the tasks the app was given."""
    app = faust.App("guard-test", broker="kafka://127.0.0.1:9")
    tasks: list[Callable[[], Coroutine[Any, Any, None]]] = []
    app.task = tasks.append
    consumer: Any = app.consumer
    inner = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
    part = TopicPartition(EV.topic, EV.partition)
    inner._subscription.assign_from_user({part})
    inner._fetcher = SimpleNamespace(_subscriptions=inner._subscription)
    consumer._thread._consumer = inner
    consumer._thread.time_started = time.monotonic() - 1000
    state = inner._subscription.subscription.assignment.state_value(part)
    state.seek(5)
    state.highwater = 10
    state.timestamp = time.time() * 1000
    yield consumer, state, tasks
    inner._closed = True  # (never started: nothing to close)


async def test_faust_check_raises_on_a_partition_awaiting_reset_unguarded(setup: Any) -> None:
    consumer, state, _ = setup
    consumer.verify_event_path(time.monotonic(), EV)  # a position: the check runs
    state.await_reset(0)
    assert awaiting_reset(consumer, EV)
    with pytest.raises(AssertionError):  # what crashed the worker
        consumer.verify_event_path(time.monotonic(), EV)


async def test_guarded_check_skips_a_partition_awaiting_reset(setup: Any) -> None:
    consumer, state, tasks = setup
    guard_event_path_check(consumer.app)
    assert len(tasks) == 1
    await tasks[0]()
    consumer.verify_event_path(time.monotonic(), EV)
    state.await_reset(0)
    consumer.verify_event_path(time.monotonic(), EV)  # skipped, no AssertionError
    state.seek(7)  # reset done: checked again
    assert not awaiting_reset(consumer, EV)
    consumer.verify_event_path(time.monotonic(), EV)


async def test_guarded_check_skips_a_position_reset_while_it_reads(setup: Any) -> None:
    consumer, state, tasks = setup
    calls: list[TP] = []

    def reset_meanwhile(now: float, tp: TP) -> None:
        calls.append(tp)
        state.await_reset(0)  # as the consumer thread may, between the guard and the read
        assert state.position is not None  # aiokafka's own assertion, as faust meets it

    consumer.verify_event_path = reset_meanwhile
    guard_event_path_check(consumer.app)
    await tasks[0]()
    consumer.verify_event_path(time.monotonic(), EV)
    assert calls == [EV]


async def test_guarded_check_raises_any_other_assertion(setup: Any) -> None:
    consumer, _, tasks = setup

    def broken(now: float, tp: TP) -> None:
        raise AssertionError("something else")

    consumer.verify_event_path = broken
    guard_event_path_check(consumer.app)
    await tasks[0]()
    with pytest.raises(AssertionError, match="something else"):
        consumer.verify_event_path(time.monotonic(), EV)


async def test_a_partition_not_assigned_is_not_checked(setup: Any) -> None:
    consumer, _, tasks = setup
    guard_event_path_check(consumer.app)
    await tasks[0]()
    assert awaiting_reset(consumer, TP("ev", 3))
    consumer.verify_event_path(time.monotonic(), TP("ev", 3))
