"""Schemathesis hooks for tests/integration/test_api_contract.py (loaded through the
``SCHEMATHESIS_HOOKS`` environment variable by the schemathesis process).

* NDJSON: the ingest document describes an ``application/x-ndjson`` body as the array of its
  lines' values; this serializer writes that array one JSON value per line.
* Event times: ingest refuses a time more than 15 minutes ahead of the clock (a 422 naming
  the item, documented), and so does the alerts service a baseline reset's ``effective_at``:
  a bound that depends on the clock and so cannot be stated in JSON
  Schema. A valid generated time after that bound is moved to an hour ago (nothing else
  is changed), so ``positive_data_acceptance`` holds every schema-valid body to a 202.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis

_TIMES = ("decided_at", "reviewed_at", "effective_at")  # (effective_at: a baseline reset)


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


# the service's grammar of an event time (shared/events.py)
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _future(value: Any, horizon: datetime) -> bool:
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        return False
    try:
        return datetime.fromisoformat(value.upper().replace(" ", "T")) > horizon
    except (ValueError, OverflowError):
        return False


def _in_the_past(item: Any, horizon: datetime, past: str) -> Any:
    if not isinstance(item, dict):
        return item
    return {k: past if k in _TIMES and _future(v, horizon) else v for k, v in item.items()}


@schemathesis.hook
def map_body(ctx: Any, body: Any) -> Any:
    # a valid event time after the bound becomes a valid one an hour ago; nothing else changes
    now = datetime.now(UTC)
    horizon, past = now + timedelta(minutes=5), (now - timedelta(hours=1)).isoformat()
    if isinstance(body, list):
        return [_in_the_past(item, horizon, past) for item in body]
    return _in_the_past(body, horizon, past)
