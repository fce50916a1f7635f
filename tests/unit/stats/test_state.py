"""Serialized states: versioned, compact, JSON-safe, loadable by kind."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from shared.stats import (
    STATE_VERSION,
    BernoulliCusum,
    BernoulliCusumDesign,
    CusumState,
    EwmaState,
    MovingRangeState,
    RiskAdjustedCusum,
    RuleState,
    StateFormatError,
    StreamState,
    SubgroupAccumulator,
    load_state,
)

from .helpers import json_roundtrip


def _fed_states() -> list[StreamState]:
    acc = SubgroupAccumulator()
    acc.add(3, 57)
    mr = MovingRangeState()
    ew = EwmaState(0.031, 0.1, 2.814)
    cu = CusumState(0.5, 5.0)
    bc = BernoulliCusum(BernoulliCusumDesign.create(0.03, 0.06, h=4.5))
    ra = RiskAdjustedCusum(2.0, 4.5)
    rs = RuleState()
    for i, z in enumerate([0.3, -1.2, 2.4, 2.6, 0.1, -0.7]):
        mr.update(z)
        ew.update(i % 3, 40 + i)
        cu.update(z)
        bc.update(i % 2 == 0)
        ra.update(i % 2 == 0, 0.02 + 0.01 * i)
        rs.update(z)
    return [acc, mr, ew, cu, bc, ra, rs]


@pytest.mark.parametrize("state", _fed_states(), ids=lambda s: type(s).__name__)
def test_every_state_round_trips_through_json_and_load_state(state: StreamState) -> None:
    data = state.to_dict()
    assert data["v"] == STATE_VERSION
    text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    assert len(text) < 320, text  # small enough for one Faust table value per queue
    restored = load_state(json.loads(text))
    assert type(restored) is type(state)
    assert restored == state
    assert restored.to_dict() == data


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(v=2),
        lambda d: d.update(v=True),
        lambda d: d.update(kind="nope"),
        lambda d: d.pop("kind"),
    ],
)
def test_bad_headers_are_refused(mutate: Callable[[dict[str, object]], object]) -> None:
    data = json_roundtrip(EwmaState(0.05).to_dict())
    mutate(data)
    with pytest.raises(StateFormatError):
        load_state(data)


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (EwmaState, "var", -1.0),
        (EwmaState, "z", "x"),
        (EwmaState, "t", 1.5),
        (CusumState, "hi", float("inf")),
        (SubgroupAccumulator, "e", 10),
        (MovingRangeState, "k", -1),
    ],
)
def test_bad_fields_are_refused(cls: type[StreamState], field: str, value: object) -> None:
    state = EwmaState(0.05) if cls is EwmaState else cls()  # type: ignore[call-arg]
    data = state.to_dict()
    data[field] = value
    with pytest.raises(StateFormatError):
        load_state(data)


def test_load_state_refuses_non_mappings() -> None:
    with pytest.raises(StateFormatError):
        load_state([1, 2])  # type: ignore[arg-type]
