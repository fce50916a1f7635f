"""The health API of a running alerts service (its own process, SQLite, the real broker),
fed snapshots and breaches the way the scorer publishes them: pages and their cursor, the
band and team filters, ETag / If-None-Match, the batch endpoint and its refusals, reads
behind a key, and a snapshot another replica wrote to the database served within seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.alerts import db
from services.demo.orchestrator import Services, wait_http
from shared.apikeys import KeyStore
from shared.events import QualitySnapshot
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings
from shared.topics import partition_of, queue_key
from tests.alerts_cases import make_breach, make_snapshot
from tests.integration.kafka_helpers import produce
from tests.integration.test_webhook_delivery import free_port

pytestmark = [pytest.mark.kafka]

QUEUES = [f"spam-{i:02d}" for i in range(12)] + [f"cse-{i:02d}" for i in range(8)] + ["misc-1"]
RED = {"spam-03", "cse-05"}  # accuracy far under the target
FIRING = {"spam-07"}  # a breach: amber at best


def snap(queue: str, accuracy: float | None = None) -> QualitySnapshot:
    acc = accuracy if accuracy is not None else (0.7 if queue in RED else 0.97)
    return make_snapshot(queue, 3, []).model_copy(update={"accuracy_24h": acc, "n_24h": 400})


async def publish(kafka: KafkaSettings, snaps: list[QualitySnapshot], breaches: set[str]) -> None:
    await produce(kafka, [*snaps, *(make_breach(q, 3) for q in sorted(breaches))])


async def until(what: str, check: Callable[[], Awaitable[bool]], services: Services) -> None:
    deadline = time.monotonic() + 60
    while not await check():
        services.check()
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within 60 s")
        await asyncio.sleep(0.2)


async def pages(client: httpx.AsyncClient, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page, following ``X-Next-After`` and checking ``Link`` says the same."""
    out: list[list[dict[str, Any]]] = []
    while True:
        r = await client.get("/v1/queues", params=params)
        assert r.status_code == 200, r.text
        out.append(r.json())
        nxt = r.headers.get("x-next-after")
        if nxt is None:
            assert "link" not in r.headers
            return out
        assert nxt == out[-1][-1]["queue_id"]
        link = r.headers["link"]
        assert link.startswith("</v1/queues?")
        assert link.endswith('>; rel="next"')
        assert f"after={nxt}" in link
        params["after"] = nxt


async def test_pages_filters_etag_and_batch_through_the_running_service(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await ensure_topics(kafka_settings)
    port = free_port()
    _, reader = KeyStore(tmp_path / "keys.json").create("reader", ["read"])
    db_path = tmp_path / "alerts.db"
    env = {
        **kafka_settings.as_env(),
        "QW_DB_URL": f"sqlite+aiosqlite:///{db_path}",
        "QW_ALERTS_PORT": str(port),
        "QW_API_KEYS_FILE": str(tmp_path / "keys.json"),
        "QW_API_PROTECT_READS": "true",
        "QW_ALERTS_ALERTMANAGER_TEAMS": "spam-*=trust-spam,cse-*=child-safety",
        "QW_ALERTS_LAG_GROUPS": '["qw-alerts"]',
    }
    services = Services(env, tmp_path / "logs")
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {reader}"}
    try:
        services.start("alerts")
        await wait_http(f"{base}/healthz", services)
        await publish(kafka_settings, [snap(q) for q in QUEUES], FIRING)
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as client:

            async def everything_served() -> bool:
                r = await client.get("/v1/queues", params={"limit": 1000})
                return len(r.json()) == len(QUEUES) and all(
                    q["health"]["firing_alerts"] for q in r.json() if q["queue_id"] in FIRING
                )

            await until("every queue and the breach served", everything_served, services)

            # pages of 8 by queue id, the cursor in X-Next-After and Link
            got = await pages(client, limit=8)
            assert [len(p) for p in got] == [8, 8, 5]
            assert [q["queue_id"] for p in got for q in p] == sorted(QUEUES)
            default = (await client.get("/v1/queues")).json()
            assert len(default) == len(QUEUES)  # under the default limit of 100
            # the list's entries are what the health endpoint answers for each queue
            one = (await client.get("/v1/queues/spam-07/health")).json()
            assert one == next(q for q in default if q["queue_id"] == "spam-07")
            assert one["health"]["band"] == "amber"
            assert one["health"]["firing_alerts"] == ["p_chart_ucl"]

            # filters: band (repeatable) and team (the Alertmanager team map)
            bands = {q["queue_id"]: q["health"]["band"] for q in default}
            red = [q["queue_id"] for p in await pages(client, band="red", limit=1) for q in p]
            assert red == sorted(RED) == sorted(q for q, b in bands.items() if b == "red")
            r = await client.get("/v1/queues", params=[("band", "red"), ("band", "amber")])
            assert {q["queue_id"] for q in r.json()} == RED | FIRING
            cse = (await client.get("/v1/queues", params={"team": "child-safety"})).json()
            assert [q["queue_id"] for q in cse] == sorted(q for q in QUEUES if q.startswith("cse"))
            other = (await client.get("/v1/queues", params={"team": "quality"})).json()
            assert [q["queue_id"] for q in other] == ["misc-1"]
            r = await client.get("/v1/queues", params={"team": "trust-spam", "band": "red"})
            assert [q["queue_id"] for q in r.json()] == ["spam-03"]

            # refusals name the parameter
            for params, loc in (
                ({"limit": 0}, ["query", "limit"]),
                ({"limit": 1001}, ["query", "limit"]),
                ({"band": "blue"}, ["query", "band", 0]),
                ({"team": "Not A Team"}, ["query", "team"]),
                ({"after": "a/b"}, ["query", "after"]),
            ):
                r = await client.get("/v1/queues", params=params)
                assert r.status_code == 422, (params, r.text)
                assert r.json()["detail"][0]["loc"] == loc

            # ETag / If-None-Match: 304 while the page is unchanged, 200 once it changes
            first = await client.get("/v1/queues", params={"limit": 5})
            tag = first.headers["etag"]
            same = await client.get(
                "/v1/queues", params={"limit": 5}, headers={"If-None-Match": tag}
            )
            assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", tag)
            star = await client.get(
                "/v1/queues", params={"limit": 5}, headers={"If-None-Match": "*"}
            )
            assert star.status_code == 304
            await publish(kafka_settings, [snap(sorted(QUEUES)[0], accuracy=0.91)], set())

            async def changed() -> bool:
                r = await client.get(
                    "/v1/queues", params={"limit": 5}, headers={"If-None-Match": tag}
                )
                return r.status_code == 200 and r.headers["etag"] != tag

            await until("a new ETag once a listed queue changed", changed, services)
            # a queue outside the page changed: the page's tag stays
            tag = (await client.get("/v1/queues", params={"limit": 5})).headers["etag"]
            await publish(kafka_settings, [snap("spam-11", accuracy=0.95)], set())

            async def spam_11_changed() -> bool:
                r = await client.get("/v1/queues/spam-11/health")
                return bool(r.json()["snapshot"]["accuracy_24h"] == 0.95)

            await until("spam-11's new snapshot served", spam_11_changed, services)
            r = await client.get("/v1/queues", params={"limit": 5}, headers={"If-None-Match": tag})
            assert r.status_code == 304

            # the batch: each id in order, unknown ones said so
            r = await client.post(
                "/v1/health:batch", json={"queue_ids": ["cse-05", "nobody", "spam-07"]}
            )
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            assert [(x["queue_id"], x["status"]) for x in results] == [
                ("cse-05", "ok"), ("nobody", "unknown"), ("spam-07", "ok"),
            ]  # fmt: skip
            assert results[0]["result"]["health"]["band"] == "red"
            assert results[1]["result"] is None
            assert results[2]["result"] == (await client.get("/v1/queues/spam-07/health")).json()
            whole = await client.post("/v1/health:batch", json={"queue_ids": QUEUES * 23})
            assert len(whole.json()["results"]) == 483
            for body, loc in (
                ({"queue_ids": ["a"] * 501}, ["body", "queue_ids"]),
                ({"queue_ids": ["ok", "bad/id"]}, ["body", "queue_ids", 1]),
                ({"queue_ids": []}, ["body", "queue_ids"]),
            ):
                r = await client.post("/v1/health:batch", json=body)
                assert r.status_code == 422, r.text
                assert r.json()["detail"][0]["loc"] == loc
            # behind the read key, like every read
            async with httpx.AsyncClient(base_url=base, timeout=10) as anonymous:
                for call in (
                    anonymous.post("/v1/health:batch", json={"queue_ids": ["cse-05"]}),
                    anonymous.get("/v1/queues"),
                    anonymous.get("/v1/queues/cse-05/health"),
                ):
                    assert (await call).status_code == 401

            # HEAD on the GET endpoints: the GET's status and headers (ETag, length), no body
            listed = await client.get("/v1/queues", params={"limit": 5})
            head = await client.head("/v1/queues", params={"limit": 5})
            assert (head.status_code, head.content) == (200, b"")
            for name in ("etag", "content-type", "x-next-after", "link"):
                assert head.headers[name] == listed.headers[name], name
            assert int(head.headers["content-length"]) == len(listed.content)
            tag = listed.headers["etag"]
            r = await client.head("/v1/queues", params={"limit": 5}, headers={"If-None-Match": tag})
            assert (r.status_code, r.content, r.headers["etag"]) == (304, b"", tag)
            one = await client.get("/v1/queues/spam-07/health")
            head = await client.head("/v1/queues/spam-07/health")  # the fast path's answer
            assert (head.status_code, head.content) == (200, b"")
            assert int(head.headers["content-length"]) == len(one.content)
            head = await client.head("/v1/queues/nobody/health")
            assert (head.status_code, head.content) == (404, b"")
            for path in ("/v1/alerts", "/v1/incidents", "/wall", "/wall/tiles", "/healthz"):
                r = await client.head(path)
                assert (r.status_code, r.content) == (200, b""), path
            # HEAD on the wall's endless event stream: its headers, and the stream is let go
            # (more HEADs than QW_ALERTS_WALL_MAX_STREAMS, 32, and a GET is still served)
            for _ in range(40):
                r = await client.head("/wall/events")
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/event-stream")
            async with client.stream("GET", "/wall/events") as live:
                assert live.status_code == 200
            r = await client.post("/v1/health:batch", json={"queue_ids": ["x"]})
            assert r.status_code == 200  # (a POST-only path: HEAD stays a 405)
            r = await client.head("/v1/health:batch")
            assert (r.status_code, r.headers["allow"]) == (405, "POST")

            # a trailing slash is no route: a plain 404, not a redirect to the path without it
            for path in ("/v1/queues/spam-07/health/", "/v1/queues/", "/wall/"):
                r = await client.get(path)
                assert r.status_code == 404, (path, r.status_code)
                assert "location" not in r.headers, path

            # the refusals are JSON, as the document says, the wall's HTML page's too
            doc = (await client.get("/openapi.json")).json()
            async with httpx.AsyncClient(base_url=base, timeout=10) as anonymous:
                for path in ("/wall", "/wall/tiles", "/v1/queues"):
                    r = await anonymous.get(path)
                    assert r.status_code == 401, path
                    assert r.headers["content-type"] == "application/json", path
                    documented = doc["paths"][path]["get"]["responses"]["401"]["content"]
                    assert list(documented) == ["application/json"], (path, documented)
                    assert (await anonymous.head(path)).status_code == 401, path
                assert "head" in doc["paths"]["/v1/queues"]
                assert "head" not in doc["paths"]["/v1/health:batch"]

            # a snapshot another replica's consumer wrote: served after the next sync
            engine = db.make_engine(env["QW_DB_URL"])
            try:
                async with db.make_sessionmaker(engine)() as session, session.begin():
                    await db.upsert_snapshot(session, snap("elsewhere"), datetime.now(UTC))
            finally:
                await engine.dispose()

            async def elsewhere() -> bool:
                return (await client.get("/v1/queues/elsewhere/health")).status_code == 200

            started = time.monotonic()
            await until("a snapshot written by another replica", elsewhere, services)
            assert time.monotonic() - started < 5
        services.check()
    finally:
        services.stop()


async def test_a_stale_list_answers_304_until_a_staleness_step_changes(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """The list's ETag follows the data, not the clock: with QW_ALERTS_STALE_AFTER_S=2 a
    queue is fresh for 2 s, then stale in four steps of 1.5 s; a client polling with
    If-None-Match every 0.1 s sees at most five tags (each step once) and, past the last
    step, 304 for good. (Freshness used to fall with every second: a new tag each second.)

    The steps count from when each snapshot was received: the queues' snapshots are on one
    partition, written before the service starts, so that its first poll takes them all at
    once. (Published while it polled, they came in two polls in one CI run of ten, each queue
    then stepping at its own moments: nine tags.)"""
    await ensure_topics(kafka_settings)
    port = free_port()
    env = {
        **kafka_settings.as_env(),
        "QW_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}",
        "QW_ALERTS_PORT": str(port),
        "QW_API_KEYS_FILE": str(tmp_path / "no-keys.json"),
        "QW_ALERTS_STALE_AFTER_S": "2",
    }
    services = Services(env, tmp_path / "logs")
    base = f"http://127.0.0.1:{port}"
    names = [f"{a}-{i:02d}" for a in ("spam", "cse") for i in range(8) if f"{a}-{i:02d}" not in RED]
    one = partition_of(queue_key(names[0]), kafka_settings.partitions)
    queues = [q for q in names if partition_of(queue_key(q), kafka_settings.partitions) == one][:3]
    assert len(queues) == 3, queues
    await publish(kafka_settings, [snap(q) for q in queues], set())
    try:
        services.start("alerts")
        await wait_http(f"{base}/healthz", services)
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:

            async def served() -> bool:
                return len((await client.get("/v1/queues")).json()) == len(queues)

            await until("the queues served", served, services)
            t0 = time.monotonic()
            tag = (await client.get("/v1/queues")).headers["etag"]
            tags, answers = [tag], {200: 0, 304: 0}
            while time.monotonic() - t0 < 9.5:  # past the last step (2 + 4 x 1.5 s)
                r = await client.get("/v1/queues", headers={"If-None-Match": tag})
                answers[r.status_code] += 1
                if r.status_code == 200:
                    assert r.headers["etag"] != tag
                    tag = r.headers["etag"]
                    tags.append(tag)
                await asyncio.sleep(0.1)
            assert 2 <= len(tags) <= 5, tags
            assert answers[304] > 10 * answers[200], answers
            body = (await client.get("/v1/queues")).json()
            assert {q["health"]["components"]["freshness"] for q in body} == {0.0}
            assert all("no new data for over" in q["health"]["explanation"] for q in body)
            for _ in range(10):  # the last step: unchanged for good
                r = await client.get("/v1/queues", headers={"If-None-Match": tag})
                assert r.status_code == 304
                await asyncio.sleep(0.1)
    finally:
        services.stop()
