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


def confidence_words(confidence: float) -> str:
    """A confidence as a percentage with the fewest decimals that say its tail (1 -
    confidence) within 5%: ``95%``, ``97.5%``, ``99.9992%`` (a tail of 8.3e-6)."""
    tail = 1 - confidence
    for digits in range(0, 12):
        text = f"{confidence * 100:.{digits}f}"
        if abs((100 - float(text)) / 100 - tail) <= 0.05 * tail:
            return f"{text}%"
    return f"{confidence * 100}%"


def percent_apart(value: float, other: float) -> str:
    """``value`` as a percentage with one decimal, or as many more (up to three) as it takes
    to read differently from ``other`` at the same precision: a bound of 89.96% under a
    target of 90% reads "89.96%", not "90.0%" under "90.0%"."""
    for digits in (1, 2, 3):
        text = f"{value:.{digits}%}"
        if text != f"{other:.{digits}%}":
            return text
    return f"{value:.3%}"


def percents_apart(value: float, other: float) -> tuple[str, str]:
    """``value`` and ``other`` as percentages at the same precision: one decimal, or as many
    more (up to six) as it takes to read them apart when they differ, so "above" or "below"
    between them is what a reader sees: 14.375% and 14.37% read "14.375%" and "14.370%",
    not "14.375%" against "14.4%". Equal values read alike, with as many decimals (up to
    three) as they need: 14.375% and 14.375% read "14.375%"."""
    if value == other:
        digits = next((d for d in (1, 2) if abs(round(value * 100, d) - value * 100) < 1e-9), 3)
        return f"{value:.{digits}%}", f"{other:.{digits}%}"
    for digits in range(1, 7):
        a, b = f"{value:.{digits}%}", f"{other:.{digits}%}"
        if a != b:
            return a, b
    return a, b


def rate_against_limit(rate: float, limit: float) -> str:
    """``error rate 14.6% above the control limit 14.4%``, or ``... at the control limit
    14.375%`` when the rate is the limit (the p-chart signals at or above its limit, the
    EWMA only above): both at one precision, the word the comparison's."""
    a, b = percents_apart(rate, limit)
    where = "at" if rate == limit else "above" if rate > limit else "below"
    return f"error rate {a} {where} the control limit {b}"


def below_target_words(
    queue_id: str, n: int, errors: int, target: float, upper: float, confidence: float
) -> str:
    """The below-target alert in error rates, as every other alert speaks, with the accuracy
    target stated as targets are set: ``queue spam-en: 24h error rate 12.0% (accuracy 88.0%,
    upper 99.9992% bound 89.97%) is over the 10.0% the 90.0% accuracy target allows,
    n=4600``."""
    rate, allowed = percents_apart(errors / n, 1 - target)
    return (
        f"queue {queue_id}: 24h error rate {rate} (accuracy {1 - errors / n:.1%}, upper "
        f"{confidence_words(confidence)} bound {percent_apart(upper, target)}) is over the {allowed} the "
        f"{target:.1%} accuracy target allows, n={n}"
    )
