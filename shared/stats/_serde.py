"""Helpers for the ``to_dict``/``from_dict`` of the incremental states (private).

Every state serializes to a flat JSON object with ``"v"`` (format version) and ``"kind"``
keys.  Floats round-trip exactly through JSON (Python writes the shortest repr that reads
back to the same double), so a state restored from its dict continues bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from shared.stats.errors import StateFormatError

STATE_VERSION = 1
"""Current version of every state's serialized form (the ``"v"`` key)."""

StateDict = dict[str, object]
"""A state's serialized form: a JSON-ready mapping (str, int, float, bool, None, lists)."""


def header(kind: str) -> StateDict:
    """The ``{"v": ..., "kind": ...}`` prefix of a serialized state."""
    return {"v": STATE_VERSION, "kind": kind}


def check_header(data: Mapping[str, object], kind: str) -> None:
    """Raise :class:`StateFormatError` unless ``data`` is a version-1 state of ``kind``."""
    if not isinstance(data, Mapping):
        raise StateFormatError(f"expected a mapping, got {type(data).__name__}")
    version = data.get("v")
    if version != STATE_VERSION or isinstance(version, bool):
        raise StateFormatError(f"unsupported state version {version!r} (expected {STATE_VERSION})")
    if data.get("kind") != kind:
        raise StateFormatError(f"expected a state of kind {kind!r}, got {data.get('kind')!r}")


def get_float(data: Mapping[str, object], key: str) -> float:
    """A finite float field (JSON integers are accepted)."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StateFormatError(f"field {key!r} must be a number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise StateFormatError(f"field {key!r} must be finite, got {value!r}")
    return result


def get_optional_float(data: Mapping[str, object], key: str) -> float | None:
    """A finite float field that may be ``null``."""
    if data.get(key) is None:
        return None
    return get_float(data, key)


def get_int(data: Mapping[str, object], key: str) -> int:
    """An integer field (floats and bools are refused)."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise StateFormatError(f"field {key!r} must be an integer, got {value!r}")
    return value


def get_str_list(data: Mapping[str, object], key: str) -> list[str]:
    """A list-of-strings field."""
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise StateFormatError(f"field {key!r} must be a list of strings, got {value!r}")
    return [str(item) for item in value]


def get_str(data: Mapping[str, object], key: str) -> str:
    """A string field."""
    value = data.get(key)
    if not isinstance(value, str):
        raise StateFormatError(f"field {key!r} must be a string, got {value!r}")
    return value


class PhaseIRecord(Protocol):
    """What every frozen baseline records about the Phase I it came from."""

    @property
    def p_bar(self) -> float: ...
    @property
    def n_total(self) -> int: ...
    @property
    def errors_total(self) -> int: ...
    @property
    def n_subgroups(self) -> int: ...
    @property
    def excluded(self) -> tuple[int, ...]: ...
    @property
    def created_at(self) -> datetime | None: ...
    @property
    def reason(self) -> str | None: ...


def phase1_to_dict(b: PhaseIRecord) -> dict[str, object]:
    """The Phase I fields of a baseline, JSON-ready (``created_at`` as ISO 8601)."""
    return {
        "p_bar": b.p_bar,
        "n_total": b.n_total,
        "errors_total": b.errors_total,
        "n_subgroups": b.n_subgroups,
        "excluded": list(b.excluded),
        "created_at": None if b.created_at is None else b.created_at.isoformat(),
        "reason": b.reason,
    }


def phase1_from_dict(data: Mapping[str, object]) -> dict[str, Any]:
    """Inverse of :func:`phase1_to_dict`: keyword arguments for a baseline's constructor."""
    excluded, created_at, reason = get_provenance(data)
    return {
        "p_bar": get_float(data, "p_bar"),
        "n_total": get_int(data, "n_total"),
        "errors_total": get_int(data, "errors_total"),
        "n_subgroups": get_int(data, "n_subgroups"),
        "excluded": excluded,
        "created_at": created_at,
        "reason": reason,
    }


def get_provenance(
    data: Mapping[str, object],
) -> tuple[tuple[int, ...], datetime | None, str | None]:
    """A baseline's ``excluded`` indices, ``created_at`` and ``reason`` (all optional)."""
    excluded = data.get("excluded", [])
    if not isinstance(excluded, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in excluded
    ):
        raise StateFormatError("field 'excluded' must be a list of integers")
    created = data.get("created_at")
    reason = data.get("reason")
    if created is not None and not isinstance(created, str):
        raise StateFormatError("field 'created_at' must be an ISO string or null")
    if reason is not None and not isinstance(reason, str):
        raise StateFormatError("field 'reason' must be a string or null")
    return (
        tuple(int(i) for i in excluded),
        None if created is None else datetime.fromisoformat(created),
        reason,
    )
