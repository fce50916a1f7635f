"""One rule for the free text people write into QualityWatch (a baseline reset's reason,
an incident note): what a later reader sees must be what was written.

Refused, wherever it appears: control characters other than newline and tab (C0, DEL and
C1), lone surrogates (not text; no database can store them), and the Unicode bidirectional
controls (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069), with which a note can
display differently from what it says (CVE-2021-42574, "Trojan Source"). Leading and trailing
blanks are dropped. Everything else, any script and emoji (with their joiners), is kept.
"""

from __future__ import annotations

import re

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_REFUSED = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff{_BIDI}]")

# The same rule for the OpenAPI documents (JSON Schema patterns, ECMA-262 and Python alike):
# what clean_text refuses, escaped; TEXT_PATTERN also needs one character that is not blank.
# (Lone surrogates are left out: not text, a JSON parser refuses them before any pattern.)
_BAD = r"\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
TEXT_PATTERN = rf"^[ \t\n]*[^\s{_BAD}][^{_BAD}]*$"
OPTIONAL_TEXT_PATTERN = rf"^[^{_BAD}]*$"


def clean_text(value: str) -> str:
    """``value`` without its leading and trailing blanks; ``ValueError`` naming the first
    refused character (by code point) and where it is."""
    value = value.strip()
    bad = _REFUSED.search(value)
    if bad is not None:
        raise ValueError(
            f"character U+{ord(bad.group()):04X} at position {bad.start()} is refused: "
            "no control characters but newline and tab, no bidirectional controls, "
            "no lone surrogates"
        )
    return value


def percent_apart(value: float, other: float) -> str:
    """``value`` as a percentage with one decimal, or as many more (up to three) as it takes
    to read differently from ``other`` at the same precision: a bound of 89.96% under a
    target of 90% reads "89.96%", not "90.0%" under "90.0%"."""
    for digits in (1, 2, 3):
        text = f"{value:.{digits}%}"
        if text != f"{other:.{digits}%}":
            return text
    return f"{value:.3%}"
