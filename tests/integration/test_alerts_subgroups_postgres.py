"""The subgroup repository and the chart API on a real PostgreSQL (the SQLite run is in
tests/unit/test_alerts_db.py). Reached as in test_postgres_local.py: ``QW_TEST_PG_URL``,
skipped when unreachable, failed under ``CI=true``.

Each test gets its own schema (``search_path``), so it never touches the tables of another
test or of a developer's running service in the same database, and drops it at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from services.alerts import db
from tests.alerts_cases import SUBGROUP_CASES
from tests.integration.test_postgres_local import _pg_url, _unreachable

pytestmark = pytest.mark.postgres


@pytest.fixture
async def sessions() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = _pg_url()
    schema = f"qw_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url, connect_args={"connect_timeout": 5})
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f"create schema {schema}"))
    except (OperationalError, OSError) as exc:
        await admin.dispose()
        _unreachable(str(exc).splitlines()[0])
    engine = create_async_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        await db.create_schema(engine)
        yield db.make_sessionmaker(engine)
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f"drop schema {schema} cascade"))
        await admin.dispose()


@pytest.mark.parametrize("case", SUBGROUP_CASES, ids=lambda case: case.__name__)
async def test_subgroups_on_postgresql(
    sessions: async_sessionmaker[AsyncSession],
    case: Callable[[async_sessionmaker[AsyncSession]], Awaitable[None]],
) -> None:
    async with sessions() as s:  # the tables live in the test's own schema
        assert str(await s.scalar(text("select current_schema()"))).startswith("qw_test_")
    await case(sessions)
