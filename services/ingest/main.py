"""The ingest service: the HTTP API and the raw-topic validator in one process."""

from __future__ import annotations

import asyncio
import logging

from services.ingest.api import create_app
from services.ingest.pipeline import RawValidator
from services.ingest.publisher import Publisher
from services.ingest.settings import IngestSettings
from shared.http_auth import policy
from shared.kafka import ensure_topics, make_producer, wait_for_broker
from shared.runtime import http_server, supervise

log = logging.getLogger(__name__)


async def run(settings: IngestSettings, stop: asyncio.Event) -> None:
    auth = policy()  # a bad key file stops the start here, before the broker is awaited
    await wait_for_broker(settings.kafka)
    # said once the broker answered: a start that cannot reach it ends with that one line
    log.log(
        logging.INFO if auth.enforced("ingest") else logging.WARNING,
        "ingest HTTP: %s",
        auth.describe(),
    )
    await ensure_topics(settings.kafka)
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        publisher = Publisher(producer, settings.kafka.topics)
        validator = RawValidator(settings, publisher)
        server = http_server(
            create_app(publisher, settings.max_body_bytes, auth), settings.host, settings.port
        )
        tasks = [
            asyncio.create_task(validator.run(), name="raw-validator"),
            asyncio.create_task(server.serve(), name="ingest-http"),
        ]
        log.info("ingest listening on http://%s:%d", settings.host, settings.port)

        def on_stop() -> None:
            validator.stop()
            server.should_exit = True

        await supervise(tasks, stop, on_stop)
    finally:
        await producer.stop()
