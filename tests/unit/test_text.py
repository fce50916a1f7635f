"""The free-text rule (shared.text): what a later reader sees is what was written."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.text import clean_text

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
