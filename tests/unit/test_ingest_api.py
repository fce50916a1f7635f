"""The ingest API's answers, with an in-memory publisher (the Kafka path: tests/integration)."""

from __future__ import annotations

import asyncio
import gzip
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


def client(
    max_body: int = 1 << 20, max_items: int = 10_000
) -> tuple[httpx.AsyncClient, MemoryPublisher]:
    pub = MemoryPublisher()
    app = create_app(cast(Publisher, pub), max_body, max_items=max_items)
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


async def test_an_error_type_that_does_not_fit_the_outcome_is_a_422_naming_error_type() -> None:
    c, pub = client()
    async with c:
        typed = await c.post("/v1/verdicts", json=[verdict(1, correct=False, error_type=None)])
        mixed = await c.post("/v1/events", json=[verdict(2, error_type="technical")])
    assert (typed.status_code, mixed.status_code) == (422, 422)
    (typed_error,) = typed.json()["rejected"][0]["errors"]
    assert typed_error["loc"] == ["error_type"]
    assert "an incorrect verdict needs an error_type" in typed_error["msg"]
    (mixed_error,) = mixed.json()["rejected"][0]["errors"]
    assert mixed_error["loc"] == ["verdict", "error_type"]
    assert "a correct verdict cannot have an error_type" in mixed_error["msg"]
    assert pub.events == []


async def test_oversized_and_unreadable_bodies() -> None:
    c, pub = client(max_body=200)
    async with c:
        big = await c.post("/v1/decisions", content=codec.dumps([decision(i) for i in range(5)]))
        empty = await c.post("/v1/decisions", content=b"")
        garbage = await c.post("/v1/decisions", content=b"<xml/>")
    assert big.status_code == 413
    assert "limit of 200 (QW_INGEST_MAX_BODY_BYTES)" in big.json()["detail"]
    assert empty.status_code == 400
    assert garbage.status_code == 400
    assert "not JSON" in garbage.json()["detail"]
    assert pub.events == []


async def test_a_body_of_more_items_than_the_limit_is_refused_whole_before_validation() -> None:
    c, pub = client(max_items=3)
    ndjson = {"content-type": "application/x-ndjson"}
    async with c:
        at_limit = await c.post("/v1/decisions", json=[decision(i) for i in range(3)])
        many = await c.post("/v1/decisions", json=[decision(i) for i in range(4)])
        # items that are not even events: refused for their number, none validated
        empties = await c.post("/v1/decisions", content=b"[" + b",".join([b"{}"] * 50) + b"]")
        lines = await c.post("/v1/decisions", content=b"{}\n" * 4, headers=ndjson)
        blank = await c.post("/v1/decisions", content=b"{}\n\n\n{}\n", headers=ndjson)
        # NDJSON says how many too: its lines that are not blank, the last without a break
        spaced = b"{}\r\n  \n{}\n\n" + b"not json\n" * 3 + b"\t\r{}"
        blanks = await c.post("/v1/decisions", content=spaced, headers=ndjson)
    assert at_limit.status_code == 202
    for r in (many, empties, lines, blanks):
        assert r.status_code == 413
        assert set(r.json()) == {"detail"}
        assert "limit of 3 per request (QW_INGEST_MAX_ITEMS)" in r.json()["detail"]
        assert "\n" not in r.json()["detail"]
    assert "holds 4 items, more than the limit" in many.json()["detail"]
    assert "holds 50 items, more than the limit" in empties.json()["detail"]
    assert "holds 4 items, more than the limit" in lines.json()["detail"]
    assert "holds 6 items, more than the limit" in blanks.json()["detail"]
    assert blank.status_code == 422  # blank lines are no items: two, both invalid
    assert len(pub.events) == 3  # only the batch at the limit


async def test_a_bare_value_is_refused_like_the_same_value_in_an_array() -> None:
    c, pub = client()
    async with c:
        bare = await c.post("/v1/decisions", content=b"42")
        listed = await c.post("/v1/decisions", content=b"[42]")
        empty_ndjson = await c.post(
            "/v1/decisions", content=b"", headers={"content-type": "application/x-ndjson"}
        )
    assert bare.status_code == listed.status_code == 422
    assert bare.json() == listed.json()
    assert bare.json()["rejected"][0]["index"] == 0
    assert (empty_ndjson.status_code, empty_ndjson.json()["accepted"]) == (202, 0)
    assert pub.events == []


async def test_the_openapi_document_states_bodies_and_every_status() -> None:
    c, _ = client()
    async with c:
        doc = (await c.get("/openapi.json")).json()
    for path in ("/v1/decisions", "/v1/verdicts", "/v1/events"):
        op = doc["paths"][path]["post"]
        assert set(op["responses"]) == {"202", "400", "401", "403", "413", "415", "422", "503"}
        content = op["requestBody"]["content"]
        assert set(content) == {"application/json", "application/x-ndjson"}
    decision = doc["components"]["schemas"]["Decision"]
    assert decision["properties"]["queue_id"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
    assert decision["properties"]["decided_at"]["format"] == "date-time"


async def test_lone_surrogates_are_refused_not_a_server_error() -> None:
    """JSON can carry "\\ud800", which is not text: a 4xx that says so, never a 500."""
    c, pub = client()
    async with c:
        body = codec.dumps([decision(1)]).replace(b'"d1"', b'"d\\ud800"')
        assert b"\\ud800" in body
        r = await c.post("/v1/decisions", content=body)
        admin = await c.put("/v1/queues/q%ED%A0%80")
    assert 400 <= r.status_code < 500, r.text
    assert 400 <= admin.status_code < 500, admin.text
    assert pub.events == []


async def test_times_older_than_the_setting_are_refused_by_name() -> None:
    pub = MemoryPublisher()
    app = create_app(cast(Publisher, pub), max_age_days=1)
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i")
    async with c:
        r = await c.post("/v1/decisions", json=[decision(1, decided_at="2020-01-01T00:00:00Z")])
    assert r.status_code == 422
    (error,) = r.json()["rejected"][0]["errors"]
    assert (error["loc"], error["type"]) == (["decided_at"], "past_timestamp")
    assert "QW_INGEST_MAX_AGE_DAYS" in error["msg"]
    assert pub.events == []


class HeldPublisher(MemoryPublisher):
    """Holds every publish until released: a broker slow to take the events."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()

    async def publish(self, events: Sequence[Decision | Verdict]) -> int:
        self.waiting.set()
        await self.release.wait()
        return await super().publish(events)


async def test_bodies_held_at_once_are_bounded_and_the_one_past_it_is_told_to_retry() -> None:
    pub = HeldPublisher()
    one = codec.dumps([decision(i) for i in range(3)])
    app = create_app(cast(Publisher, pub), 1 << 20, max_inflight_bytes=len(one) + 10)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i") as c:
        first = asyncio.create_task(c.post("/v1/decisions", content=one))
        await asyncio.wait_for(pub.waiting.wait(), 5)  # its body read, held at the broker
        busy = await c.post("/v1/decisions", content=codec.dumps([decision(9)]))
        pub.release.set()
        assert (await first).status_code == 202
        after = await c.post("/v1/decisions", content=codec.dumps([decision(9)]))
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert "QW_INGEST_MAX_INFLIGHT_BYTES" in busy.json()["detail"]
    assert after.status_code == 202  # the first one's bytes were given back
    assert app.state.body_budget.held == 0
    assert sorted(e.decision_id for e in pub.events) == sorted(
        [decision(i)["decision_id"] for i in (0, 1, 2, 9)]
    )


async def test_a_compressed_body_is_refused_for_its_encoding_not_as_bad_json() -> None:
    c, pub = client()
    body = gzip.compress(codec.dumps([decision(1)]))
    async with c:
        r = await c.post("/v1/decisions", content=body, headers={"content-encoding": "gzip"})
        plain = await c.post(
            "/v1/decisions", content=codec.dumps([decision(2)]),
            headers={"content-encoding": "identity"},
        )  # fmt: skip
    assert r.status_code == 415
    assert r.json()["detail"].startswith("Content-Encoding 'gzip' is not taken")
    assert plain.status_code == 202
    assert len(pub.events) == 1
