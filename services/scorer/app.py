"""The scorer's Faust worker: thin glue around ``services.scorer.core.Scorer``.

One agent consumes ``qw.events.v1`` (batches of one queue's events), hands each batch to the
pure ``Scorer``, and produces the resulting snapshots and breaches. State lives in two
changelogged tables on the events topic's partitions: ``queues`` (one entry per queue) and
``chunks`` (write-once chunks of the decisions for the join and of the verdicts already
counted, one entry per batch; see ``services/scorer/chunks.py``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import faust

from services.scorer.core import Scorer
from services.scorer.settings import ScorerSettings
from shared import batches, codec, deadletter
from shared.topics import queue_key

log = logging.getLogger(__name__)


def create_app(settings: ScorerSettings) -> faust.App:
    topics = settings.kafka.topics
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.kafka.topic_prefix + settings.app_id,
        broker=[f"kafka://{h}" for h in settings.kafka.bootstrap.split(",")],
        store="memory://",
        datadir=settings.data_dir,
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=1,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_request_timeout=40.0,
        producer_acks=-1,
        stream_wait_empty=False,
        # messages are batches of up to MAX_EVENTS_PER_MESSAGE events (100s of KB): fetch
        # several per partition per round trip
        consumer_max_fetch_size=16 * 1024 * 1024,
        producer_linger=0.005,
        key_serializer="raw",
        value_serializer="raw",
    )
    events = app.topic(topics.events, key_type=bytes, value_type=bytes)
    snapshots = app.topic(topics.snapshots, key_type=bytes, value_type=bytes)
    breaches = app.topic(topics.breaches, key_type=bytes, value_type=bytes)
    deadletter_topic = app.topic(topics.deadletter, key_type=bytes, value_type=bytes)
    # The app's default serializer is raw bytes (the topics carry our own orjson); the
    # tables hold JSON-able Python values and serialize them for their changelogs.
    schema: faust.Schema[Any, Any] = faust.Schema(key_serializer="json", value_serializer="json")
    queues = app.Table("queues", schema=schema)
    chunks = app.Table("chunks", schema=schema)
    scorer = Scorer(settings, queues, chunks)
    app.qw_scorer = scorer  # type: ignore[attr-defined]

    def _rebalanced(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        scorer.invalidate()  # cached state may belong to partitions this worker lost

    app.on_partitions_revoked.connect(_rebalanced)
    app.on_partitions_assigned.connect(_rebalanced)

    @app.agent(events)
    async def score(stream: Any) -> None:
        async for event in stream.events():
            try:
                batch = batches.decode(event.value)
            except ValueError as exc:
                body = deadletter.record(
                    stage="scorer", reason=str(exc), value=event.value,
                    source_topic=event.message.topic, partition=event.message.partition,
                    offset=event.message.offset, key=event.key,
                )  # fmt: skip
                await deadletter_topic.send(key=event.key, value=body)
                continue
            msg = event.message
            out = scorer.process(batch, time.time(), f"{msg.partition}-{msg.offset}")
            for item, reason in out.rejected:
                body = deadletter.record(
                    stage="scorer", reason=reason, value=codec.dumps(item),
                    source_topic=msg.topic, partition=msg.partition, offset=msg.offset,
                    key=event.key,
                )  # fmt: skip
                await deadletter_topic.send(key=event.key, value=body)
            for snap in out.snapshots:
                await snapshots.send(key=queue_key(snap.queue_id), value=codec.dumps(snap))
            for br in out.breaches:
                await breaches.send(key=queue_key(br.queue_id), value=codec.dumps(br))
                log.info("breach %s", br.dedup_key)

    return app


def run_worker(settings: ScorerSettings, loglevel: str = "warning") -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    app = create_app(settings)
    app.finalize()
    # Faust warns each time table writes wait for its changelog producer: flow control
    # working as designed, not a problem worth a log line per batch.
    logging.getLogger("faust.transport.producer").setLevel(logging.ERROR)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
