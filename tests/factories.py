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


def longest_id(i: int, length: int, pad: str = "x") -> str:
    """A distinct id of ``length`` characters (the grammar's longest: 200 for an opaque id,
    128 for a key id); ``pad`` '"' or '\\' makes an opaque id's JSON twice as long."""
    return f"{i:06d}".ljust(length, pad)


def longest_decisions(queue: str, n: int = 2000, at: datetime = T0) -> list[dict[str, Any]]:
    """``n`` valid decisions with every id at the grammar's maximum (a new user's trial: one
    such ingest request made a 1.39 MB state record that the scorer could not write)."""
    return [
        decision(
            i,
            queue,
            at + timedelta(seconds=i),
            decision_id=longest_id(i, 200),
            content_id=longest_id(i, 200),
            moderator_id=longest_id(i, 200, '"'),
            site_id=longest_id(i, 128),
            policy_id=longest_id(i, 128),
        )
        for i in range(n)
    ]
