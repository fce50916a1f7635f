"""``/docs`` of both services in a real browser (Debian's chromium, driven by Playwright):
Swagger UI renders the service's document and the page asks nothing of any other origin
(FastAPI's own page loaded Swagger UI from a CDN: blank on a network without the internet).
The services run in process under uvicorn (ingest with an in-memory publisher, alerts on
SQLite): what is checked is the page, not the pipeline. A missing chromium fails the test
under CI=true and skips it elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Page, Request, async_playwright
from prometheus_client import CollectorRegistry

from services.alerts.api import create_app as alerts_app
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from services.ingest.api import create_app as ingest_app
from services.ingest.publisher import Publisher
from shared.settings import KafkaSettings
from tests.alerts_cases import sqlite_sessions
from tests.deploy.artefacts import require_tool
from tests.e2e.test_wall import CHROMIUM_ARGS
from tests.monitoring import free_port
from tests.unit.test_ingest_api import MemoryPublisher

pytestmark = [pytest.mark.e2e]


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def check_docs(page: Page, base: str, title: str) -> None:
    outside: list[str] = []  # the page must need nothing but this service

    def seen(request: Request) -> None:
        if not request.url.startswith(base):
            outside.append(request.url)

    page.on("request", seen)
    await page.goto(f"{base}/docs")
    heading = page.locator(".swagger-ui .info .title")
    await heading.wait_for(timeout=15_000)
    assert title in await heading.inner_text()
    await page.locator(".opblock").first.wait_for(timeout=15_000)
    assert await page.locator(".opblock").count() >= 5  # the operations, rendered
    assert outside == [], f"{title}: /docs asked other origins: {outside}"
    await page.close()


async def test_swagger_ui_renders_each_service_from_the_service_alone(tmp_path: Path) -> None:
    chromium = require_tool("chromium", "chromium")
    async with sqlite_sessions(tmp_path) as sessions:
        apps = {
            "QualityWatch ingest": ingest_app(cast(Publisher, MemoryPublisher())),
            "QualityWatch alerts and health": alerts_app(
                AlertsSettings(kafka=KafkaSettings()), sessions,
                Metrics.create(CollectorRegistry()),
            ),
        }  # fmt: skip
        async with async_playwright() as pw:
            browser = await pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=chromium, args=CHROMIUM_ARGS
            )
            try:
                for title, app in apps.items():
                    async with serving(app) as base:
                        await check_docs(await browser.new_page(), base, title)
            finally:
                await browser.close()
