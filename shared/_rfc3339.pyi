"""Types of the C module shared/_rfc3339.c (built by setup.py where a compiler is)."""

def epoch(text: object, /) -> float | None:
    """The RFC 3339 date-time ``text`` as seconds since the epoch (``datetime.timestamp()``
    of pydantic's datetime of it), or None where this does not answer."""
