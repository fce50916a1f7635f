"""What every router of the alerts service shares: the FastAPI dependencies (one database
session per request, its transaction; the service's settings) and the bodies of refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.settings import AlertsSettings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session, session.begin():
        yield session


def get_settings(request: Request) -> AlertsSettings:
    settings: AlertsSettings = request.app.state.settings
    return settings


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[AlertsSettings, Depends(get_settings)]


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
