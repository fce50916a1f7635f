"""The ingest service: the HTTP API and the raw-topic validator in one process."""

from __future__ import annotations

import asyncio
import logging

from services.ingest.api import create_app
from services.ingest.pipeline import RawValidator
from services.ingest.publisher import Publisher
from services.ingest.settings import IngestSettings
from shared.kafka import ensure_topics, make_producer, wait_for_broker
from shared.runtime import http_server

log = logging.getLogger(__name__)


async def run(settings: IngestSettings, stop: asyncio.Event) -> None:
    await wait_for_broker(settings.kafka)
    await ensure_topics(settings.kafka)
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        publisher = Publisher(producer, settings.kafka.topics)
        validator = RawValidator(settings, publisher)
        server = http_server(
            create_app(publisher, settings.max_body_bytes), settings.host, settings.port
        )
        tasks = [
            asyncio.create_task(validator.run(), name="raw-validator"),
            asyncio.create_task(server.serve(), name="ingest-http"),
        ]
        log.info("ingest listening on http://%s:%d", settings.host, settings.port)
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        validator.stop()
        server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        stopper.cancel()
        for t in done:
            if t is not stopper and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
    finally:
        await producer.stop()
