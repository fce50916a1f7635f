"""Argument checks shared by the modules of :mod:`shared.stats` (private)."""

from __future__ import annotations

import math

from shared.stats.errors import StatsError


def check_count(errors: int, n: int) -> None:
    """Require ``0 <= errors <= n`` and ``n >= 1`` (integers, not bools)."""
    if isinstance(errors, bool) or not isinstance(errors, int):
        raise StatsError(f"errors must be an int, got {errors!r}")
    if isinstance(n, bool) or not isinstance(n, int):
        raise StatsError(f"n must be an int, got {n!r}")
    if n < 1:
        raise StatsError(f"subgroup size n must be >= 1, got {n}")
    if not 0 <= errors <= n:
        raise StatsError(f"errors must be in [0, n={n}], got {errors}")


def check_open_probability(name: str, p: float) -> None:
    """Require ``0 < p < 1``."""
    if not (isinstance(p, int | float) and math.isfinite(p) and 0.0 < p < 1.0):
        raise StatsError(f"{name} must be in (0, 1), got {p!r}")


def check_closed_probability(name: str, p: float) -> None:
    """Require ``0 <= p <= 1``."""
    if not (isinstance(p, int | float) and math.isfinite(p) and 0.0 <= p <= 1.0):
        raise StatsError(f"{name} must be in [0, 1], got {p!r}")


def check_positive(name: str, value: float) -> None:
    """Require a finite ``value > 0``."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0.0):
        raise StatsError(f"{name} must be a finite number > 0, got {value!r}")


def check_finite(name: str, value: float) -> None:
    """Require a finite number."""
    if not (isinstance(value, int | float) and math.isfinite(value)):
        raise StatsError(f"{name} must be a finite number, got {value!r}")


def check_confidence(confidence: float) -> None:
    """Require a confidence level strictly between 0 and 1."""
    check_open_probability("confidence", confidence)
