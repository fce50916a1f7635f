"""p-chart / np-chart: Phase I trial limits and revision, frozen baseline, Phase II."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.stats import (
    Baseline,
    StatsError,
    Subgroup,
    SubgroupAccumulator,
    UndefinedStatisticError,
    evaluate,
    limits_for,
    np_limits_for,
    standardize,
    trial_limits,
)

from .helpers import FAST, json_roundtrip, subgroups

# Montgomery, Introduction to Statistical Quality Control, 6th ed., Example 7.1 / Table 7.1:
# frozen orange juice concentrate cans, 30 samples of n = 50, number of nonconforming cans.
# Sample 15 used a new batch of cardboard, sample 23 an inexperienced operator (assignable
# causes).  Same data as the `orangejuice` data set of the R package qcc (trial samples).
ORANGE_JUICE = [12, 15, 8, 10, 4, 7, 16, 9, 14, 10, 5, 6, 17, 12, 22,
                8, 10, 5, 13, 11, 20, 18, 24, 15, 9, 12, 7, 13, 9, 6]  # fmt: skip


def test_montgomery_orange_juice_trial_limits() -> None:
    """Trial limits: p̄ = 0.2313, UCL = 0.4102, LCL = 0.0524; samples 15 and 23 are above."""
    chart = trial_limits([(d, 50) for d in ORANGE_JUICE])
    assert chart.p_bar == pytest.approx(0.2313, abs=5e-5)
    assert chart.points[0].ucl == pytest.approx(0.4102, abs=5e-5)
    assert chart.points[0].lcl == pytest.approx(0.0524, abs=5e-5)
    assert chart.out_of_control == (14, 22)  # samples 15 and 23, 0-based
    assert chart.excluded == ()


def test_montgomery_orange_juice_revised_limits() -> None:
    """Revised after excluding 15 and 23: p̄ = 0.2150, UCL = 0.3893, LCL = 0.0407.

    Montgomery notes that sample 21 (p = 0.40) is then above the revised UCL but has no
    assignable cause, so it is kept: revision never excludes anything by itself.
    """
    trial = trial_limits([(d, 50) for d in ORANGE_JUICE])
    revised = trial.revise(excluding=[14, 22])
    assert revised.p_bar == pytest.approx(0.2150, abs=5e-5)
    assert revised.points[0].ucl == pytest.approx(0.3893, abs=5e-5)
    assert revised.points[0].lcl == pytest.approx(0.0407, abs=5e-5)
    assert revised.excluded == (14, 22)
    assert revised.out_of_control == (20,)
    assert revised.points[14].excluded
    assert revised.points[14].beyond
    baseline = revised.baseline(reason="Example 7.1", created_at=datetime(2024, 1, 1, tzinfo=UTC))
    assert baseline.n_total == 1400
    assert baseline.errors_total == 301
    assert baseline.n_subgroups == 28
    assert baseline.excluded == (14, 22)
    assert baseline.p_bar == revised.p_bar


def test_np_chart_on_the_same_data() -> None:
    """np-chart limits are n times the p-chart limits (here 11.57 with limits 2.62, 20.51).

    The figures are derived from Montgomery's p̄ above, not quoted from the book.
    """
    baseline = trial_limits([(d, 50) for d in ORANGE_JUICE]).baseline()
    lcl, center, ucl = np_limits_for(baseline, 50)
    p_limits = limits_for(baseline, 50)
    assert center == pytest.approx(11.5667, abs=1e-4)
    assert ucl == pytest.approx(50 * p_limits.ucl, rel=1e-12)
    assert lcl == pytest.approx(50 * p_limits.lcl, rel=1e-12)
    assert (round(lcl, 2), round(ucl, 2)) == (2.62, 20.51)


def test_revision_is_cumulative_and_explicit() -> None:
    data = [(d, 50) for d in ORANGE_JUICE]
    once = trial_limits(data).revise([14]).revise([22])
    assert once.excluded == (14, 22)
    assert once.p_bar == trial_limits(data, excluding=[22, 14]).p_bar


def test_revise_rejects_bad_indices_and_excluding_everything() -> None:
    chart = trial_limits([(1, 10), (2, 10)])
    with pytest.raises(StatsError):
        chart.revise([5])
    with pytest.raises(StatsError):
        chart.revise([0, 1])


@FAST
@given(data=subgroups(max_n=500, min_size=1))
def test_variable_n_trial_limits_match_an_independent_computation(
    data: list[tuple[int, int]],
) -> None:
    """p̄ = Σd/Σn and p̄ ± 3 sqrt(p̄(1-p̄)/n_i), clamped, computed with numpy."""
    chart = trial_limits(data)
    d = np.array([e for e, _ in data], dtype=float)
    n = np.array([m for _, m in data], dtype=float)
    p_bar = d.sum() / n.sum()
    sigma = np.sqrt(p_bar * (1 - p_bar) / n)
    assert chart.p_bar == pytest.approx(p_bar, abs=1e-15)
    assert [pt.ucl for pt in chart.points] == pytest.approx(np.minimum(1, p_bar + 3 * sigma))
    assert [pt.lcl for pt in chart.points] == pytest.approx(np.maximum(0, p_bar - 3 * sigma))


@FAST
@given(
    p_bar=st.floats(0.001, 0.999),
    n1=st.integers(1, 100_000),
    n2=st.integers(1, 100_000),
    nsigmas=st.floats(0.5, 4.0),
)
def test_limits_widen_as_n_shrinks(p_bar: float, n1: int, n2: int, nsigmas: float) -> None:
    small, large = min(n1, n2), max(n1, n2)
    base = Baseline(p_bar)
    wide = limits_for(base, small, nsigmas)
    narrow = limits_for(base, large, nsigmas)
    assert wide.lcl <= narrow.lcl <= p_bar <= narrow.ucl <= wide.ucl
    assert wide.lcl >= 0.0
    assert wide.ucl <= 1.0


@FAST
@given(p_bar=st.floats(0.001, 0.999), data=st.data())
def test_standardize_is_the_binomial_z_score(p_bar: float, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 10_000))
    errors = data.draw(st.integers(0, n))
    base = Baseline.from_standard(p_bar)
    z = standardize(errors, n, base)
    assert z == pytest.approx((errors / n - p_bar) / math.sqrt(p_bar * (1 - p_bar) / n))
    point = evaluate(errors, n, base)
    assert point.z == z
    # Away from rounding ties, a point is beyond the 3-sigma limits exactly when |z| > 3.
    if abs(abs(z) - 3.0) > 1e-9:
        assert point.above == (z > 3.0)
        assert point.below == (z < -3.0 and point.limits.lcl > 0.0)


@FAST
@given(p_bar=st.floats(0.001, 0.999), n=st.integers(1, 10_000))
def test_no_errors_never_signals_above(p_bar: float, n: int) -> None:
    assert not evaluate(0, n, Baseline(p_bar)).above


def test_degenerate_baseline_cannot_standardize() -> None:
    perfect = trial_limits([(0, 100), (0, 80)]).baseline()
    assert perfect.p_bar == 0.0
    assert limits_for(perfect, 50) == (0.0, 0.0, 0.0)
    point = evaluate(1, 50, perfect)
    assert point.above
    assert point.z is None
    with pytest.raises(UndefinedStatisticError):
        standardize(1, 50, perfect)


def test_invalid_subgroups_are_rejected() -> None:
    with pytest.raises(StatsError):
        Subgroup(3, 2)
    with pytest.raises(StatsError):
        Subgroup(0, 0)
    with pytest.raises(StatsError):
        limits_for(Baseline(0.1), 0)
    with pytest.raises(StatsError):
        trial_limits([])


def test_baseline_round_trip() -> None:
    base = (
        trial_limits([(d, 50) for d in ORANGE_JUICE])
        .revise([14, 22])
        .baseline(created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC), reason="policy v7")
    )
    assert Baseline.from_dict(json_roundtrip(base.to_dict())) == base
    standard = Baseline.from_standard(0.03, reason="contract")
    assert Baseline.from_dict(json_roundtrip(standard.to_dict())) == standard


@FAST
@given(verdicts=st.lists(st.booleans(), max_size=300), data=st.data())
def test_subgroup_accumulator_equals_batch_for_any_split(
    verdicts: list[bool], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(verdicts)))
    acc = SubgroupAccumulator()
    for v in verdicts[:cut]:
        acc.update(v)
    acc = SubgroupAccumulator.from_dict(json_roundtrip(acc.to_dict()))
    for v in verdicts[cut:]:
        acc.update(v)
    expected = Subgroup.from_verdicts(verdicts) if verdicts else None
    assert acc.subgroup() == expected
    assert acc.close() == expected
    assert acc.subgroup() is None


def test_subgroup_accumulator_add_counts() -> None:
    acc = SubgroupAccumulator()
    acc.add(3, 40)
    acc.update(True)
    assert acc.subgroup() == Subgroup(4, 41)
    with pytest.raises(StatsError):
        acc.add(5, 4)
