"""What every router of the alerts service shares: the FastAPI dependencies (one database
session per request, its transaction; the service's settings) and the bodies of refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.settings import AlertsSettings
from shared.ids import KEY_ID_DESCRIPTION, KEY_ID_MAX, KEY_ID_PATTERN


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session, session.begin():
        yield session


def get_settings(request: Request) -> AlertsSettings:
    settings: AlertsSettings = request.app.state.settings
    return settings


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[AlertsSettings, Depends(get_settings)]
# ``?queue_id=``: only this queue's rows (alerts, incidents); 422 outside the id grammar
QueueIdFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=KEY_ID_MAX,
        pattern=KEY_ID_PATTERN,
        description=f"only this queue's: {KEY_ID_DESCRIPTION}",
    ),
]


class Problem(BaseModel):
    """The body of a 404: what was not found."""

    detail: str


class FieldProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(BaseModel):
    """The body of a 422: each bad parameter, where it is (``["query", "limit"]``) and why."""

    detail: list[FieldProblem]


def unprocessable(what: str) -> dict[str, Any]:
    return {"model": ValidationProblem, "description": what}
