"""The alerts repository on SQLite (the same tests run on PostgreSQL in tests/integration)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from tests.alerts_cases import run_repository_cases


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    await db.create_schema(engine)
    yield db.make_sessionmaker(engine)
    await engine.dispose()


async def test_repository_on_sqlite(sessions: async_sessionmaker[AsyncSession]) -> None:
    await run_repository_cases(sessions)


async def test_naive_datetimes_are_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    from tests.alerts_cases import make_breach

    with pytest.raises(Exception, match="naive"):
        async with sessions() as s, s.begin():
            await db.record_breach(s, make_breach("q", 0), receivers=[], now=datetime(2026, 1, 1))
