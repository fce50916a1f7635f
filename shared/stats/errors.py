"""Errors raised by :mod:`shared.stats`.

One root, :class:`StatsError`, so callers can catch everything this package raises with one
``except``.  It derives from :class:`ValueError` because every error here is about a value:
an argument out of range, data for which a statistic is undefined, or a serialized state that
does not parse.
"""

from __future__ import annotations

__all__ = ["StateFormatError", "StatsError", "UndefinedStatisticError"]


class StatsError(ValueError):
    """Root of the errors raised by ``shared.stats`` (invalid arguments included)."""


class UndefinedStatisticError(StatsError):
    """The statistic has no value for these data.

    Examples: Cohen's kappa when both raters put every item in one category (chance agreement
    is 1, so kappa is 0/0); a z-score against a baseline whose error rate is exactly 0 or 1
    (its binomial standard deviation is 0).
    """


class StateFormatError(StatsError):
    """A serialized state (``to_dict`` output) has an unknown version, kind or shape."""
