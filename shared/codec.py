"""Fast JSON encoding for everything on the wire (orjson), one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel

if TYPE_CHECKING:  # (fastapi costs ~0.15 s of CPU to import: the scorer never needs it)
    from fastapi import Response

_OPTS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def dumps(obj: Any) -> bytes:
    """Encode a JSON-compatible object, datetime or pydantic model to bytes."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json", exclude_none=False)
    return orjson.dumps(obj, option=_OPTS)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON bytes. Raises ``orjson.JSONDecodeError`` (a ``ValueError``)."""
    return orjson.loads(data)


JSONDecodeError = orjson.JSONDecodeError


def json_response(content: Any, status_code: int = 200) -> Response:
    """A JSON response encoded with orjson, for handlers that choose their status code."""
    from fastapi import Response

    return Response(content=dumps(content), status_code=status_code, media_type="application/json")
