"""Ingest against a real broker: HTTP batches and raw topics to the events and DLQ topics."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from services.ingest import main as ingest_main
from services.ingest.api import create_app
from services.ingest.pipeline import RawValidator
from services.ingest.publisher import Publisher
from services.ingest.settings import IngestSettings
from shared import batches, codec
from shared.kafka import (
    TopicCreationError,
    TopicNotServedError,
    ensure_topics,
    make_producer,
    wait_for_leaders,
)
from shared.settings import KafkaSettings
from tests.factories import decision, verdict
from tests.integration.kafka_helpers import read_topic

pytestmark = pytest.mark.kafka


async def test_http_batch_with_bad_items_keeps_the_good_ones(kafka_settings: KafkaSettings) -> None:
    await ensure_topics(kafka_settings)
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        app = create_app(Publisher(producer, kafka_settings.topics))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            body = [
                decision(1, "a"), decision(2, "b", action="nuke"), verdict(1, "a"), {"x": 1},
                verdict(2, "a", correct=False, error_type=None),
            ]  # fmt: skip
            r = await client.post("/v1/events", json=body)
            assert r.status_code == 422
            data = r.json()
            assert data["accepted"] == 2
            assert [x["index"] for x in data["rejected"]] == [1, 3, 4]
            assert data["rejected"][0]["errors"][0]["loc"] == ["decision", "action"]
            assert [e["loc"] for e in data["rejected"][2]["errors"]] == [["verdict", "error_type"]]

            ok = await client.post(
                "/v1/decisions",
                content=b"\n".join(codec.dumps(decision(i, "b")) for i in (3, 4)),
                headers={"content-type": "application/x-ndjson"},
            )
            assert ok.status_code == 202
            assert ok.json() == {"accepted": 2, "rejected": []}
            empty = await client.post("/v1/verdicts", content=b"")
            assert empty.status_code == 400
            assert "empty body" in empty.json()["detail"]
    finally:
        await producer.stop()

    msgs = await read_topic(kafka_settings.bootstrap, kafka_settings.topics.events, expect=2)
    by_queue: dict[str, list[str]] = {}
    for key, value in msgs:
        assert key == value["queue_id"].encode()
        by_queue.setdefault(value["queue_id"], [])
        assert value["v"] == 3  # one list per field (shared/batches.py)
        by_queue[value["queue_id"]] += value["decisions"].get("decision_id", [])
        by_queue[value["queue_id"]] += value["verdicts"].get("verdict_id", [])
    assert sorted(by_queue["a"]) == ["d1", "v1"]
    assert sorted(by_queue["b"]) == ["d3", "d4"]


async def test_raw_topics_validated_and_malformed_dead_lettered(
    kafka_settings: KafkaSettings,
) -> None:
    settings = IngestSettings(kafka=kafka_settings)
    topics = kafka_settings.topics
    await ensure_topics(kafka_settings)
    producer = make_producer(kafka_settings)
    await producer.start()
    ready = asyncio.Event()
    validator = RawValidator(settings, Publisher(producer, topics))
    task = asyncio.create_task(validator.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        bad_json = b'{"kind": "decision", "decision_id": '
        bad_verdict = codec.dumps(verdict(9, "a", correct=False, error_type=None))
        await producer.send_and_wait(topics.decisions_raw, codec.dumps(decision(1, "a")), key=b"a")
        await producer.send_and_wait(topics.decisions_raw, bad_json, key=b"a")
        await producer.send_and_wait(topics.verdicts_raw, codec.dumps(verdict(1, "a")), key=b"a")
        await producer.send_and_wait(topics.verdicts_raw, bad_verdict, key=b"a")

        dlq = await read_topic(kafka_settings.bootstrap, topics.deadletter, expect=2)
        assert len(dlq) == 2
        records = {r["source_topic"]: r for _, r in dlq}
        assert "not JSON" in records[topics.decisions_raw]["reason"]
        assert base64.b64decode(records[topics.decisions_raw]["value_b64"]) == bad_json
        # the verdict's refusal names its field, in the reason and in the errors
        assert records[topics.verdicts_raw]["reason"].startswith(
            "error_type: Value error, an incorrect verdict needs an error_type"
        )
        assert [e["loc"] for e in records[topics.verdicts_raw]["errors"]] == [["error_type"]]
        assert base64.b64decode(records[topics.verdicts_raw]["value_b64"]) == bad_verdict
        assert records[topics.verdicts_raw]["offset"] == 1
        assert records[topics.verdicts_raw]["stage"] == "ingest"

        events = await read_topic(kafka_settings.bootstrap, topics.events, expect=2)
        # ingest writes batch v3: one list per field (shared/batches.py)
        assert {b["v"] for _, b in events} == {3}
        decoded = [cast(batches.ColumnBatch, batches.decode(codec.dumps(b))) for _, b in events]
        ids = sorted(
            [d for b in decoded for d in b["decisions"].get("decision_id", [])]
            + [v for b in decoded for v in b["verdicts"].get("verdict_id", [])]
        )
        assert ids == ["d1", "v1"]
        assert validator.stats.dead_lettered == 2
        assert validator.stats.valid == 2
    finally:
        validator.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
        await producer.stop()


N_BACKLOG = 30_000


async def _most_verdicts_ahead(kafka_settings: KafkaSettings, lead_s: float) -> int:
    """Raw topics with a backlog of one queue's 30,000 decisions a second apart (9 MB: more
    than ingest fetches from a partition at once, so whichever topic the consumer happens to
    take first, the verdicts run ahead of most decisions) and a verdict of every fifth,
    reviewed a second after it; ingest reads them in polls of 500. Returns the most verdicts
    that reached the events topic before their decision."""
    settings = IngestSettings(
        kafka=kafka_settings, poll_max_records=500, linger_ms=0, verdict_lead_s=lead_s
    )
    topics = kafka_settings.topics
    await ensure_topics(kafka_settings)
    producer = make_producer(kafka_settings)
    await producer.start()
    t0 = datetime.now(UTC) - timedelta(days=1)
    sends = []
    for i in range(N_BACKLOG):
        at = t0 + timedelta(seconds=i)
        sends.append(
            await producer.send(topics.decisions_raw, codec.dumps(decision(i, "a", at)), key=b"a")
        )
        if i % 5 == 0:
            body = codec.dumps(verdict(i, "a", at + timedelta(seconds=1)))
            sends.append(await producer.send(topics.verdicts_raw, body, key=b"a"))
    await asyncio.gather(*sends)
    decided: set[str] = set()
    waiting: set[str] = set()
    most = 0

    def see(batch: batches.ColumnBatch) -> int:
        nonlocal waiting, most
        ds = batch["decisions"].get("decision_id", [])
        vs = batch["verdicts"].get("decision_id", [])
        decided.update(ds)
        waiting = {d for d in waiting | set(vs) if d not in decided}
        most = max(most, len(waiting))
        return len(ds) + len(vs)

    n = await _ingest_backlog(kafka_settings, settings, producer, N_BACKLOG * 6 // 5, see)
    assert n == N_BACKLOG * 6 // 5  # every event, once
    return most


async def _ingest_backlog(
    kafka_settings: KafkaSettings,
    settings: IngestSettings,
    producer: AIOKafkaProducer,
    events: int,
    see: Callable[[batches.ColumnBatch], int],
) -> int:
    """Run ingest's raw-topic validator on the backlog in the raw topics and hand each
    batch on the events topic (one queue: one partition, in ingest's order) to ``see``,
    which returns its events, until ``events`` were seen (or a minute and a half); stops
    the validator and ``producer``. Returns the events seen."""
    topics = kafka_settings.topics
    validator = RawValidator(settings, Publisher(producer, topics))
    task = asyncio.create_task(validator.run())
    reader = AIOKafkaConsumer(
        topics.events, bootstrap_servers=kafka_settings.bootstrap, auto_offset_reset="earliest"
    )
    await reader.start()
    n = 0
    try:
        deadline = time.monotonic() + 90
        while n < events and time.monotonic() < deadline:
            for records in (await reader.getmany(timeout_ms=500)).values():
                for r in records:
                    n += see(cast(batches.ColumnBatch, batches.decode(r.value)))
    finally:
        await reader.stop()
        validator.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
        await producer.stop()
    return n


async def test_verdicts_do_not_run_ahead_of_a_decisions_backlog(
    kafka_settings: KafkaSettings,
) -> None:
    """A catch-up or backfill: the consumer takes both raw topics at about the same rate in
    messages, so without alignment the verdicts (a fifth of the messages) run far ahead of
    their decisions, and the scorer holds them waiting, up to its bound. With it, at most
    the lead (10 s: two verdicts) and a poll (500) wait."""
    assert await _most_verdicts_ahead(kafka_settings, lead_s=10.0) <= 510


async def test_without_alignment_the_verdicts_run_ahead(kafka_settings: KafkaSettings) -> None:
    """The same backlog with the alignment off (0): what the test above guards against."""
    assert await _most_verdicts_ahead(kafka_settings, lead_s=0.0) > 1000


N_HISTORY = 15_000  # decisions, each with a verdict two hours later: ~9 MB, over 2.6 days


async def _most_ahead(kafka_settings: KafkaSettings, lead_s: float) -> tuple[float, float]:
    """A backfill loaded before ingest starts, as a trial did: decisions 15 s apart and a
    verdict of each two hours later, produced in time order, then read as a backlog in
    ingest's default polls (whichever topic a fetch brings first, up to 4 MiB of it), with
    both leads ``lead_s``. Returns the most seconds of event time the decisions on the
    events topic ran ahead of a verdict in a later message, and the verdicts ahead of a
    decision in a later message. Past the scorer's grace (6 h), such a verdict counts as
    late (in the same message it does not: the scorer closes subgroups after the message),
    and verdicts ahead move the scorer's clock past decisions to come."""
    settings = IngestSettings(kafka=kafka_settings, decision_lead_s=lead_s, verdict_lead_s=lead_s)
    topics = kafka_settings.topics
    await ensure_topics(kafka_settings)
    producer = make_producer(kafka_settings)
    await producer.start()
    t0 = datetime.now(UTC) - timedelta(days=3)
    lag = timedelta(hours=2)
    sends, verdicts_due = [], 0
    for i in range(N_HISTORY):
        at = t0 + timedelta(seconds=15 * i)
        while verdicts_due < i and t0 + timedelta(seconds=15 * verdicts_due) + lag <= at:
            due = t0 + timedelta(seconds=15 * verdicts_due) + lag
            body = codec.dumps(verdict(verdicts_due, "a", due))
            sends.append(await producer.send(topics.verdicts_raw, body, key=b"a"))
            verdicts_due += 1
        sends.append(
            await producer.send(topics.decisions_raw, codec.dumps(decision(i, "a", at)), key=b"a")
        )
    await asyncio.gather(*sends)
    decided = reviewed = -1.0
    most = [0.0, 0.0]

    def see(batch: batches.ColumnBatch) -> int:
        nonlocal decided, reviewed
        vs = batch["verdicts"].get("reviewed_at", [])
        ds = batch["decisions"].get("decided_at", [])
        if vs:  # how far the decisions before these verdicts ran ahead of them
            most[0] = max(most[0], decided - min(vs))
        if ds:  # ... and the verdicts before these decisions
            most[1] = max(most[1], reviewed - min(ds))
        decided = max(decided, *ds, -1.0)
        reviewed = max(reviewed, *vs, -1.0)
        return len(ds) + len(vs)

    n = await _ingest_backlog(kafka_settings, settings, producer, N_HISTORY + verdicts_due, see)
    assert n == N_HISTORY + verdicts_due  # every event, once
    return most[0], most[1]


async def test_neither_raw_topic_runs_ahead_of_the_other_in_a_backlog(
    kafka_settings: KafkaSettings,
) -> None:
    """With the leads (60 s), the decisions before a verdict on the events topic are at
    most that far ahead of it, and the verdicts before a decision, whichever topic the
    fetches bring first. (Without them, how far the decisions run ahead depends on that
    order: 142,785 s, 40 hours, in one run here, none in another. With the verdicts paused
    only after a poll was handled, as before 2026-12-06, they ran 142,725-142,785 s ahead in
    3 runs of 3: a fetch of them was handled before the decisions of those 40 hours. With
    both held record by record: at most 45 s either way, in 1.4-1.6 s for the 30,000 events.
    tests/unit/test_ingest_alignment.py's property test, on any order, finds either bound
    broken without the alignment.)"""
    decisions, verdicts = await _most_ahead(kafka_settings, 60.0)
    assert decisions <= 60
    assert verdicts <= 60


class _SlowPublisher(Publisher):
    """Ingest's publisher, a tenth of a second slower a poll: a backlog read while another
    process joins the group."""

    async def publish_items(self, *args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0.1)
        await super().publish_items(*args, **kwargs)


async def test_records_in_hand_are_not_lost_to_a_rebalance_or_a_stop(
    kafka_settings: KafkaSettings,
) -> None:
    """Records the alignment keeps in hand are not committed: a second ingest process
    joining the group (a rebalance, while the first holds some), then the first stopping
    in the middle, lose none of them (their new owner reads them from the committed
    offset). Every event reaches the events topic, at least once."""
    settings = IngestSettings(kafka=kafka_settings, poll_max_records=500, linger_ms=0)
    topics = kafka_settings.topics
    await ensure_topics(kafka_settings)
    producer = make_producer(kafka_settings)
    await producer.start()
    queues = [f"q{i}" for i in range(8)]  # over the partitions
    t0 = datetime.now(UTC) - timedelta(days=2)
    sends, want = [], set()
    for i in range(6000):
        q, at = queues[i % len(queues)], t0 + timedelta(seconds=15 * i)
        sends.append(
            await producer.send(
                topics.decisions_raw, codec.dumps(decision(i, q, at)), key=q.encode()
            )
        )
        if i >= 480:  # each verdict two hours after its decision: 480 decisions later
            j = i - 480
            body = codec.dumps(verdict(j, queues[j % len(queues)], at))
            sends.append(
                await producer.send(topics.verdicts_raw, body, key=queues[j % len(queues)].encode())
            )
            want.add(f"v{j}")
        want.add(f"d{i}")
    await asyncio.gather(*sends)
    seen: list[str] = []
    reader = AIOKafkaConsumer(
        topics.events, bootstrap_servers=kafka_settings.bootstrap, auto_offset_reset="earliest"
    )
    await reader.start()
    workers: list[tuple[RawValidator, asyncio.Task[None], AIOKafkaProducer]] = []

    async def start() -> RawValidator:
        p = make_producer(kafka_settings)
        await p.start()
        v = RawValidator(settings, _SlowPublisher(p, topics))
        workers.append((v, asyncio.create_task(v.run()), p))
        return v

    async def read_until(n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(set(seen)) < n and time.monotonic() < deadline:
            for records in (await reader.getmany(timeout_ms=200)).values():
                for r in records:
                    b = cast(batches.ColumnBatch, batches.decode(r.value))
                    seen.extend(b["decisions"].get("decision_id", []))
                    seen.extend(b["verdicts"].get("verdict_id", []))

    try:
        first = await start()
        await read_until(len(want) // 5, 60)
        second = await start()  # a rebalance, the first holding records in hand meanwhile
        await read_until(len(want) // 2, 60)
        first.stop()  # what it holds then is neither handled nor committed
        await asyncio.wait_for(workers[0][1], 30)
        await read_until(len(want), 90)
    finally:
        await reader.stop()
        for v, task, p in workers:
            v.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)
            await p.stop()
        await producer.stop()
    assert want - set(seen) == set()  # nothing lost
    assert first._rebalances.count >= 3  # assigned, revoked, assigned again
    assert second.stats.consumed > 0
    a = first.alignment
    assert a.holds + a.pauses > 0, "the backlog never had records wait: nothing tested"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STARTS = 6


async def test_a_fresh_start_logs_no_kafka_error(
    kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """Ingest on topics it creates (a fresh broker, here fresh prefixes) reads the
    admitted-queues topic at once: without waiting for its leader to serve it, aiokafka's
    fetcher logged "Failed fetch offsets ... NotLeaderForPartitionError" at ERROR on most
    such starts (a race, so several starts)."""
    caplog.set_level(logging.INFO)
    for n in range(STARTS):
        fresh = kafka_settings.model_copy(
            update={"topic_prefix": f"{kafka_settings.topic_prefix}{n}-"}
        )
        settings = IngestSettings(kafka=fresh, port=_free_port())
        caplog.clear()
        stop = asyncio.Event()
        task = asyncio.create_task(ingest_main.run(settings, stop))
        try:
            async with asyncio.timeout(60):
                while not any("ingest listening" in r.getMessage() for r in caplog.records):
                    assert not task.done(), task.exception()
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        noisy = [
            f"{r.levelname} {r.name}: {r.getMessage()}"
            for r in caplog.records
            if r.name.startswith("aiokafka") and r.levelno >= logging.WARNING
        ]
        assert noisy == []
        assert any(r.getMessage().startswith("created topics ") for r in caplog.records)
        assert any(r.getMessage().startswith("queues: ") for r in caplog.records)


async def test_a_topic_never_served_ends_the_wait_in_one_line(
    kafka_settings: KafkaSettings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wait is bounded, says so once when it is long, and its end says which topic,
    where, and what bounds it: one line, which ``qwatch`` prints for a
    ``TopicCreationError`` (exit 1)."""
    monkeypatch.setattr("shared.kafka.LEADERS_NOTE_AFTER_S", 0.2)
    caplog.set_level(logging.INFO)
    missing = kafka_settings.topics.queues  # never created under this test's prefix
    with pytest.raises(TopicNotServedError) as raised:
        await wait_for_leaders(kafka_settings, [missing], timeout=1.0)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == [
        f"waiting up to 1 s for a leader to serve every partition of {missing}"
    ]
    assert isinstance(raised.value, TopicCreationError)
    message = str(raised.value)
    assert "\n" not in message
    assert f"no leader served every partition of {missing} at" in message
    assert kafka_settings.bootstrap in message
    assert "QW_KAFKA_CONNECT_TIMEOUT_S" in message
    # the wait looked for the topic without creating it (the local broker auto-creates)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap)
    await admin.start()
    try:
        assert missing not in await admin.list_topics()
    finally:
        await admin.close()
