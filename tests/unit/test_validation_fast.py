"""Ingest's fast path for raw messages (``validate_raw``): validated from the bytes by a
schema wholly in pydantic-core. It may accept only what the models accept, with the same
values; everything else takes the models' path, so refusals and reasons do not change."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest import validation
from services.ingest.validation import (
    EventKind,
    ItemError,
    fast_item,
    validate_message,
    validate_raw,
)
from shared import batches, codec, rfc3339
from shared.events import Action, Decision, ErrorType, Outcome, SampleType, Verdict
from tests.factories import decision, verdict


def reference(value: bytes | None, kind: EventKind) -> tuple[str, dict[str, Any]] | str:
    """What the models say: (queue, batch item), or the refusal's reason."""
    result = validate_message(value, kind)
    if isinstance(result, ItemError):
        return result.reason()
    return result.queue_id, batches.item(result)


def new(value: bytes | None, kind: EventKind) -> tuple[str, dict[str, Any]] | str:
    result = validate_raw(value, kind)
    return result.reason() if isinstance(result, ItemError) else result


def horizon() -> float:
    return time.time() + 900


@pytest.fixture(params=["compiled", "pydantic"])
def epoch_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fast path with each reader of event times (shared/rfc3339.py): the compiled
    one, and pydantic-core's, which an install without a C compiler has."""
    if request.param == "pydantic":
        monkeypatch.setattr(validation, "epoch", rfc3339.epoch_by_pydantic)
    else:
        assert validation.epoch is rfc3339.epoch  # type: ignore[attr-defined]  # (compiled under CI: test_rfc3339.py)
    return str(request.param)


def test_valid_events_take_the_fast_path_with_the_models_values(epoch_reader: str) -> None:
    events: list[tuple[EventKind, dict[str, Any]]] = [
        ("decision", decision(1)),
        ("decision", decision(2, market="de-DE", severity=1, decided_at="2026-11-02T10:00:00.5+05:30")),
        ("decision", decision(3, decided_at="2026-11-02t10:00:00.123456z")),
        ("decision", decision(4, decided_at="2026-11-02 10:00:00-00:00", v=1)),
        ("decision", decision(5, moderator_tenure_days=0)),
        ("decision", decision(6, moderator_tenure_days=36500, market=None)),
        ("decision", decision(7, moderator_tenure_days=None)),  # null: unknown, as absent
        ("verdict", verdict(1)),
        ("verdict", verdict(2, correct=False, sample_type="appeal")),
        ("verdict", verdict(3, error_type=None, sample_type="calibration")),
    ]  # fmt: skip
    for kind, event in events:
        raw = codec.dumps(event)
        fast = fast_item(raw, kind, horizon())
        assert fast is not None, event
        assert fast == reference(raw, kind)


@pytest.mark.parametrize(
    ("kind", "raw", "why"),
    [
        ("decision", codec.dumps(decision(1))[:-1] + b',"extra":NaN}', "not JSON"),
        ("decision", codec.dumps(decision(1))[:-1] + b',"extra":Infinity}', "not JSON"),
        ("decision", codec.dumps(decision(1))[:-1] + b',"extra":1e400}', "not JSON"),
        ("decision", codec.dumps(decision(1, severity=True)), "severity"),
        ("decision", codec.dumps(decision(1, v=True)), "v"),
        ("decision", codec.dumps(decision(1, decided_at="2026-11-02T10:00:00")), "time zone"),
        ("decision", codec.dumps(decision(1, decided_at="2026-11-02")), "RFC 3339"),
        ("decision", codec.dumps(decision(1, decided_at="2026-02-30T10:00:00Z")), "decided_at"),
        ("decision", codec.dumps(decision(1, decided_at="2099-01-01T00:00:00Z")), "in the future"),
        ("decision", codec.dumps(decision(1, decision_id="d1\n")), "decision_id"),
        ("decision", codec.dumps(decision(1, site_id="a|b")), "site_id"),
        ("decision", codec.dumps(verdict(1)), "kind"),
        ("verdict", codec.dumps(verdict(1, correct=False, error_type=None)), "error_type: "),
        ("verdict", codec.dumps(verdict(1, error_type="technical")), "error_type: "),
        ("verdict", codec.dumps(verdict(1, correct=False, error_type=None) | {"v": 1}), "error_type: "),
        ("verdict", b'{"kind": "verdict", "verdict_id": ', "not JSON"),
        ("verdict", b"[]", "<item>"),
    ],
)  # fmt: skip
def test_refusals_and_their_reasons_are_the_models(
    kind: EventKind, raw: bytes, why: str, epoch_reader: str
) -> None:
    assert fast_item(raw, kind, horizon()) is None
    result = validate_raw(raw, kind)
    assert isinstance(result, ItemError)
    assert why in result.reason()
    assert result.reason() == reference(raw, kind)


@pytest.mark.parametrize(
    "event",
    [decision(1, unknown_field="x"), decision(1, severity=2.0), decision(1, v=1.0)],
)
def test_what_only_the_models_accept_is_accepted_through_them(event: dict[str, Any]) -> None:
    raw = codec.dumps(event)
    assert fast_item(raw, "decision", horizon()) is None  # not the fast path's business
    assert new(raw, "decision") == reference(raw, "decision")
    assert not isinstance(new(raw, "decision"), str)


def test_a_tombstone_is_refused() -> None:
    assert (
        new(None, "decision") == reference(None, "decision") == "<item>: empty message (tombstone)"
    )


@pytest.mark.parametrize(("kind", "model"), [("decision", Decision), ("verdict", Verdict)])
def test_the_fast_path_knows_every_field_of_the_model(
    kind: EventKind, model: type[Decision | Verdict]
) -> None:
    """A field added to the model must be added to the fast schema too (else every event
    would take the slow path, or the batch would miss the field)."""
    raw = codec.dumps(decision(1) if kind == "decision" else verdict(1))
    fast = fast_item(raw, kind, horizon())
    assert fast is not None
    assert set(fast[1]) | {"v", "kind", "queue_id"} == set(model.model_fields)


# -- property: the fast path never accepts what the models refuse, never changes a value ----
_TEXT = st.sampled_from(
    ["ok-1", "a", "x" * 128, "x" * 129, "x" * 200, "x" * 201, "a\n", " a", "a b", "é", "-x",
     "a|b", "a/b", "a@b", "", "1", "~!", "2026-11-02T10:00:00Z", "2026-11-02t10:00:00z",
     "2026-11-02 10:00:00.123+05:30", "2026-11-02T10:00:00", "2026-11-02", "2026-11-02T10:00Z",
     "2026-02-29T10:00:00Z", "2028-02-29T23:59:59.999999-12:00", "2026-11-02T24:00:00Z",
     "2026-11-02T10:00:00.1234567Z", "2026-11-02T10:00:00+24:00", "0001-01-01T00:00:00Z",
     "9999-12-31T23:59:59Z", "2099-01-01T00:00:00Z", "decision", "verdict"]
    + [e.value for enum in (Action, Outcome, ErrorType, SampleType) for e in enum]
)  # fmt: skip
_VALUE = st.one_of(
    _TEXT, st.text(max_size=12), st.none(), st.booleans(), st.integers(-3, 6),
    st.sampled_from([36500, 36501, 30, 30.0]),
    st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=2),
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> tuple[EventKind, bytes]:
    kind: EventKind = draw(st.sampled_from(["decision", "verdict"]))
    event: dict[str, Any] = decision(1) if kind == "decision" else verdict(1)
    if kind == "verdict" and draw(st.booleans()):
        event.update(outcome="incorrect", error_type="wrong_policy")
    for name in draw(
        st.lists(
            st.sampled_from([*event, "market", "severity", "moderator_tenure_days", "v", "extra"])
        )
    ):
        if draw(st.integers(0, 4)) == 0:
            event.pop(name, None)
        else:
            event[name] = draw(_VALUE)
    return kind, codec.dumps(event)


@settings(
    max_examples=600,
    deadline=None,
    # (the fixture sets the reader once for all the examples)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(mutated())
def test_the_fast_path_accepts_a_subset_of_the_models_with_the_same_values(
    epoch_reader: str, case: tuple[EventKind, bytes]
) -> None:
    kind, raw = case
    fast = fast_item(raw, kind, horizon())
    ref = reference(raw, kind)
    if fast is not None:
        assert fast == ref
    assert new(raw, kind) == ref
