"""Shared hypothesis settings, strategies and helpers for the ``shared.stats`` tests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""Bounded example count so the whole suite stays well under 30 s."""


@st.composite
def subgroups(
    draw: st.DrawFn, max_n: int = 200, min_size: int = 0, max_size: int = 40
) -> list[tuple[int, int]]:
    """A list of ``(errors, n)`` with ``1 <= n <= max_n``."""
    sizes = draw(st.lists(st.integers(1, max_n), min_size=min_size, max_size=max_size))
    return [(draw(st.integers(0, n)), n) for n in sizes]


def json_roundtrip(data: dict[str, object]) -> Any:
    """What a state dict looks like after a trip through a JSON store."""
    return json.loads(json.dumps(data, allow_nan=False))
