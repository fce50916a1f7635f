"""The alerts repository on SQLite (the same tests run on PostgreSQL in tests/integration)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from tests.alerts_cases import (
    SUBGROUP_CASES,
    run_incident_cases,
    run_repository_cases,
    sqlite_sessions,
)


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with sqlite_sessions(tmp_path) as sessions:
        yield sessions


async def test_repository_on_sqlite(sessions: async_sessionmaker[AsyncSession]) -> None:
    await run_repository_cases(sessions)


async def test_incidents_on_sqlite(sessions: async_sessionmaker[AsyncSession]) -> None:
    await run_incident_cases(sessions)


@pytest.mark.parametrize("case", SUBGROUP_CASES, ids=lambda case: case.__name__)
async def test_subgroups_on_sqlite(
    sessions: async_sessionmaker[AsyncSession],
    case: Callable[[async_sessionmaker[AsyncSession]], Awaitable[None]],
) -> None:
    await case(sessions)


async def test_naive_datetimes_are_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    from tests.alerts_cases import make_breach

    with pytest.raises(Exception, match="naive"):
        async with sessions() as s, s.begin():
            await db.record_breach(s, make_breach("q", 0), receivers=[], now=datetime(2026, 1, 1))
