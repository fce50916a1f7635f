"""EWMA of proportions with the exact, time-varying variance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.stats import EwmaState, StatsError, ewma

from .helpers import FAST, json_roundtrip, subgroups


@FAST
@given(data=subgroups(max_n=300, min_size=1), p0=st.floats(0.005, 0.5), lam=st.floats(0.01, 1.0))
def test_exact_variance_matches_the_closed_form_sum(
    data: list[tuple[int, int]], p0: float, lam: float
) -> None:
    """Var(Z_t) = Σ_j (λ(1-λ)^(t-j))² p0(1-p0)/n_j and Z_t = Σ_j λ(1-λ)^(t-j) x_j + (1-λ)^t p0."""
    points = ewma(data, p0, lam)
    d = np.array([e for e, _ in data], dtype=float)
    n = np.array([m for _, m in data], dtype=float)
    for t in range(1, len(data) + 1):
        weights = lam * (1 - lam) ** (t - 1 - np.arange(t))
        variance = float(np.sum(weights**2 * p0 * (1 - p0) / n[:t]))
        statistic = float(np.sum(weights * d[:t] / n[:t]) + (1 - lam) ** t * p0)
        assert points[t - 1].variance == pytest.approx(variance, rel=1e-9, abs=1e-300)
        assert points[t - 1].statistic == pytest.approx(statistic, rel=1e-9, abs=1e-12)


def test_constant_n_gives_the_textbook_time_varying_limits() -> None:
    """Montgomery eq. (9.24)-(9.25): σ² λ/(2-λ) (1 - (1-λ)^(2t)), here σ² = p0(1-p0)/n."""
    p0, n, lam, width = 0.04, 250, 0.2, 2.962
    points = ewma([(10, n)] * 60, p0, lam, width)
    sigma2 = p0 * (1 - p0) / n
    for t, pt in enumerate(points, start=1):
        var = sigma2 * lam / (2 - lam) * (1 - (1 - lam) ** (2 * t))
        assert pt.variance == pytest.approx(var, rel=1e-12)
        assert pt.ucl == pytest.approx(p0 + width * var**0.5, rel=1e-12)
    assert points[-1].variance == pytest.approx(sigma2 * lam / (2 - lam), rel=1e-9)


@FAST
@given(
    data=subgroups(max_n=300), split=st.data(), p0=st.floats(0.001, 0.5), lam=st.floats(0.01, 1.0)
)
def test_streaming_equals_batch_for_any_split(
    data: list[tuple[int, int]], split: st.DataObject, p0: float, lam: float
) -> None:
    cut = split.draw(st.integers(0, len(data)))
    state = EwmaState(p0, lam, 2.7)
    got = [state.update(e, n) for e, n in data[:cut]]
    state = EwmaState.from_dict(json_roundtrip(state.to_dict()))
    got += [state.update(e, n) for e, n in data[cut:]]
    assert got == ewma(data, p0, lam, 2.7)


@FAST
@given(
    sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=200),
    p0=st.floats(0.001, 0.5),
    lam=st.floats(0.01, 1.0),
)
def test_a_stream_without_errors_never_signals_upward(
    sizes: list[int], p0: float, lam: float
) -> None:
    for point in ewma([(0, n) for n in sizes], p0, lam):
        assert not point.upper_signal
        assert 0.0 <= point.lcl <= p0 <= point.ucl <= 1.0


def test_a_sustained_shift_is_detected() -> None:
    rng = np.random.default_rng(3)
    state = EwmaState(0.02, 0.1, 2.814)
    in_control = [state.update(int(rng.binomial(200, 0.02)), 200) for _ in range(50)]
    assert not any(pt.signal for pt in in_control)
    shifted = [state.update(int(rng.binomial(200, 0.035)), 200) for _ in range(60)]
    assert any(pt.upper_signal for pt in shifted)


def test_step_and_reset() -> None:
    state = EwmaState(0.1, 0.5, 1.0)
    assert state.step(10, 10) is True
    state.reset()
    assert (state.statistic, state.variance, state.t) == (0.1, 0.0, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"p0": 0.0},
        {"p0": 1.0},
        {"p0": 0.1, "lam": 0.0},
        {"p0": 0.1, "lam": 1.5},
        {"p0": 0.1, "nsigmas": -1.0},
    ],
)
def test_invalid_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(StatsError):
        EwmaState(kwargs["p0"], kwargs.get("lam", 0.1), kwargs.get("nsigmas", 2.814))
