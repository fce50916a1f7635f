"""The chart and health API's answers on SQLite: 404, 422, the OpenAPI contract, late counts.

Paging and time ranges are in ``tests.alerts_cases`` (run here through test_alerts_db.py and
on PostgreSQL in tests/integration/test_alerts_subgroups_postgres.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from tests.alerts_cases import NOW, api_client, at, make_point, make_snapshot, sqlite_sessions
from tests.factories import iso

CHART = "/v1/queues/q/chart"


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with sqlite_sessions(tmp_path) as sessions:
        async with sessions() as s, s.begin():
            await db.upsert_subgroups(s, [make_point("q", h) for h in range(3)], NOW)
        yield sessions


@pytest.mark.parametrize(
    ("queue", "path"), [("unknown", "chart"), ("q.other", "chart"), ("q", "health")]
)
async def test_unknown_queue_is_404_with_a_message(
    sessions: async_sessionmaker[AsyncSession], queue: str, path: str
) -> None:
    async with api_client(sessions) as client:  # q has subgroups but no snapshot: no health
        r = await client.get(f"/v1/queues/{queue}/{path}")
    assert r.status_code == 404
    assert r.json() == {
        "detail": f"no data for queue {queue!r}: it is unknown, or nothing for it was scored yet"
    }


async def test_a_queue_with_only_a_snapshot_has_an_empty_chart(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s, s.begin():
        await db.upsert_snapshot(s, make_snapshot("fresh", 0, []), NOW)
    async with api_client(sessions) as client:
        r = await client.get("/v1/queues/fresh/chart")
    assert r.status_code == 200
    assert r.json() == {"queue_id": "fresh", "points": [], "next": None, "baseline_changes": []}


@pytest.mark.parametrize(
    ("path", "params", "loc", "msg"),
    [
        (CHART, {"limit": 0}, ["query", "limit"], "greater than or equal to 1"),
        (CHART, {"limit": 1001}, ["query", "limit"], "less than or equal to 1000"),
        (CHART, {"limit": "many"}, ["query", "limit"], "valid integer"),
        (CHART, {"from": "2026-11-02T10:00:00"}, ["query", "from"], "must carry a time zone"),
        (CHART, {"to": "2026-11-02"}, ["query", "to"], "must carry a time zone"),
        (CHART, {"after": "2026-11-02T10:00:00"}, ["query", "after"], "must carry a time zone"),
        (CHART, {"from": "yesterday"}, ["query", "from"], "not an RFC 3339 date-time"),
        (CHART, {"to": "1793620800"}, ["query", "to"], "not an RFC 3339 date-time"),
        # an unencoded "+" reads as a space: the message shows what arrived
        (
            CHART,
            {"from": "2026-11-02T10:00:00 00:00"},
            ["query", "from"],
            "'2026-11-02T10:00:00 00:00'",
        ),
        ("/v1/queues/a|b/chart", {}, ["path", "queue_id"], "should match pattern"),
        ("/v1/queues/-q/chart", {}, ["path", "queue_id"], "should match pattern"),
        (f"/v1/queues/{'q' * 129}/chart", {}, ["path", "queue_id"], "at most 128 characters"),
        ("/v1/queues/a@b/health", {}, ["path", "queue_id"], "should match pattern"),
        ("/v1/queues/a%C2%85/health", {}, ["path", "queue_id"], "should match pattern"),
        ("/v1/queues/a%0A/health", {}, ["path", "queue_id"], "should match pattern"),
    ],
)
async def test_bad_parameters_are_422_naming_the_parameter(
    sessions: async_sessionmaker[AsyncSession],
    path: str,
    params: dict[str, Any],
    loc: list[str],
    msg: str,
) -> None:
    async with api_client(sessions) as client:
        r = await client.get(path, params=params)
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == loc
    assert msg in error["msg"]


@pytest.mark.parametrize(
    ("alert_id", "msg"),
    [
        ("0", "greater than or equal to 1"),
        (str(2**63), "less than or equal to 9223372036854775807"),  # was a 500
        ("-1", "greater than or equal to 1"),
        ("1e3", "valid integer"),
        ("x", "valid integer"),
    ],
)
async def test_an_alert_id_is_a_bounded_integer(
    sessions: async_sessionmaker[AsyncSession], alert_id: str, msg: str
) -> None:
    async with api_client(sessions) as client:
        r = await client.post(f"/v1/alerts/{alert_id}/ack")
        largest = await client.post(f"/v1/alerts/{2**63 - 1}/ack")
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["path", "alert_id"]
    assert msg in error["msg"]
    assert largest.status_code == 404, largest.text  # in range: looked up, not found


@pytest.mark.parametrize("hours", [(2, 1), (1, 1)])
async def test_a_range_from_at_or_after_to_is_empty(
    sessions: async_sessionmaker[AsyncSession], hours: tuple[int, int]
) -> None:
    async with sessions() as s, s.begin():
        await db.upsert_snapshot(s, make_snapshot("q", 0, []), NOW)
        await db.upsert_subgroups(s, [make_point("q", 1)], NOW)
    async with api_client(sessions) as client:
        r = await client.get(CHART, params={"from": iso(at(hours[0])), "to": iso(at(hours[1]))})
        whole = await client.get(CHART, params={"from": iso(at(1)), "to": iso(at(2))})
    assert r.status_code == 200, r.text
    assert r.json()["points"] == []
    assert len(whole.json()["points"]) == 1


async def test_limit_bounds_are_accepted(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with api_client(sessions) as client:
        one = await client.get(CHART, params={"limit": 1})
        most = await client.get(CHART, params={"limit": 1000})
        default = await client.get(CHART)
    assert [len(r.json()["points"]) for r in (one, most, default)] == [1, 3, 3]
    assert one.json()["next"] == iso(at(0))
    assert most.json()["next"] is None


async def test_every_status_is_documented(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with api_client(sessions) as client:
        spec = (await client.get("/openapi.json")).json()
    op = spec["paths"]["/v1/queues/{queue_id}/chart"]["get"]
    assert set(op["responses"]) == {"200", "404", "422"}
    for status, schema in (("200", "Chart"), ("404", "Problem"), ("422", "ValidationProblem")):
        content = op["responses"][status]["content"]["application/json"]
        assert content["schema"] == {"$ref": f"#/components/schemas/{schema}"}
    params = {p["name"]: p for p in op["parameters"]}
    assert set(params) == {"queue_id", "from", "to", "after", "limit"}
    assert params["queue_id"]["schema"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
    assert (params["limit"]["schema"]["minimum"], params["limit"]["schema"]["maximum"]) == (1, 1000)
    health = spec["paths"]["/v1/queues/{queue_id}/health"]["get"]
    assert health["parameters"][0]["schema"]["pattern"] == params["queue_id"]["schema"]["pattern"]


async def test_health_and_queue_list_carry_the_late_counts(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    snap = make_snapshot("q", 3, []).model_copy(
        update={"late_verdicts_total": 12, "late_verdicts_24h": 4, "subgroups_closed": 30}
    )
    async with sessions() as s, s.begin():
        await db.upsert_snapshot(s, snap, NOW)
    async with api_client(sessions) as client:
        one = (await client.get("/v1/queues/q/health")).json()
        (listed,) = (await client.get("/v1/queues")).json()
    for body in (one["snapshot"], listed["snapshot"]):
        late = {
            k: body[k] for k in ("late_verdicts_total", "late_verdicts_24h", "subgroups_closed")
        }
        assert late == {"late_verdicts_total": 12, "late_verdicts_24h": 4, "subgroups_closed": 30}
