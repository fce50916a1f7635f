"""The alerts service: consumer, lag exporter, webhook deliverer and HTTP API in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from services.alerts import db, wall
from services.alerts.alertmanager import AlertmanagerPusher
from services.alerts.api import create_app
from services.alerts.consumer import AlertsConsumer, LagExporter
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from services.alerts.view import HealthView
from services.alerts.webhook_policy import parse_schedule
from services.alerts.webhooks import Deliverer
from shared.http_auth import policy
from shared.kafka import ensure_topics, make_producer, wait_for_broker
from shared.runtime import http_server, log_when_listening, server_stack, supervise
from shared.topics import queue_key

log = logging.getLogger(__name__)
CONTROL_SEND_TIMEOUT_S = 15.0  # a baseline reset the broker has not taken by then: 503


async def run(settings: AlertsSettings, stop: asyncio.Event) -> None:
    auth = policy()  # a bad key file stops the start here
    if settings.db.url.startswith("sqlite"):
        from pathlib import Path

        Path(settings.db.url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(settings.db.url)
    await db.create_schema(engine)
    sessions = db.make_sessionmaker(engine)
    metrics = Metrics.create()
    await wait_for_broker(settings.kafka)
    # said once the broker answered: a start that cannot reach it ends with that one line
    log.log(
        logging.INFO if auth.enforced("ingest") else logging.WARNING,
        "alerts HTTP: %s",
        auth.describe(),
    )
    await ensure_topics(settings.kafka)
    # No proxy from the environment (it would connect for us, past the address check) and
    # no redirects (a 3xx is a final answer: a redirect could point anywhere).
    async with (
        contextlib.AsyncExitStack() as stack,
        httpx.AsyncClient(
            timeout=settings.webhook_timeout_s, trust_env=False, follow_redirects=False
        ) as client,
    ):
        deliverer = Deliverer(
            sessions, client, metrics,
            keys=settings.webhook_keys(),
            receivers=settings.webhook_urls,
            schedule=parse_schedule(settings.webhook_retry_schedule),
            allow_private=settings.webhook_allow_private_networks,
            retry_after_max_s=settings.webhook_retry_after_max_s,
            concurrency=settings.webhook_concurrency, timeout_s=settings.webhook_timeout_s,
            lease_s=settings.webhook_lease_s,
        )  # fmt: skip
        await deliverer.enable_configured()
        log.info("webhook deliveries are claimed as %s", deliverer.owner)
        view = HealthView(settings, sessions)  # health served from memory, loaded first
        await view.load()
        log.info("health view loaded: %d queue(s)", len(view))
        # baseline resets go to the scorer's input topic, keyed by queue like its events
        producer = make_producer(settings.kafka, client_id=f"{settings.kafka.client_id}-control")
        await producer.start()
        stack.push_async_callback(producer.stop)
        events_topic = settings.kafka.topics.events

        async def send_control(queue_id: str, value: bytes) -> None:
            # bounded: the client is told 503 and retries with its Idempotency-Key (a copy
            # that got through after all is applied once: the request id is the same)
            await asyncio.wait_for(
                producer.send_and_wait(events_topic, value, key=queue_key(queue_id)),
                CONTROL_SEND_TIMEOUT_S,
            )

        app = create_app(settings, sessions, metrics, auth, view, control=send_control)
        server = http_server(app, settings.host, settings.port)
        tasks = [
            asyncio.create_task(
                AlertsConsumer(settings, sessions, metrics, view).run(stop), name="consumer"
            ),
            asyncio.create_task(view.run(stop), name="health-view"),
            asyncio.create_task(LagExporter(settings, metrics).run(stop), name="lag"),
            asyncio.create_task(
                deliverer.run(stop, idle_s=settings.webhook_idle_claim_s), name="webhooks"
            ),
            asyncio.create_task(server.serve(), name="alerts-http"),
        ]
        if settings.alertmanager_urls:
            pusher = AlertmanagerPusher(settings, sessions, client, metrics)
            tasks.append(asyncio.create_task(pusher.run(stop), name="alertmanager"))
        listening = log_when_listening(
            server, log, "alerts listening on http://%s:%d (%s)",
            settings.host, settings.port, server_stack(),
        )  # fmt: skip

        def on_stop() -> None:
            server.should_exit = True
            wall.close(app)  # end the live walls' streams, or the server waits for them

        try:
            await supervise(tasks, stop, on_stop)
        finally:
            listening.cancel()
            await engine.dispose()
