"""Event builders for tests: valid by default, every field overridable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 11, 2, tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def decision(i: int | str, queue: str = "spam-en", at: datetime = T0, **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "kind": "decision",
        "decision_id": f"d{i}",
        "content_id": f"c{i}",
        "queue_id": queue,
        "moderator_id": "m1",
        "site_id": "dublin",
        "policy_id": "spam.v3",
        "action": "remove",
        "decided_at": iso(at),
    }
    d.update(kw)
    return d


def verdict(
    i: int | str,
    queue: str = "spam-en",
    at: datetime = T0 + timedelta(hours=1),
    correct: bool = True,
    **kw: Any,
) -> dict[str, Any]:
    v: dict[str, Any] = {
        "kind": "verdict",
        "verdict_id": f"v{i}",
        "decision_id": f"d{i}",
        "queue_id": queue,
        "auditor_id": "qa1",
        "reviewed_at": iso(at),
        "outcome": "correct" if correct else "incorrect",
        "error_type": None if correct else "under_enforcement",
        "sample_type": "random",
    }
    v.update(kw)
    return v
