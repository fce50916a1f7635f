"""The ingest service: the HTTP API and the raw-topic validator in one process."""

from __future__ import annotations

import asyncio
import logging

from services.ingest.admission import QueueGate, QueuePolicy
from services.ingest.api import QueueAdmin, create_app
from services.ingest.metrics import IngestMetrics
from services.ingest.pipeline import RawValidator
from services.ingest.publisher import Publisher
from services.ingest.settings import IngestSettings
from shared import admission
from shared.collector import settle_gc
from shared.http_auth import policy
from shared.kafka import ensure_topics, make_producer, wait_for_broker, wait_for_leaders
from shared.runtime import http_server, log_when_listening, supervise

log = logging.getLogger(__name__)


async def run(settings: IngestSettings, stop: asyncio.Event) -> None:
    auth = policy()  # a bad key file stops the start here, before the broker is awaited
    queues = QueuePolicy(settings.queues, settings.queue_patterns(), settings.queues_open_max)
    await wait_for_broker(settings.kafka)
    # said once the broker answered: a start that cannot reach it ends with that one line
    log.log(
        logging.INFO if auth.enforced("ingest") else logging.WARNING,
        "ingest HTTP: %s",
        auth.describe(),
    )
    await ensure_topics(settings.kafka)
    # a topic just created is named with its leader a moment before the leader serves it:
    # reading it then logs aiokafka ERRORs on a healthy start (shared/kafka.py; the
    # admitted-queues topic is waited for by its reader, AdmissionLog)
    topics = settings.kafka.topics
    await wait_for_leaders(settings.kafka, [topics.decisions_raw, topics.verdicts_raw])
    # the admitted queues are read to the end before any event is validated
    known = admission.AdmissionLog(settings.kafka, queues.apply)
    await known.start()
    log.info(
        "queues: QW_INGEST_QUEUES=%s, static list %s, %d admitted at run time",
        settings.queues, list(queues.allow) or "empty", len(queues.runtime),
    )  # fmt: skip
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        publisher = Publisher(producer, settings.kafka.topics)
        gate = QueueGate(queues, known.catch_up)
        metrics = IngestMetrics.create()

        async def admit(queue_id: str, by: str) -> None:
            await admission.admit(producer, settings.kafka, queue_id, by)
            await known.catch_up()  # this process answers with it from now on

        async def remove(queue_id: str) -> None:
            await admission.remove(producer, settings.kafka, queue_id)
            await known.catch_up()

        validator = RawValidator(settings, publisher, gate, metrics)
        app = create_app(
            publisher, settings.max_body_bytes, auth, gate=gate,
            queue_admin=QueueAdmin(admit, remove), metrics=metrics,
            max_age_days=settings.max_age_days, max_items=settings.max_items,
            max_inflight_bytes=settings.max_inflight_bytes,
        )  # fmt: skip
        server = http_server(app, settings.host, settings.port)
        settle_gc()  # (imports and the app made: shared/collector.py)
        tasks = [
            asyncio.create_task(validator.run(), name="raw-validator"),
            asyncio.create_task(server.serve(), name="ingest-http"),
            asyncio.create_task(known.run(stop), name="admitted-queues"),
        ]
        log.info("ingest starting on http://%s:%d", settings.host, settings.port)
        listening = log_when_listening(
            server, log, "ingest listening on http://%s:%d", settings.host, settings.port
        )

        def on_stop() -> None:
            validator.stop()
            server.should_exit = True

        try:
            await supervise(tasks, stop, on_stop)
        finally:
            listening.cancel()
    finally:
        await producer.stop()
        await known.stop()
