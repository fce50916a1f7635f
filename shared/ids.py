"""One grammar for the identifiers QualityWatch keys things by, shared by ingest, the
scorer's batch decoder and both HTTP APIs (path parameters), and told in docs/events.md.

Two kinds of identifier:

* **Key ids** (``queue_id``, ``site_id``, ``policy_id``): they become Kafka keys, state-store
  keys, compaction keys (``queue@start``), metric and Alertmanager labels and URL path
  segments, so they are *restricted*, never escaped: an ASCII letter or digit, then letters,
  digits, ``.``, ``_``, ``:`` or ``-``; 1 to 128 characters. No ``/`` (a path separator), no
  ``|`` (a state-key separator), no ``@``, nothing a URL must escape, no white space.
* **Opaque ids** (``decision_id``, ``content_id``, ``moderator_id``, ``verdict_id``,
  ``auditor_id``): never part of a key or a label, compared as they are: printable ASCII
  without space (``!`` to ``~``), 1 to 200 characters.

Numeric ids in paths (an alert's id) are integers from 1 to 2^63 - 1 (a SQL BIGINT).

Patterns are anchored with ``^...$`` for JSON Schema (ECMA-262: ``$`` is the end of the
text), and every check here uses ``fullmatch``, so a trailing newline, which Python's ``$``
would let through, is refused everywhere alike.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

KEY_ID_MAX = 128
KEY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
KEY_ID_RE = re.compile(KEY_ID_PATTERN.removeprefix("^").removesuffix("$"))
KEY_ID_DESCRIPTION = "a key id: an ASCII letter or digit, then letters, digits, `._:-`; 1-128"

OPAQUE_ID_MAX = 200
OPAQUE_ID_PATTERN = r"^[!-~]{1,200}$"
OPAQUE_ID_RE = re.compile(OPAQUE_ID_PATTERN.removeprefix("^").removesuffix("$"))
OPAQUE_ID_DESCRIPTION = "an opaque id: printable ASCII without space (`!` to `~`); 1-200"

# an alert's id in a path: a positive SQL BIGINT
INT_ID_MAX = 2**63 - 1


def is_key_id(value: str) -> bool:
    return KEY_ID_RE.fullmatch(value) is not None


def _key_id(value: str) -> str:
    if not is_key_id(value):
        raise ValueError(f"{value[:200]!r} is not a key id ({KEY_ID_DESCRIPTION})")
    return value


def _opaque_id(value: str) -> str:
    if OPAQUE_ID_RE.fullmatch(value) is None:
        raise ValueError(f"{value[:200]!r} is not an opaque id ({OPAQUE_ID_DESCRIPTION})")
    return value


# pydantic's own pattern check runs first (and states the pattern in the JSON Schema); the
# validator after it applies the same grammar with fullmatch, whatever the regex engine
KeyId = Annotated[
    str,
    Field(min_length=1, max_length=KEY_ID_MAX, pattern=KEY_ID_PATTERN),
    AfterValidator(_key_id),
]
OpaqueId = Annotated[
    str,
    Field(min_length=1, max_length=OPAQUE_ID_MAX, pattern=OPAQUE_ID_PATTERN),
    AfterValidator(_opaque_id),
]
