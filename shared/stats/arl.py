"""Average run length (ARL) of chart designs, and helpers to choose their parameters.

The ARL is the expected number of points (subgroups, or verdicts for the Bernoulli CUSUM)
until a chart signals.  ARL0, in control, measures false alarms: the larger the better.
ARL1, after a shift, measures detection delay: the smaller the better.  A design fixes ARL0
(for example 500 subgroups between false alarms) and minimizes ARL1 for the shift that
matters.

Exact or numerically exact methods, all for zero-state ARL (chart started at its initial
value) of normal data in sigma units, shifted by ``shift`` sigmas:

* EWMA with asymptotic limits ±L sqrt(λ/(2-λ)):
  ``method="integral"`` solves the ARL integral equation (Crowder 1987)::

      L(z) = 1 + (1/λ) ∫_(-c)^(c) L(y) φ((y - (1-λ) z)/λ - shift) dy,   c = L sqrt(λ/(2-λ))

  by the Nyström method on composite Gauss-Legendre nodes;
  ``method="markov"`` uses the Markov-chain approximation of Lucas & Saccucci (1990)
  (Brook & Evans 1972) with ``states`` intervals across the in-control region.
* Tabular CUSUM with reference k and interval h: ``method="integral"`` solves::

      L(u) = 1 + L(0) Φ(k - u - shift) + ∫_0^h L(y) φ(y + k - u - shift) dy

  (Vance 1986); ``method="markov"`` is Brook & Evans (1972).  The two-sided ARL combines the
  one-sided ones as ``1/ARL = 1/ARL⁺ + 1/ARL⁻`` (Lucas & Crosier 1982; exact while the two
  sides cannot be non-zero at once, an excellent approximation otherwise).
* Bernoulli CUSUM: exact, on its integer lattice — see
  :func:`shared.stats.cusum.bernoulli_cusum_arl` (re-exported here).

For subgroups of binomial counts these normal-theory numbers are approximations (the z of a
small subgroup is discrete and skewed); :func:`simulate_arl` measures any detector on
binomial data directly, with a seed, and is how the charts are compared in the detection
benchmark.

References:
    Brook, D. & Evans, D. A. (1972). An approach to the probability distribution of cusum run
    length. Biometrika 59, 539-549.
    Lucas, J. M. & Crosier, R. B. (1982). Fast initial response for CUSUM quality-control
    schemes. Technometrics 24, 199-205.
    Vance, L. C. (1986). Average run lengths of cumulative sum control charts for controlling
    normal means. Journal of Quality Technology 18, 189-193.
    Crowder, S. V. (1987). A simple method for studying run-length distributions of
    exponentially weighted moving average charts. Technometrics 29, 401-407.
    Lucas, J. M. & Saccucci, M. S. (1990). Exponentially weighted moving average control
    schemes: properties and enhancements. Technometrics 32, 1-12.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from shared.stats._checks import check_closed_probability, check_finite, check_positive
from shared.stats.cusum import bernoulli_cusum_arl, choose_h
from shared.stats.errors import StatsError

__all__ = [
    "ArlEstimate",
    "ArlMethod",
    "CusumDesign",
    "CusumSides",
    "Detector",
    "DetectorFactory",
    "EwmaDesign",
    "bernoulli_cusum_arl",
    "choose_h",
    "cusum_arl",
    "cusum_design",
    "cusum_h_for_arl0",
    "ewma_arl",
    "ewma_design",
    "ewma_limit_for_arl0",
    "simulate_arl",
]

ArlMethod = Literal["integral", "markov"]
CusumSides = Literal["two", "upper", "lower"]

Detector = Callable[[int, int], bool]
"""A detector step: given one subgroup ``(errors, n)``, return whether it signals."""

DetectorFactory = Callable[[], Detector]
"""Builds a fresh detector (a new run) and returns its step function."""

FloatArray = NDArray[np.float64]


def _phi(x: FloatArray) -> FloatArray:
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _cdf(x: FloatArray) -> FloatArray:
    from scipy import special  # (lazy: scipy costs the scorer ~1 s of CPU at start-up)

    result: FloatArray = special.ndtr(x)
    return result


def _nodes(a: float, b: float, panels: int, order: int) -> tuple[FloatArray, FloatArray]:
    """Composite Gauss-Legendre nodes and weights on [a, b]."""
    raw_x, raw_w = np.polynomial.legendre.leggauss(order)
    x = np.asarray(raw_x, dtype=np.float64)
    w = np.asarray(raw_w, dtype=np.float64)
    edges = np.linspace(a, b, panels + 1)
    half = (edges[1:] - edges[:-1]) / 2.0
    mid = (edges[1:] + edges[:-1]) / 2.0
    nodes = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    weights = (half[:, None] * w[None, :]).ravel()
    return nodes, weights


def _solve(matrix: FloatArray) -> FloatArray:
    size = matrix.shape[0]
    return np.asarray(np.linalg.solve(np.eye(size) - matrix, np.ones(size)), dtype=np.float64)


def _root(gap: Callable[[float], float], low: float, high: float) -> float:
    """Root of an increasing ``gap`` above ``low``, doubling ``high`` until it brackets it."""
    if gap(low) >= 0.0:
        raise StatsError("target ARL0 is too small for this chart")
    while gap(high) < 0.0:
        low, high = high, high * 2.0
        if high > 1e3:
            raise StatsError("target ARL0 out of reach")
    from scipy import optimize

    return float(optimize.brentq(gap, low, high, xtol=1e-10))


def _check_method(method: str) -> None:
    if method not in ("integral", "markov"):
        raise StatsError(f"method must be 'integral' or 'markov', got {method!r}")


# --------------------------------------------------------------------------------------------
# EWMA
# --------------------------------------------------------------------------------------------


def ewma_arl(
    lam: float,
    nsigmas: float,
    shift: float = 0.0,
    *,
    method: ArlMethod = "integral",
    states: int = 301,
) -> float:
    """Zero-state ARL of a two-sided EWMA with asymptotic limits ±L sqrt(λ/(2-λ)).

    Args:
        lam: smoothing constant λ in (0, 1].
        nsigmas: L, the limit width in asymptotic standard deviations of the EWMA.
        shift: mean shift in sigmas of the individual points (0 for ARL0).
        method: ``"integral"`` (Nyström, default; accurate to many digits for λ >= 0.001,
            the node count is capped below that) or ``"markov"``.
        states: number of Markov-chain states (``method="markov"`` only).
    """
    check_positive("lam", lam)
    if lam > 1.0:
        raise StatsError(f"lam must be in (0, 1], got {lam}")
    check_positive("nsigmas", nsigmas)
    check_finite("shift", shift)
    _check_method(method)
    c = nsigmas * math.sqrt(lam / (2.0 - lam))
    keep = 1.0 - lam
    if method == "markov":
        if states < 3:
            raise StatsError("states must be >= 3")
        width = 2.0 * c / states
        centers = -c + (np.arange(states) + 0.5) * width
        start = (centers[None, :] - keep * centers[:, None]) / lam - shift
        half = width / (2.0 * lam)
        transitions = _cdf(start + half) - _cdf(start - half)
        arl = _solve(transitions)
        return float(np.interp(0.0, centers, arl))
    panels = min(150, max(10, math.ceil(2.0 * c / lam)))  # 20 nodes per kernel width λ
    nodes, weights = _nodes(-c, c, panels, 10)
    kernel = _phi((nodes[None, :] - keep * nodes[:, None]) / lam - shift) * (weights / lam)[None, :]
    values = _solve(kernel)
    from_zero = _phi(nodes / lam - shift) * weights / lam
    return float(1.0 + from_zero @ values)


def _for_arl0(arl0_of: Callable[[float], float], target_arl0: float, lower: float) -> float:
    """The limit width whose in-control ARL is ``target_arl0`` (the ARL rises with it)."""
    check_positive("target_arl0", target_arl0)
    if target_arl0 <= 1.0:
        raise StatsError("target_arl0 must be > 1")
    log_target = math.log(target_arl0)
    return _root(lambda width: math.log(arl0_of(width)) - log_target, lower, 1.0)


def ewma_limit_for_arl0(lam: float, target_arl0: float, *, method: ArlMethod = "integral") -> float:
    """The L (asymptotic limits) that gives the EWMA an in-control ARL of ``target_arl0``."""
    return _for_arl0(lambda nsigmas: ewma_arl(lam, nsigmas, 0.0, method=method), target_arl0, 0.05)


@dataclass(frozen=True, slots=True)
class EwmaDesign:
    """An EWMA design for a target ARL0 and a shift to detect."""

    lam: float
    nsigmas: float
    arl0: float
    arl1: float
    shift: float


def ewma_design(
    target_arl0: float,
    shift: float,
    lambdas: Sequence[float] = (0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75),
) -> EwmaDesign:
    """Choose λ (from ``lambdas``) and L: ARL0 = target and the smallest ARL1 at ``shift``.

    Small shifts call for small λ; large shifts for large λ (λ = 1 is the Shewhart chart).
    """
    check_positive("shift", shift)
    best: EwmaDesign | None = None
    for lam in lambdas:
        nsigmas = ewma_limit_for_arl0(lam, target_arl0)
        arl1 = ewma_arl(lam, nsigmas, shift)
        if best is None or arl1 < best.arl1:
            best = EwmaDesign(lam, nsigmas, ewma_arl(lam, nsigmas), arl1, shift)
    if best is None:
        raise StatsError("lambdas must not be empty")
    return best


# --------------------------------------------------------------------------------------------
# Tabular CUSUM
# --------------------------------------------------------------------------------------------


def _cusum_upper_arl(k: float, h: float, shift: float, method: str, states: int) -> float:
    if method == "markov":
        width = h / (states - 0.5)
        centers = np.arange(states) * width
        bounds = (np.arange(states) + 0.5) * width  # upper edge of each state
        base = k - shift - centers[:, None]
        upper = _cdf(bounds[None, :] + base)
        lower = np.concatenate([np.zeros((states, 1)), _cdf(bounds[None, :-1] + base)], axis=1)
        return float(_solve(upper - lower)[0])
    panels = max(4, math.ceil(2.0 * h))
    nodes, weights = _nodes(0.0, h, panels, 12)
    points = np.concatenate([[0.0], nodes])
    matrix = np.zeros((points.size, points.size))
    matrix[:, 0] = _cdf(k - points - shift)
    matrix[:, 1:] = _phi(nodes[None, :] + k - points[:, None] - shift) * weights[None, :]
    return float(_solve(matrix)[0])


def cusum_arl(
    k: float,
    h: float,
    shift: float = 0.0,
    *,
    sided: CusumSides = "two",
    method: ArlMethod = "integral",
    states: int = 400,
) -> float:
    """Zero-state ARL of a tabular CUSUM on N(shift, 1) points.

    Args:
        k: reference value (sigmas).
        h: decision interval (sigmas).
        shift: mean shift in sigmas (0 for ARL0).
        sided: ``"two"`` (both one-sided CUSUMs, signal on either), ``"upper"``, ``"lower"``.
        method: ``"integral"`` (Nyström; default) or ``"markov"`` (Brook & Evans).
        states: Markov-chain states (``method="markov"`` only).
    """
    check_finite("k", k)
    check_positive("h", h)
    check_finite("shift", shift)
    _check_method(method)
    if states < 2:
        raise StatsError("states must be >= 2")
    if sided == "upper":
        return _cusum_upper_arl(k, h, shift, method, states)
    if sided == "lower":
        return _cusum_upper_arl(k, h, -shift, method, states)
    if sided != "two":
        raise StatsError(f"sided must be 'two', 'upper' or 'lower', got {sided!r}")
    up = _cusum_upper_arl(k, h, shift, method, states)
    down = _cusum_upper_arl(k, h, -shift, method, states)
    return 1.0 / (1.0 / up + 1.0 / down)


def cusum_h_for_arl0(k: float, target_arl0: float, *, sided: CusumSides = "two") -> float:
    """The decision interval h that gives the CUSUM an in-control ARL of ``target_arl0``."""
    return _for_arl0(lambda h: cusum_arl(k, h, 0.0, sided=sided), target_arl0, 0.01)


@dataclass(frozen=True, slots=True)
class CusumDesign:
    """A tabular CUSUM design for a target ARL0 and a shift to detect."""

    k: float
    h: float
    arl0: float
    arl1: float
    shift: float


def cusum_design(target_arl0: float, shift: float, *, sided: CusumSides = "two") -> CusumDesign:
    """k = shift/2 (optimal for that shift) and the h that gives ARL0 = target."""
    check_positive("shift", shift)
    k = shift / 2.0
    h = cusum_h_for_arl0(k, target_arl0, sided=sided)
    return CusumDesign(
        k, h, cusum_arl(k, h, sided=sided), cusum_arl(k, h, shift, sided=sided), shift
    )


# --------------------------------------------------------------------------------------------
# Monte Carlo
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArlEstimate:
    """A Monte-Carlo ARL estimate.

    Attributes:
        mean: mean run length (runs that never signalled count as ``max_steps``, so with
            censored runs this is a lower bound).
        std_error: standard error of the mean.
        runs: number of runs.
        censored: runs stopped at ``max_steps`` without a signal.
    """

    mean: float
    std_error: float
    runs: int
    censored: int


def simulate_arl(
    detector_factory: DetectorFactory,
    p: float,
    n: int | Sequence[int],
    runs: int,
    seed: int,
    *,
    max_steps: int = 1_000_000,
) -> ArlEstimate:
    """Seeded Monte-Carlo zero-state ARL of any detector on binomial subgroups.

    Each run builds a fresh detector with ``detector_factory()`` and feeds it subgroups of
    ``Binomial(n_t, p)`` errors until it signals.  Any chart in this package fits (for
    example ``lambda: EwmaState(p0).step``, or ``lambda: BernoulliCusum(design).step`` with
    ``n=1``), and so does any drift detector wrapped as ``step(errors, n) -> bool``.

    Args:
        detector_factory: returns a new detector step function for each run.
        p: true error proportion during the runs.
        n: subgroup size, or a sequence of sizes used cyclically (variable n).
        runs: number of independent runs.
        seed: seed of the numpy generator (same seed, same result).
        max_steps: a run that has not signalled after this many subgroups is censored.
    """
    check_closed_probability("p", p)
    if runs < 1 or max_steps < 1:
        raise StatsError("runs and max_steps must be >= 1")
    sizes = np.array([n] if isinstance(n, int) else list(n), dtype=np.int64)
    if sizes.size == 0 or (sizes < 1).any():
        raise StatsError("subgroup sizes must be >= 1")
    rng = np.random.default_rng(seed)
    lengths = np.empty(runs, dtype=np.float64)
    censored = 0
    for run in range(runs):
        step = detector_factory()
        t = 0
        signalled = False
        chunk = 256
        while t < max_steps and not signalled:
            count = min(chunk, max_steps - t)
            size_chunk = sizes[(t + np.arange(count)) % sizes.size]
            errors = rng.binomial(size_chunk, p)
            for e, m in zip(errors.tolist(), size_chunk.tolist(), strict=True):
                t += 1
                if step(e, m):
                    signalled = True
                    break
            chunk = min(chunk * 2, 65536)
        if not signalled:
            censored += 1
        lengths[run] = t
    mean = float(lengths.mean())
    std_error = float(lengths.std(ddof=1) / math.sqrt(runs)) if runs > 1 else math.nan
    return ArlEstimate(mean, std_error, runs, censored)
