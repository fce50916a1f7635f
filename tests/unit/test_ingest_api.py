"""The ingest API's answers, with an in-memory publisher (the Kafka path: tests/integration)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import httpx

from services.ingest.api import create_app
from services.ingest.publisher import Publisher
from shared import codec
from shared.events import Decision, Verdict
from tests.factories import decision, verdict


class MemoryPublisher:
    def __init__(self) -> None:
        self.events: list[Decision | Verdict] = []

    async def publish(self, events: Sequence[Decision | Verdict]) -> int:
        self.events.extend(events)
        return len(events)


def client(max_body: int = 1 << 20) -> tuple[httpx.AsyncClient, MemoryPublisher]:
    pub = MemoryPublisher()
    app = create_app(cast(Publisher, pub), max_body)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i"), pub


async def test_valid_batch_is_accepted() -> None:
    c, pub = client()
    async with c:
        r = await c.post("/v1/events", json=[decision(1), verdict(1)])
    assert r.status_code == 202
    assert r.json() == {"accepted": 2, "rejected": []}
    assert [type(e).__name__ for e in pub.events] == ["Decision", "Verdict"]


async def test_bad_items_are_named_and_good_ones_kept() -> None:
    c, pub = client()
    async with c:
        r = await c.post("/v1/verdicts", json=[verdict(1), verdict(2, outcome="maybe")])
    body: dict[str, Any] = r.json()
    assert r.status_code == 422
    assert body["accepted"] == 1
    assert body["rejected"][0]["index"] == 1
    assert body["rejected"][0]["errors"][0]["loc"] == ["outcome"]
    assert len(pub.events) == 1


async def test_oversized_and_unreadable_bodies() -> None:
    c, pub = client(max_body=200)
    async with c:
        big = await c.post("/v1/decisions", content=codec.dumps([decision(i) for i in range(5)]))
        empty = await c.post("/v1/decisions", content=b"")
        garbage = await c.post("/v1/decisions", content=b"<xml/>")
    assert big.status_code == 413
    assert "limit of 200" in big.json()["detail"]
    assert empty.status_code == 400
    assert garbage.status_code == 400
    assert "not JSON" in garbage.json()["detail"]
    assert pub.events == []
