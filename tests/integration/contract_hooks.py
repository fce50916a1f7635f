"""Schemathesis hooks for tests/integration/test_api_contract.py (loaded through the
``SCHEMATHESIS_HOOKS`` environment variable by the schemathesis process).

* NDJSON: the ingest document describes an ``application/x-ndjson`` body as the array of its
  lines' values; this serializer writes that array one JSON value per line.
* Event times: ingest refuses a time more than 15 minutes ahead of the clock, or older than
  ``QW_INGEST_MAX_AGE_DAYS`` (a 422 naming the item, documented), and so does the alerts
  service a baseline reset's ``effective_at`` ahead of the clock: bounds that depend on the
  clock and so cannot be stated in JSON Schema; so does ingest a time before 2000-01-01,
  whatever the days. A valid generated time outside them is moved
  to an hour ago (nothing else is changed), so ``positive_data_acceptance`` holds every
  schema-valid body to a 202. (The coverage phase runs no hook.)
"""

from __future__ import annotations

import json
import os
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


def _outside(value: Any, earliest: datetime, horizon: datetime) -> bool:
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        return False
    try:
        when = datetime.fromisoformat(value.upper().replace(" ", "T"))
    except (ValueError, OverflowError):
        return False
    return when > horizon or when < earliest


def _in_the_past(item: Any, earliest: datetime, horizon: datetime, past: str) -> Any:
    if not isinstance(item, dict):
        return item
    return {
        k: past if k in _TIMES and _outside(v, earliest, horizon) else v for k, v in item.items()
    }


@schemathesis.hook
def map_body(ctx: Any, body: Any) -> Any:
    # a valid event time outside the bounds becomes a valid one an hour ago; nothing else
    # changes (the oldest bound with a day to spare; tests/conftest.py sets the days)
    now = datetime.now(UTC)
    days = int(os.environ.get("QW_INGEST_MAX_AGE_DAYS", "400"))
    # and never before 2000-01-01, which ingest refuses whatever QW_INGEST_MAX_AGE_DAYS says
    floor = datetime(2000, 1, 2, tzinfo=UTC)
    earliest, horizon = max(now - timedelta(days=days - 1), floor), now + timedelta(minutes=5)
    past = (now - timedelta(hours=1)).isoformat()
    if isinstance(body, list):
        return [_in_the_past(item, earliest, horizon, past) for item in body]
    return _in_the_past(body, earliest, horizon, past)
