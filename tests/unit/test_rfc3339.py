"""Event times as epoch seconds (shared/rfc3339.py): the compiled reader (shared/_rfc3339.c)
gives exactly pydantic's ``datetime.timestamp()`` or None, never another value, and answers
for every text of its subset; worked values from the calendar. Under CI the module must be
built (setup.py): without it ingest's fast path reads every time through pydantic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import rfc3339
from shared.rfc3339 import epoch_by_pydantic
from tests.conftest import unavailable


def compiled(text: Any) -> float | None:
    if rfc3339._compiled is None:
        unavailable("shared/_rfc3339.c is not compiled (pip install -e . with a C compiler)")
    assert rfc3339._compiled is not None
    t: float | None = rfc3339._compiled.epoch(text)
    return t


def test_the_installed_reader_is_the_compiled_one() -> None:
    compiled("2026-01-01T00:00:00Z")  # (fails under CI when the module is missing)
    assert rfc3339.COMPILED
    assert rfc3339._compiled is not None
    assert rfc3339.epoch is rfc3339._compiled.epoch


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1970-01-01T00:00:00Z", 0.0),
        ("1970-01-01T00:00:00+01:00", -3600.0),  # before the epoch: negative
        ("1970-01-01 00:00:00.5-00:30", 1800.5),
        ("2000-02-29T00:00:00Z", 951782400.0),  # a leap day of a century divisible by 400
        ("2000-03-01T00:00:00z", 951868800.0),
        ("2026-11-02t10:00:00-00:00", 1793613600.0),  # -00:00: UTC, as pydantic reads it
        ("2026-12-01T10:11:12.123456Z", 1796119872.123456),
        ("2026-12-01T10:11:12.1Z", 1796119872.1),
        ("2028-02-29T23:59:59.999999-12:00", 1835524799.999999),
        ("2026-11-02T10:00:00+23:59", 1793527260.0),  # the largest offset
        ("2200-12-31T23:59:59.999999-23:59", 7289740739.999999),  # the last year it reads
    ],
)
def test_worked_values(text: str, seconds: float) -> None:
    assert compiled(text) == seconds
    assert epoch_by_pydantic(text) == seconds
    aware = datetime.fromisoformat(text.upper().replace("Z", "+00:00").replace(" ", "T"))
    assert aware.timestamp() == seconds  # the standard library agrees


@pytest.mark.parametrize(
    "text",
    [
        "2100-02-29T00:00:00Z",  # not a leap year (divisible by 100, not by 400)
        "2026-02-29T10:00:00Z",
        "2026-04-31T10:00:00Z",
        "2026-13-01T10:00:00Z",
        "2026-00-01T10:00:00Z",
        "2026-01-00T10:00:00Z",
        "2026-11-02T24:00:00Z",
        "2026-11-02T10:60:00Z",
        "2026-11-02T23:59:60Z",  # a leap second: pydantic refuses it too
        "2026-11-02T10:00:00+24:00",
        "2026-11-02T10:00:00+00:60",
        "2026-11-02T10:00:00",  # no zone
        "2026-11-02T10:00Z",  # no seconds
        "2026-11-02T10:00:00.Z",
        "2026-11-02T10:00:00,5Z",
        "2026-11-02T10:00:00+0100",
        "2026-11-02T10:00:00Z ",
        "2026-11-02X10:00:00Z",
        "\uff12\uff10\uff12\uff16-11-02T10:00:00Z",  # full-width digits
        "2026-11-02T10:00:00\ud800Z",  # a lone surrogate: no UTF-8
        "",
    ],
)
def test_what_is_no_date_time_is_refused(text: str) -> None:
    assert compiled(text) is None
    assert epoch_by_pydantic(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "1969-12-31T23:59:59Z",  # before 1970
        "2201-01-01T00:00:00Z",  # after 2200: microseconds past 2^53
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2026-11-02T10:00:00.1234567Z",  # finer than a microsecond: pydantic truncates
    ],
)
def test_outside_its_subset_it_leaves_the_answer_to_pydantic(text: str) -> None:
    assert compiled(text) is None
    assert epoch_by_pydantic(text) is not None


@pytest.mark.parametrize("value", [None, 1793613600, 1793613600.0, b"2026-11-02T10:00:00Z", []])
def test_a_value_that_is_not_text_is_refused(value: Any) -> None:
    assert compiled(value) is None
    assert epoch_by_pydantic(value) is None


# -- property: the same value as pydantic, or None; and None only outside the subset -------
def _num(lo: int, hi: int, width: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(lambda n: str(n).zfill(width))


@st.composite
def date_times(draw: st.DrawFn) -> str:
    """Texts of the grammar's shape, with every field drawn past its range too."""
    date = (
        f"{draw(_num(1960, 2210, 4))}-{draw(_num(0, 13, 2))}-{draw(_num(0, 32, 2))}"
        f"{draw(st.sampled_from('Tt '))}"
        f"{draw(_num(0, 24, 2))}:{draw(_num(0, 60, 2))}:{draw(_num(0, 60, 2))}"
    )
    frac = draw(st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=9)))
    zone = draw(
        st.one_of(
            st.sampled_from(["Z", "z"]),
            st.builds(
                lambda sign, h, m: f"{sign}{h}:{m}",
                st.sampled_from("+-"),
                _num(0, 24, 2),
                _num(0, 60, 2),
            ),
        )
    )
    return date + (f".{frac}" if frac else "") + zone


def _in_subset(text: str) -> bool:
    """Where the compiled reader must answer (given that pydantic does)."""
    frac = text[20:].rstrip("Zz").split("+")[0].split("-")[0] if text[19] == "." else ""
    return 1970 <= int(text[:4]) <= 2200 and len(frac) <= 6


@settings(max_examples=3000, deadline=None)
@given(date_times())
def test_it_gives_pydantics_value_and_answers_for_all_its_subset(text: str) -> None:
    ours, theirs = compiled(text), epoch_by_pydantic(text)
    if ours is not None:
        assert ours == theirs, text  # the same double
    elif theirs is not None:
        assert not _in_subset(text), text


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=40))
def test_any_text_gets_pydantics_value_or_none(text: str) -> None:
    ours = compiled(text)
    assert ours is None or ours == epoch_by_pydantic(text)


@settings(max_examples=1000, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2200, 12, 30), timezones=st.none()
    ),
    st.integers(-(24 * 60 - 1), 24 * 60 - 1),
)
def test_every_instant_of_its_range_reads_back(naive: datetime, offset_min: int) -> None:
    """Any instant, written as RFC 3339 in any zone, reads back as its own timestamp."""
    aware = naive.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    text = aware.isoformat()
    assert compiled(text) == aware.timestamp() == epoch_by_pydantic(text)
    assert compiled(aware.astimezone(UTC).isoformat().replace("+00:00", "Z")) == aware.timestamp()
