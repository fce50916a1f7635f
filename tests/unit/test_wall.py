"""The wall's data and streams on SQLite: tiles worst first, the live hub, the page's assets.

The page itself runs in a real browser in tests/e2e/test_wall.py.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import tomllib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db, wall
from services.alerts.api import create_app
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from services.alerts.wall import STREAM_BACKLOG, TREND_POINTS, WallHub
from shared.apikeys import AuthPolicy, KeyStore
from shared.events import QualitySnapshot, SiteWindows, SubgroupStatus
from shared.settings import KafkaSettings
from tests.alerts_cases import api_client, make_breach, make_point, make_snapshot, sqlite_sessions


def snapshot(
    queue: str, accuracy: float, n: int, signals: list[str] | None = None
) -> QualitySnapshot:
    return make_snapshot(queue, 0, signals or []).model_copy(
        update={
            "accuracy_24h": accuracy,
            "n_24h": n,
            "errors_24h_by_type": {"over_enforcement": 3, "wrong_policy": 9},
        }
    )


async def put(sessions: async_sessionmaker[AsyncSession], *snaps: QualitySnapshot) -> None:
    async with sessions() as s, s.begin():
        for snap in snaps:
            await db.upsert_snapshot(s, snap, datetime.now(UTC))


async def fetch(sessions: async_sessionmaker[AsyncSession], *paths: str) -> list[httpx.Response]:
    async with api_client(sessions) as client:
        return [await client.get(p) for p in paths]


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with sqlite_sessions(tmp_path) as sessions:
        await put(
            sessions,
            snapshot("good", 0.97, 500),
            snapshot("bad", 0.80, 400, ["p_chart_ucl"]),
            snapshot("thin", 0.9, 5),
            snapshot("watch", 0.97, 500),
        )
        async with sessions() as s, s.begin():
            points = [make_point("bad", h) for h in range(TREND_POINTS + 5)]
            points[0] = make_point("bad", 0, status=SubgroupStatus.PHASE1)
            await db.upsert_subgroups(s, points, datetime.now(UTC))
            for rule in ("p_chart_ucl", "accuracy_24h_below_target"):
                await db.record_breach(
                    s, make_breach("bad", 60, rule), receivers=[], now=datetime.now(UTC)
                )
            await db.record_breach(s, make_breach("watch", 60), receivers=[], now=datetime.now(UTC))
        yield sessions


async def test_tiles_are_worst_first_with_band_text_interval_trend_and_open_alerts(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with api_client(sessions) as client:
        r = await client.get("/wall/tiles")
    assert r.status_code == 200, r.text
    tiles = r.json()["tiles"]
    assert [t["queue_id"] for t in tiles] == ["bad", "watch", "thin", "good"]
    assert [t["band"] for t in tiles] == ["red", "amber", "insufficient_data", "green"]
    assert [t["band_text"].split(":")[0] for t in tiles] == ["RED", "AMBER", "NO DATA", "GREEN"]
    bad = tiles[0]
    assert bad["accuracy_low"] < 0.80 < bad["accuracy_high"]  # Wilson, n=400
    assert bad["accuracy_low"] > 0.75
    assert bad["accuracy_high"] < 0.85
    assert len(bad["trend"]) == TREND_POINTS  # the newest subgroups, oldest first
    assert bad["trend"][-1] == pytest.approx(0.05)
    assert bad["trend_ucl"][-1] == 0.12
    assert sorted(a["rule"] for a in bad["alerts"]) == ["accuracy_24h_below_target", "p_chart_ucl"]
    assert bad["top_error"] == "wrong_policy"
    assert tiles[1]["alerts"][0]["message"] == "m"
    assert tiles[3]["alerts"] == []
    assert tiles[3]["trend"] == []


async def test_a_tile_carries_its_open_incident_and_who_acknowledged_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s, s.begin():
        watch = (await db.open_incidents_by_queue(s))["watch"]
        await db.acknowledge_incident(
            s, watch.id, actor="key 1 (ops lead)", note="on it", now=datetime.now(UTC)
        )
    (r,) = await fetch(sessions, "/wall/tiles")
    tiles = {t["queue_id"]: t for t in r.json()["tiles"]}
    acked = tiles["watch"]["incident"]
    assert (acked["id"], acked["status"]) == (watch.id, "acknowledged")
    assert acked["acknowledged_by"] == "key 1 (ops lead)"
    assert tiles["bad"]["incident"]["status"] == "firing"
    assert tiles["bad"]["incident"]["acknowledged_by"] is None
    assert tiles["good"]["incident"] is None
    # the alert itself was not acknowledged: only the incident's status says so
    assert [a["status"] for a in tiles["watch"]["alerts"]] == ["firing"]
    (r,) = await fetch(sessions, "/wall/queues/watch")
    assert r.json()["tile"]["incident"]["acknowledged_by"] == "key 1 (ops lead)"


async def test_a_click_gets_the_chart_and_the_alert_history(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    r, missing, bad_id = await fetch(
        sessions, "/wall/queues/bad", "/wall/queues/nope", "/wall/queues/a%20b"
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["points"]) == TREND_POINTS + 5
    assert body["points"][0]["status"] == "phase1"  # oldest first
    assert {a["rule"] for a in body["alerts"]} == {"p_chart_ucl", "accuracy_24h_below_target"}
    assert body["tile"]["band"] == "red"
    assert missing.status_code == 404
    assert "nope" in missing.json()["detail"]
    assert bad_id.status_code == 422


async def test_a_click_gets_the_queues_incident_history_newest_first(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Per incident: id, status, times, the detectors it groups (rule -> signals), its top
    cause, who acknowledged, and its people's notes (how many, the last); newest first, at
    most INCIDENT_HISTORY."""
    cause = "78% of the excess errors are site dublin (33 errors, 15.0 expected, n=174)"
    now = datetime.now(UTC)
    async with sessions() as s, s.begin():
        # "bad" has one open incident of two rules; it is acknowledged and annotated
        (first,) = await db.incidents(s, queue_id="bad")
        await db.acknowledge_incident(s, first.id, actor="key k1 (lead)", note="on it", now=now)
        await db.annotate_incident(s, first.id, actor="key k1 (lead)", note="new cohort", now=now)
        await db.resolve_incident(s, first.id, actor="key k1 (lead)", note=None, receivers=[],
                                  now=now)  # fmt: skip
        # then a second one: the same rule signals three times, with a cause from the second
        for hour in (61, 62, 63):
            b = make_breach("bad", hour, "cusum_upper")
            if hour > 61:
                b = b.model_copy(update={"cause_summary": cause, "message": f"up. Cause: {cause}"})
            await db.record_breach(s, b, receivers=[], now=now)
        for hour in range(wall.INCIDENT_HISTORY + 2):  # more than the history holds
            b = make_breach("many", hour)
            await db.record_breach(s, b, receivers=[], now=now)
            (i,) = await db.incidents(s, queue_id="many", status="open")
            await db.resolve_incident(s, i.id, actor="system", note=None, receivers=[], now=now)
    await put(sessions, snapshot("many", 0.97, 500))
    (r, many) = await fetch(sessions, "/wall/queues/bad", "/wall/queues/many")
    assert r.status_code == 200, r.text
    newest, old = r.json()["incidents"]
    assert newest["id"] > old["id"]
    assert (newest["status"], newest["signals_by_rule"]) == ("firing", {"cusum_upper": 3})
    assert newest["top_cause"] == cause
    assert (newest["notes"], newest["last_note"], newest["acknowledged_by"]) == (0, None, None)
    assert old["status"] == "resolved"
    assert old["signals_by_rule"] == {"p_chart_ucl": 1, "accuracy_24h_below_target": 1}
    assert (old["acknowledged_by"], old["resolved_by"]) == ("key k1 (lead)", "key k1 (lead)")
    assert old["acknowledged_at"] is not None
    assert old["resolved_at"] is not None
    assert (old["notes"], old["last_note"], old["last_note_by"]) == (
        2,
        "new cohort",
        "key k1 (lead)",
    )
    assert old["top_cause"] is None
    ids = [i["id"] for i in many.json()["incidents"]]
    assert len(ids) == wall.INCIDENT_HISTORY
    assert ids == sorted(ids, reverse=True)
    assert {i["resolved_by"] for i in many.json()["incidents"]} == {"system"}
    assert all(i["notes"] == 0 for i in many.json()["incidents"])


async def test_a_click_gets_the_queues_sites_against_their_targets(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    w = SiteWindows(
        decisions_24h=400, n_24h=400, errors_24h=60, decisions_7d=900, n_7d=900, errors_7d=70
    )
    await put(sessions, snapshot("sited", 0.9, 500).model_copy(update={"sites": {"manila": w}}))
    (r,) = await fetch(sessions, "/wall/queues/sited")
    assert r.status_code == 200, r.text
    (site,) = r.json()["sites"]
    assert (site["site"], site["target"], site["last_24h"]["n"]) == ("manila", 0.9, 400)
    assert site["last_24h"]["below_target_with_confidence"]  # 85% of 400 against 90%
    assert not site["last_7d"]["below_target_with_confidence"]  # 92.2% of 900
    # the queue meets its 90% (components all 100), but its site fails its target: the tile
    # is red, as the health API says, its score capped at red's top, and it names the site
    tile = r.json()["tile"]
    assert (tile["score"], tile["band"]) == (59.0, "red")
    assert tile["band_reason"].startswith("site manila below target 90.0%: 85.0% (upper 95% ")
    assert "site manila: 24h accuracy 85.0% is below its 90.0% target" in tile["explanation"]
    (r,) = await fetch(sessions, "/wall/queues/bad")
    assert r.json()["sites"] == []  # a snapshot from before per-site counts


def events(message: str | None) -> tuple[str, dict[str, Any]]:
    assert message is not None
    head, data = message.strip().split("\n")
    return head.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))


async def test_one_computation_feeds_every_stream_with_only_what_changed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    settings = AlertsSettings(kafka=KafkaSettings())
    hub = WallHub(sessions, settings, max_streams=2, refresh_s=0.05)
    a, b = hub.subscribe(), hub.subscribe()
    assert a is not None
    assert b is not None
    assert hub.subscribe() is None  # the limit
    for q in (a, b):
        kind, data = events(await asyncio.wait_for(q.get(), 5))
        assert kind == "snapshot"
        assert [t["queue_id"] for t in data["tiles"]] == ["bad", "watch", "thin", "good"]
    await asyncio.sleep(0.3)
    assert a.empty()
    assert b.empty()
    ran = hub.computations
    assert 2 <= ran <= 10  # one computation per refresh, whatever the number of streams

    await put(sessions, snapshot("good", 0.5, 500))  # good turns red
    for q in (a, b):
        kind, data = events(await asyncio.wait_for(q.get(), 5))
        assert kind == "update"
        assert [t["queue_id"] for t in data["tiles"]] == ["good"]
        assert data["tiles"][0]["band"] == "red"
        assert data["order"][:2] == ["bad", "good"]  # both red: the lower score first
        assert data["removed"] == []

    hub.unsubscribe(b)
    c = hub.subscribe()  # a new page gets the current wall at once
    assert c is not None
    kind, data = events(c.get_nowait())
    assert kind == "snapshot"
    assert data["tiles"][1]["queue_id"] == "good"

    hub.close()  # the server stops: every stream ends, none is accepted
    assert await asyncio.wait_for(a.get(), 1) is None
    assert await asyncio.wait_for(c.get(), 1) is None
    assert hub.subscribe() is None


async def test_a_stream_that_does_not_read_is_closed_not_buffered(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    hub = WallHub(sessions, AlertsSettings(kafka=KafkaSettings()), max_streams=4, refresh_s=0.02)
    q = hub.subscribe()
    assert q is not None
    for _ in range(STREAM_BACKLOG + 1):  # changes pushed faster than the page reads
        hub._push(": change\n\n")
    assert hub.streams == 0
    items = [q.get_nowait() for _ in range(q.qsize())]
    assert items[-1] is None  # its stream ends; the backlog stays bounded
    assert len(items) <= STREAM_BACKLOG
    hub.close()


async def test_the_page_and_its_assets_ship_with_the_package_and_need_no_network(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    page, css, js, openapi = await fetch(
        sessions, "/wall", "/wall/wall.css", "/wall/wall.js", "/openapi.json"
    )
    schema = openapi.json()
    assert page.status_code == css.status_code == js.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert css.headers["content-type"].startswith("text/css")
    assert js.headers["content-type"].startswith("text/javascript")
    links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    icons = [link for link in links if link.startswith("data:image/svg+xml,")]
    assert len(icons) == 1  # the favicon, inline: no request, no 404
    assert set(links) - set(icons) == {"wall/wall.css", "wall/wall.js", "wall/tiles"}
    for text in (page.text, css.text, js.text):  # no URL but the SVG namespace
        assert set(re.findall(r"\w+://[^\s\"'`]+", text)) <= {"http://www.w3.org/2000/svg"}
    assert "@import" not in css.text
    assert "url(" not in css.text

    events_doc = schema["paths"]["/wall/events"]["get"]["responses"]
    assert "text/event-stream" in events_doc["200"]["content"]
    assert "503" in events_doc
    assert "text/html" in schema["paths"]["/wall"]["get"]["responses"]["200"]["content"]
    assert "404" in schema["paths"]["/wall/queues/{queue_id}"]["get"]["responses"]


def test_a_non_editable_install_carries_the_page() -> None:
    """Every file of services/alerts/static matches the package data pyproject.toml declares."""
    repo = Path(__file__).resolve().parents[2]
    declared = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["services.alerts"]
    shipped = sorted((repo / "services" / "alerts" / "static").iterdir())
    assert {p.name for p in shipped} >= {"wall.html", "wall.css", "wall.js"}
    for p in shipped:
        assert any(fnmatch.fnmatch(f"static/{p.name}", g) for g in declared), p.name


async def test_the_wall_is_protected_when_reads_are(
    tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    store = KeyStore(tmp_path / "k.json")
    _, reader = store.create("wall", ["read"])
    for protect, status in ((False, 200), (True, 401)):
        app = create_app(
            AlertsSettings(kafka=KafkaSettings()), sessions, Metrics.create(CollectorRegistry()),
            AuthPolicy(store, "production", protect_reads=protect),
        )  # fmt: skip
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://a") as c:
            for path in ("/wall", "/wall/tiles", "/wall/queues/bad"):
                assert (await c.get(path)).status_code == status, (protect, path)
                r = await c.get(path, headers={"X-API-Key": reader})
                assert r.status_code == 200, (protect, path)


def test_the_band_badges_colours_do_not_reach_the_tiles_text() -> None:
    """A tile carries its band's class too: a bare `.band-amber { color: #111 }` drew every
    amber tile's text near-black on dark olive (contrast 1.5:1). Badge colours are scoped
    to `.band.band-*`; a tile's rule sets its background only."""
    css = (Path(wall.__file__).parent / "static" / "wall.css").read_text()
    for selector, body in re.findall(r"([^{}]+)\{([^}]*)\}", css):
        for sel in (s.strip() for s in selector.split(",")):
            if re.fullmatch(r"\.band-\w+", sel) or sel.startswith(".tile.band-"):
                assert not re.search(r"(^|;)\s*color\s*:", body), (sel, body)
