"""The free-text rule (shared.text): what a later reader sees is what was written."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.text import (
    OPTIONAL_TEXT_PATTERN,
    TEXT_PATTERN,
    clean_text,
    percent_apart,
    percents_apart,
    rate_against_limit,
)

REFUSED = (
    [chr(c) for c in range(0x20) if chr(c) not in "\n\t"]
    + [chr(c) for c in range(0x7F, 0xA0)]
    + ["\u061c", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e"]
    + ["\u2066", "\u2067", "\u2068", "\u2069", "\ud800", "\udfff"]
)


@pytest.mark.parametrize("char", REFUSED, ids=lambda c: f"U+{ord(c):04X}")
def test_each_refused_character_is_named(char: str) -> None:
    with pytest.raises(ValueError, match=f"U\\+{ord(char):04X} at position 3"):
        clean_text(f"abc{char}def")


@pytest.mark.parametrize(
    "text",
    [
        "policy hate.v3 in force\nsee ticket\tT-1",
        "مراجعة السياسة",  # right-to-left script itself is text
        "👩‍💻 new cohort",  # emoji with a zero-width joiner
        "naïve café — 90 %",
    ],
)
def test_text_of_any_script_is_kept(text: str) -> None:
    assert clean_text(f"  {text} \n") == text


@given(st.text(alphabet=st.characters(exclude_characters=REFUSED, codec="utf-8")))
def test_anything_else_is_kept_as_written_but_its_outer_blanks(text: str) -> None:
    assert clean_text(text) == text.strip()


@given(st.text(), st.sampled_from(REFUSED), st.text())
def test_a_refused_character_anywhere_is_refused(head: str, char: str, tail: str) -> None:
    with pytest.raises(ValueError, match="is refused"):
        clean_text(f"x{head}{char}{tail}x")


def test_a_bound_never_reads_as_its_target() -> None:
    assert percent_apart(0.8996, 0.90) == "89.96%"
    assert percent_apart(0.8990, 0.90) == "89.9%"
    assert percent_apart(0.89999, 0.90) == "89.999%"
    assert percent_apart(0.913, 0.90) == "91.3%"


@given(st.floats(0, 1), st.floats(0, 1))
def test_percent_apart_reads_apart_when_the_values_differ_enough(a: float, b: float) -> None:
    text = percent_apart(a, b)
    if abs(a - b) >= 0.0001:
        assert text not in {f"{b:.1%}", f"{b:.2%}", f"{b:.3%}"}


@given(st.from_regex(TEXT_PATTERN, fullmatch=True))
def test_what_the_schema_pattern_allows_the_rule_takes(text: str) -> None:
    """The OpenAPI documents state the rule as a pattern: whatever matches it is taken."""
    assert clean_text(text)


@given(st.from_regex(OPTIONAL_TEXT_PATTERN, fullmatch=True))
def test_what_the_optional_pattern_allows_the_rule_takes(text: str) -> None:
    clean_text(text)


def test_two_rates_read_apart_at_one_precision_or_alike_when_equal() -> None:
    assert percents_apart(0.14375, 0.1437) == ("14.375%", "14.370%")
    assert percents_apart(0.146, 0.144) == ("14.6%", "14.4%")
    assert percents_apart(0.14375, 0.14375) == ("14.375%", "14.375%")
    assert percents_apart(0.15, 0.15) == ("15.0%", "15.0%")
    assert rate_against_limit(0.14375, 0.14375) == "error rate 14.375% at the control limit 14.375%"
    assert (
        rate_against_limit(0.14376, 0.14375) == "error rate 14.38% above the control limit 14.37%"
    )


@given(st.floats(0, 1), st.floats(0, 1))
def test_the_word_between_two_rates_is_what_the_printed_numbers_show(a: float, b: float) -> None:
    text = rate_against_limit(a, b)
    said = re.fullmatch(r"error rate ([\d.]+)% (at|above|below) the control limit ([\d.]+)%", text)
    assert said is not None, text
    if abs(a - b) >= 1e-8:
        shown = {"at": float(said[1]) == float(said[3]), "above": float(said[1]) > float(said[3]),
                 "below": float(said[1]) < float(said[3])}  # fmt: skip
        assert shown[said[2]], text
    assert (said[2] == "at") == (a == b)
