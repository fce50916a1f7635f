"""Errors raised by :mod:`shared.analysis`.

One root, :class:`AnalysisError`; the command line turns any of them into a one-line message
and exit code 2 (bad input or bad options), never a traceback.
"""

from __future__ import annotations

__all__ = ["AnalysisError", "InputError", "OptionError"]


class AnalysisError(ValueError):
    """Root of the errors of an offline analysis; the message is meant for the user."""


class InputError(AnalysisError):
    """The verdicts file cannot be used: unreadable, empty, a missing column, a bad value."""


class OptionError(AnalysisError):
    """The options do not make sense (unknown chart, conflicting baseline options...)."""
