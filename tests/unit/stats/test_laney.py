"""Laney p' chart: batch Phase I, frozen Phase II, streaming sigma_z."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.stats import (
    LaneyBaseline,
    MovingRangeState,
    StatsError,
    UndefinedStatisticError,
    laney_chart,
    laney_limits_for,
    laney_standardize,
    sigma_z,
    trial_limits,
)

from .helpers import FAST, json_roundtrip


def _reference(d: np.ndarray, n: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Laney (2002) written out with numpy: p̄, σ_z and the limits (independent code path)."""
    p_bar = d.sum() / n.sum()
    sigma_p = np.sqrt(p_bar * (1 - p_bar) / n)
    z = (d / n - p_bar) / sigma_p
    s_z = np.abs(np.diff(z)).mean() / 1.128
    return (
        p_bar,
        s_z,
        np.maximum(0, p_bar - 3 * sigma_p * s_z),
        np.minimum(1, p_bar + 3 * sigma_p * s_z),
    )


def _overdispersed(seed: int, k: int = 40) -> list[tuple[int, int]]:
    """Large subgroups whose true rate wanders (beta-binomial): the case Laney addresses."""
    rng = np.random.default_rng(seed)
    n = rng.integers(20_000, 60_000, size=k)
    p = rng.beta(40, 760, size=k)  # mean 0.05, sd ~0.0077 between subgroups
    d = rng.binomial(n, p)
    return [(int(a), int(b)) for a, b in zip(d, n, strict=True)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_an_independent_computation(seed: int) -> None:
    data = _overdispersed(seed)
    d = np.array([a for a, _ in data], dtype=float)
    n = np.array([b for _, b in data], dtype=float)
    p_bar, s_z, lcl, ucl = _reference(d, n)
    chart = laney_chart(data)
    assert chart.p_bar == pytest.approx(p_bar, rel=1e-14)
    assert chart.sigma_z == pytest.approx(s_z, rel=1e-12)
    assert [pt.lcl for pt in chart.points] == pytest.approx(lcl, rel=1e-12)
    assert [pt.ucl for pt in chart.points] == pytest.approx(ucl, rel=1e-12)


def test_overdispersion_makes_the_p_chart_alarm_and_p_prime_does_not() -> None:
    """The situation in Laney (2002): with huge subgroups the p-chart flags most points."""
    data = _overdispersed(7)
    p_chart = trial_limits(data)
    p_prime = laney_chart(data)
    assert p_prime.sigma_z > 5.0
    assert len(p_chart.out_of_control) > len(data) // 2
    assert len(p_prime.out_of_control) <= 2


def test_binomial_data_give_sigma_z_near_one_and_the_p_chart() -> None:
    """Laney: without overdispersion σ_z ≈ 1 and the p' chart is the p-chart."""
    rng = np.random.default_rng(11)
    n = rng.integers(50, 400, size=2000)
    d = rng.binomial(n, 0.08)
    data = [(int(a), int(b)) for a, b in zip(d, n, strict=True)]
    chart = laney_chart(data)
    assert chart.sigma_z == pytest.approx(1.0, abs=0.05)
    plain = trial_limits(data)
    for pp, p in zip(chart.points[:20], plain.points[:20], strict=True):
        assert pp.ucl - chart.p_bar == pytest.approx((p.ucl - plain.p_bar) * chart.sigma_z)


def test_revision_drops_points_before_taking_moving_ranges() -> None:
    data = _overdispersed(5, k=12)
    data[6] = (data[6][1] // 2, data[6][1])  # a gross special cause
    chart = laney_chart(data)
    assert 6 in chart.out_of_control
    revised = chart.revise([6])
    kept = [sg for i, sg in enumerate(data) if i != 6]
    p_bar, s_z, _, _ = _reference(
        np.array([a for a, _ in kept], dtype=float), np.array([b for _, b in kept], dtype=float)
    )
    assert revised.p_bar == pytest.approx(p_bar, rel=1e-14)
    assert revised.sigma_z == pytest.approx(s_z, rel=1e-12)
    baseline = revised.baseline(reason="initial")
    assert baseline.excluded == (6,)
    assert baseline.n_subgroups == 11


def test_phase_two_uses_the_frozen_sigma_z() -> None:
    base = LaneyBaseline(p_bar=0.05, sigma_z=2.5)
    lcl, center, ucl = laney_limits_for(base, 10_000)
    sigma_p = (0.05 * 0.95 / 10_000) ** 0.5
    assert center == 0.05
    assert ucl == pytest.approx(0.05 + 3 * sigma_p * 2.5)
    assert lcl == pytest.approx(0.05 - 3 * sigma_p * 2.5)
    z = laney_standardize(560, 10_000, base)
    assert z == pytest.approx((0.056 - 0.05) / (sigma_p * 2.5))
    assert LaneyBaseline.from_dict(json_roundtrip(base.to_dict())) == base


@FAST
@given(
    p_bar=st.floats(0.001, 0.999),
    s_z=st.floats(0.1, 10),
    n1=st.integers(1, 10**6),
    n2=st.integers(1, 10**6),
)
def test_p_prime_limits_widen_as_n_shrinks(p_bar: float, s_z: float, n1: int, n2: int) -> None:
    base = LaneyBaseline(p_bar, s_z)
    wide = laney_limits_for(base, min(n1, n2))
    narrow = laney_limits_for(base, max(n1, n2))
    assert wide.lcl <= narrow.lcl <= p_bar <= narrow.ucl <= wide.ucl


@FAST
@given(
    zs=st.lists(st.floats(-50, 50, allow_nan=False), min_size=2, max_size=80),
    data=st.data(),
)
def test_streaming_sigma_z_equals_batch_for_any_split(zs: list[float], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(zs)))
    state = MovingRangeState()
    for z in zs[:cut]:
        state.update(z)
    state = MovingRangeState.from_dict(json_roundtrip(state.to_dict()))
    last = None
    for z in zs[cut:]:
        last = state.update(z)
    assert state.sigma_z == sigma_z(zs)
    if cut < len(zs) and len(zs) >= 2:
        assert last == sigma_z(zs)


def test_errors() -> None:
    with pytest.raises(StatsError):
        sigma_z([1.0])
    with pytest.raises(UndefinedStatisticError):
        laney_chart([(0, 100), (0, 100)])
    with pytest.raises(UndefinedStatisticError):
        laney_standardize(1, 10, LaneyBaseline(0.1, 0.0))
