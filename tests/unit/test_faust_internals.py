"""The faust-streaming internals the scorer worker relies on are there, with the shapes it
uses (``services/scorer/app.py``, each use commented "faust-streaming 0.15 internal").

faust-streaming is pinned below 0.16; an upgrade that renames or reshapes one of these
fails here in a second, naming it, instead of as an end-to-end drain that times out after
minutes (a gap that never commits, a commit that flushes everything).
"""

from __future__ import annotations

import inspect
from typing import Any

from faust.transport import consumer as base_consumer
from faust.transport import producer as base_producer
from faust.transport.drivers import aiokafka as driver


def _parameters(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_the_gap_check_has_the_consumers_gaps_and_committed_offsets() -> None:
    consumer = base_consumer.Consumer
    # lost_input: one interval of offsets counted as acknowledged once those before are
    assert inspect.iscoroutinefunction(consumer._add_gap)
    assert _parameters(consumer._add_gap) == ["self", "tp", "offset_from", "offset_to"]
    # first_expected: the offset the consumer's commits count from, per partition
    assert "_committed_offset" in consumer.__annotations__
    assert "self._committed_offset = defaultdict(" in inspect.getsource(consumer.__init__)


def test_the_bounded_commit_flush_has_the_producers_buffer_and_the_consumers_commit() -> None:
    # _bounded_commit_flush: Consumer._commit_offsets wrapped, Producer.buffer flushed at
    # most up to its size, then the AIOKafkaProducer's own flush
    assert inspect.iscoroutinefunction(base_consumer.Consumer._commit_offsets)
    assert _parameters(base_consumer.Consumer._commit_offsets)[:2] == ["self", "offsets"]
    assert "self.buffer = ProducerBuffer(" in inspect.getsource(base_producer.Producer.__init__)
    buffer = base_producer.ProducerBuffer
    assert inspect.iscoroutinefunction(buffer.flush_atmost)
    assert _parameters(buffer.flush_atmost) == ["self", "max_messages"]
    assert isinstance(inspect.getattr_static(buffer, "size"), property)
    assert "_producer" in driver.Producer.__annotations__


def test_the_prompt_table_manager_does_what_fausts_start_does_but_the_sleep() -> None:
    """``PromptTableManager.on_start`` replaces Faust's whole: an upgrade that adds a step
    to it would be skipped silently. Faust's is the sleep and the two steps it keeps."""
    from faust.tables import TableManager

    from services.scorer.app import PromptTableManager

    body = [
        line.strip()
        for line in inspect.getsource(TableManager.on_start).splitlines()[2:]  # (def, doc)
        if line.strip()
    ]
    assert body == [
        "await self.sleep(1.0)",
        "if not self.should_stop:",
        "await self._update_channels()",
        "await self.recovery.start()",
    ]
    assert inspect.iscoroutinefunction(TableManager._update_channels)
    ours = inspect.getsource(PromptTableManager.on_start)
    assert "sleep" not in ours
    assert body[1:] == [line.strip() for line in ours.splitlines()[2:] if line.strip()]
