"""An event's time, RFC 3339 text with a zone, as seconds since the epoch: what
``datetime.timestamp()`` gives for pydantic's datetime of the text, the value a batch
carries (``shared.batches``).

``epoch`` is the compiled ``_rfc3339.epoch`` where the install built it (setup.py): it
answers for the common forms (years 1970-2200, at most 6 fraction digits) in a tenth of the
time; where it was not built, pydantic-core answers (``epoch_by_pydantic``). Either way
None means "not this way": the caller then validates the event through its model, which
decides and says why (services/ingest/validation.py).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from pydantic_core import SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from shared.events import RFC3339_PATTERN

# the grammar (JSON Schema's date-time: RFC 3339 with a zone), then pydantic's datetime
_TEXT = SchemaValidator(
    cs.chain_schema(
        [
            cs.str_schema(pattern=RFC3339_PATTERN, strict=True),
            cs.datetime_schema(tz_constraint="aware"),
        ]
    )
)


def epoch_by_pydantic(text: Any) -> float | None:
    """``text`` as epoch seconds through pydantic-core, or None where it refuses it."""
    try:
        t: float = _TEXT.validate_python(text).timestamp()
    except ValidationError:
        return None
    return t


_compiled: ModuleType | None
try:  # (built by the install where a C compiler is found: setup.py)
    from shared import _rfc3339 as _compiled
except ImportError:  # pragma: no cover - the build without a compiler
    _compiled = None

COMPILED = _compiled is not None
epoch: Callable[[Any], float | None] = epoch_by_pydantic if _compiled is None else _compiled.epoch
