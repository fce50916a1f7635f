"""A real PostgreSQL, reached the way the services reach it: SQLAlchemy async + psycopg.

Start the server with ``deploy/postgres/postgres.sh start`` and pass its URL::

    QW_TEST_PG_URL=$(deploy/postgres/postgres.sh start) pytest tests/integration/test_postgres_local.py

Without ``QW_TEST_PG_URL`` the script's default URL is tried. An unreachable server skips
these tests on a developer's machine and fails them in CI (``CI=true``), where the server
must be there.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

pytestmark = pytest.mark.postgres

DEFAULT_URL = "postgresql+psycopg://qw:qw@127.0.0.1:15432/qualitywatch"


def _pg_url() -> str:
    return os.environ.get("QW_TEST_PG_URL") or DEFAULT_URL


def _unreachable(reason: str) -> None:
    msg = f"PostgreSQL at QW_TEST_PG_URL unreachable ({reason}); start it with deploy/postgres/postgres.sh start"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    url = _pg_url()
    if not url.startswith("postgresql+psycopg://"):
        pytest.fail(
            f"QW_TEST_PG_URL must be a postgresql+psycopg:// URL, got {url.split('://')[0]}://"
        )
    eng = create_async_engine(url, connect_args={"connect_timeout": 5}, pool_pre_ping=True)
    try:
        async with eng.connect() as conn:
            await conn.execute(text("select 1"))
    except (OperationalError, OSError) as exc:
        await eng.dispose()
        _unreachable(str(exc).splitlines()[0])
    yield eng
    await eng.dispose()


async def test_select_one(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.scalar(text("select 1")) == 1


async def test_server_is_postgresql_15_or_newer(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        version = await conn.scalar(text("select current_setting('server_version_num')::int"))
    assert isinstance(version, int)
    assert version >= 150000


async def test_user_can_create_tables_in_public_schema(engine: AsyncEngine) -> None:
    # PostgreSQL 15 revoked CREATE on schema public from ordinary users: the application's
    # user must own its database (postgres.sh and the compose service both arrange that).
    async with engine.connect() as conn:
        trans = await conn.begin()
        try:
            await conn.execute(text("create table qw_probe (id int primary key, note text)"))
            await conn.execute(text("insert into qw_probe values (1, 'ok')"))
            assert await conn.scalar(text("select note from qw_probe where id = 1")) == "ok"
        except DBAPIError as exc:
            pytest.fail(f"the QualityWatch user cannot create tables: {exc}")
        finally:
            await trans.rollback()


async def test_alerts_repository_on_postgresql(engine: AsyncEngine) -> None:
    """The same behavioural cases as on SQLite (tests/unit/test_alerts_db.py)."""
    from services.alerts import db
    from tests.alerts_cases import run_incident_cases, run_repository_cases

    async with engine.begin() as conn:
        await conn.run_sync(db.Base.metadata.drop_all)
    await db.create_schema(engine)
    try:
        await run_repository_cases(db.make_sessionmaker(engine))
        await run_incident_cases(db.make_sessionmaker(engine))
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(db.Base.metadata.drop_all)
