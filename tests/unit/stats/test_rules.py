"""Western Electric and Nelson run rules: definitions, incremental == batch, sides."""

from __future__ import annotations

import json
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.stats import (
    ALL_RULES,
    NELSON_RULES,
    RULE_DESCRIPTIONS,
    WESTERN_ELECTRIC_RULES,
    RuleState,
    StateFormatError,
    StatsError,
    evaluate_rules,
)

from .helpers import FAST, json_roundtrip


def fired(points: list[float], rule: str, sides: str = "both") -> list[int]:
    """Indices at which ``rule`` fires."""
    result = evaluate_rules(points, [rule], sides)  # type: ignore[arg-type]
    return [i for i, names in enumerate(result) if rule in names]


def test_names_are_stable_and_documented() -> None:
    assert tuple(f"nelson{i}" for i in range(1, 9)) == NELSON_RULES
    assert WESTERN_ELECTRIC_RULES == ("weco1", "weco2", "weco3", "weco4")
    assert set(ALL_RULES) == set(RULE_DESCRIPTIONS) == set(NELSON_RULES + WESTERN_ELECTRIC_RULES)


def test_rule_1_one_point_beyond_three_sigma() -> None:
    pts = [0.5, 3.0, 3.01, -3.2, 2.9]
    assert fired(pts, "nelson1") == [2, 3]
    assert fired(pts, "weco1") == [2, 3]
    assert fired(pts, "nelson1", "upper") == [2]
    assert fired(pts, "nelson1", "lower") == [3]


def test_rule_2_nine_on_one_side_and_weco_4_eight() -> None:
    pts = [0.1] * 8 + [0.2, 0.3, 0.0, -0.1]
    assert fired(pts, "weco4") == [7, 8, 9]
    assert fired(pts, "nelson2") == [8, 9]  # the point on the centre line breaks the run
    assert fired([-0.5] * 9, "nelson2") == [8]
    assert fired([-0.5] * 9, "nelson2", "upper") == []


def test_rule_3_six_points_trending() -> None:
    up = [-1.0, -0.5, 0.0, 0.4, 0.8, 1.1, 1.0]
    assert fired(up, "nelson3") == [5]
    assert fired(up, "nelson3", "lower") == []
    ties = [0.0, 0.1, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert fired(ties, "nelson3") == []  # equal neighbours break a trend
    down = [1.0, 0.8, 0.6, 0.4, 0.2, 0.0, -0.2]
    assert fired(down, "nelson3") == [5, 6]


def test_rule_4_fourteen_alternating() -> None:
    saw = [0.5 if i % 2 else -0.5 for i in range(15)]
    assert fired(saw, "nelson4") == [13, 14]
    broken = [*saw[:7], saw[6], *saw[8:]]  # a repeated value breaks the alternation
    assert fired(broken, "nelson4") == []


def test_rule_5_two_of_three_beyond_two_sigma() -> None:
    pts = [2.5, 0.0, 2.1, 2.2, 0.0, -2.5, 0.0, 2.5]
    assert fired(pts, "nelson5") == [2, 3]
    assert fired(pts, "weco2") == [2, 3]
    assert fired([2.5, -2.5, 2.5], "nelson5") == [2]
    assert fired([-2.1, -2.2], "nelson5", "upper") == []
    assert fired([-2.1, -2.2], "nelson5", "lower") == [1]


def test_rule_6_four_of_five_beyond_one_sigma() -> None:
    pts = [1.5, 1.2, 0.0, 1.1, 1.9, 1.3, 0.2, 1.4]
    # at 6 four of the last five are beyond 1 but the point itself is not: no new signal
    assert fired(pts, "nelson6") == [4, 5, 7]
    assert fired(pts, "weco3") == [4, 5, 7]
    assert fired([1.5, 0.0, 1.2, 0.0, 1.3], "nelson6") == []
    assert fired([-1.5] * 4, "nelson6") == [3]


def test_rule_7_fifteen_within_one_sigma() -> None:
    pts = [0.5, -0.5] * 8
    assert fired(pts, "nelson7") == [14, 15]
    assert fired([0.5] * 14 + [1.0], "nelson7") == []  # |z| must be strictly below 1


def test_rule_8_eight_beyond_one_sigma_on_both_sides() -> None:
    pts = [1.5, -1.5, 1.2, -1.8, 2.0, -1.1, 1.4, -1.3, 0.5]
    assert fired(pts, "nelson8") == [7]
    assert fired([1.5] * 8, "nelson8") == []  # all on one side: that is rule 6, not 8


def test_run_rules_keep_firing_while_the_pattern_extends() -> None:
    assert fired([0.2] * 11, "nelson2") == [8, 9, 10]


values = st.one_of(
    st.sampled_from(
        [-3.5, -3.0, -2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    ),
    st.floats(-4.5, 4.5, allow_nan=False),
)


@FAST
@given(
    points=st.lists(values, max_size=120),
    split=st.data(),
    rules=st.sets(st.sampled_from(ALL_RULES), min_size=1),
    sides=st.sampled_from(["both", "upper", "lower"]),
)
def test_incremental_equals_batch_for_any_split(
    points: list[float], split: st.DataObject, rules: set[str], sides: str
) -> None:
    cut = split.draw(st.integers(0, len(points)))
    state = RuleState(rules, sides)  # type: ignore[arg-type]
    got = [state.update(z) for z in points[:cut]]
    state = RuleState.from_dict(json_roundtrip(state.to_dict()))
    got += [state.update(z) for z in points[cut:]]
    assert got == evaluate_rules(points, rules, sides)  # type: ignore[arg-type]


@FAST
@given(points=st.lists(st.floats(-8, 0, allow_nan=False), max_size=100))
def test_points_at_or_below_the_centre_never_fire_upper_zone_rules(points: list[float]) -> None:
    zone_rules = ["nelson1", "nelson2", "nelson5", "nelson6", "weco1", "weco2", "weco3", "weco4"]
    assert all(names == () for names in evaluate_rules(points, zone_rules, "upper"))


def test_results_are_in_canonical_order() -> None:
    state = RuleState(["weco1", "nelson1"])
    assert state.update(4.0) == ("nelson1", "weco1")


def test_errors() -> None:
    with pytest.raises(StatsError, match="unknown rule"):
        RuleState(["nelson9"])
    with pytest.raises(StatsError):
        RuleState(sides="up")  # type: ignore[arg-type]
    with pytest.raises(StatsError):
        RuleState().update(float("nan"))
    bad = RuleState().to_dict()
    bad["v"] = 99
    with pytest.raises(StateFormatError):
        RuleState.from_dict(bad)


def test_state_is_compact() -> None:
    state = RuleState()
    for z in [0.5, 1.2, -0.3, 2.5, 2.7]:
        state.update(z)
    assert len(json.dumps(state.to_dict(), separators=(",", ":"))) < 300


def _normal_arl(rules: tuple[str, ...], runs: int, seed: int) -> tuple[float, float]:
    """Monte-Carlo in-control ARL of the rules on i.i.d. N(0, 1) points."""
    rng = np.random.default_rng(seed)
    lengths = []
    for _ in range(runs):
        state = RuleState(rules)
        t = 0
        signalled = False
        while not signalled:
            for z in rng.standard_normal(256).tolist():
                t += 1
                if state.update(z):
                    signalled = True
                    break
        lengths.append(t)
    arr = np.array(lengths, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1) / np.sqrt(runs))


def test_in_control_arl_of_the_western_electric_rules() -> None:
    """All four WECO rules on a Shewhart chart: ARL0 ≈ 91.75 (Champ & Woodall 1987).

    The 91.75 is the figure usually quoted from Champ & Woodall's exact Markov-chain
    result; it was not confirmed against a stored copy of the paper.  The simulation is the
    independent check: it must agree within 4 standard errors.
    """
    mean, se = _normal_arl(WESTERN_ELECTRIC_RULES, runs=1500, seed=2)
    assert abs(mean - 91.75) < 4 * se


def test_in_control_arl_of_rule_1_alone_is_370() -> None:
    """Rule 1 alone is the 3-sigma Shewhart chart: ARL0 = 1 / P(|Z| > 3) = 370.4."""
    mean, se = _normal_arl(("nelson1",), runs=800, seed=3)
    assert abs(mean - 1 / (2 * NormalDist().cdf(-3.0))) < 4 * se
