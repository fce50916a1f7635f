"""CUSUM charts: tabular CUSUM on z-scores, Bernoulli CUSUM per verdict, risk-adjusted CUSUM.

Tabular (two-sided) CUSUM on standardized subgroup points ``z_t`` (e.g. from
:func:`shared.stats.pchart.standardize`), with reference value k and decision interval h in
sigma units (Page 1954; Montgomery §9.1)::

    C⁺_t = max(0, C⁺_(t-1) + z_t - k)      signal when C⁺_t > h  (rate went up)
    C⁻_t = max(0, C⁻_(t-1) - z_t - k)      signal when C⁻_t > h  (rate went down)

k = δ/2 is tuned to a shift of δ sigmas; k = 0.5 with h = 4 or 5 gives in-control ARLs of
about 168 or 465 subgroups (see :mod:`shared.stats.arl`).

Bernoulli CUSUM (Reynolds & Stoumbos 1999), one verdict at a time, X_t = 1 if the decision
was found incorrect.  It is the log-likelihood-ratio CUSUM for p0 → p1 (p1 > p0)::

    W_t = X_t ln(p1/p0) + (1 - X_t) ln((1-p1)/(1-p0)) = c (X_t - γ)
    c = ln(p1 (1-p0) / (p0 (1-p1))),   γ = ln((1-p0)/(1-p1)) / c,   p0 < γ < p1
    B_t = max(0, B_(t-1) + X_t - γ)        signal when B_t >= h

As in Reynolds & Stoumbos, the chart runs on an integer lattice: γ is represented as the
fraction g/m (g = ``resolution``, m ≈ g/γ; by default the smallest g that gets within 1%
of γ), the statistic is S = m B, an incorrect verdict adds ``m - g`` and a correct one
subtracts ``g``, and the decision interval is the integer ``limit`` (h = limit/m).  The arithmetic is exact (integers), the state is two ints,
and the in-control ARL is computed exactly by a Markov chain on the lattice (no simulation,
no approximation beyond the rounding of γ).  The rounding makes the chart exactly the
optimal CUSUM for a slightly different alternative, reported as ``p1_effective``; raise
``resolution`` to bring it closer to p1.  :func:`choose_h` picks the smallest decision
interval whose in-control ARL reaches a target.

Risk-adjusted Bernoulli CUSUM (Steiner, Cook, Farewell & Treasure 2000): each verdict comes
with its expected error probability p_t (from a risk model: policy severity, content type,
moderator tenure...); the alternative is an odds-ratio shift R::

    W_t = ln( R / (1 - p_t + R p_t) )   if the decision was incorrect
    W_t = ln( 1 / (1 - p_t + R p_t) )   if it was correct
    X_t = max(0, X_(t-1) + W_t)          signal when X_t >= h

With a constant p_t = p0 it reduces to the Bernoulli CUSUM (in LLR units) for
p1 = R p0 / (1 - p0 + R p0).  Its ARL depends on the mix of p_t; use
:func:`shared.stats.arl.simulate_arl` with a realistic mix to choose h.

References:
    Page, E. S. (1954). Continuous inspection schemes. Biometrika 41, 100-115.
    Reynolds, M. R. Jr. & Stoumbos, Z. G. (1999). A CUSUM chart for monitoring a
    proportion when inspecting continuously. Journal of Quality Technology 31, 87-108.
    Steiner, S. H., Cook, R. J., Farewell, V. T. & Treasure, T. (2000). Monitoring surgical
    performance using risk-adjusted cumulative sum charts. Biostatistics 1, 441-452.
    Montgomery, D. C. Introduction to Statistical Quality Control, 6th ed., §9.1.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from shared.stats import _serde
from shared.stats._checks import (
    check_count,
    check_finite,
    check_open_probability,
    check_positive,
)
from shared.stats.errors import StateFormatError, StatsError

__all__ = [
    "BernoulliCusum",
    "BernoulliCusumDesign",
    "BernoulliCusumPoint",
    "CusumPoint",
    "CusumState",
    "RiskAdjustedCusum",
    "RiskAdjustedPoint",
    "bernoulli_cusum",
    "bernoulli_cusum_arl",
    "choose_h",
    "cusum",
    "lattice_arl",
    "llr_gamma",
    "risk_adjusted_cusum",
]

DEFAULT_K = 0.5
DEFAULT_H = 5.0


def _restore_error(exc: StatsError) -> StateFormatError:
    return exc if isinstance(exc, StateFormatError) else StateFormatError(str(exc))


# --------------------------------------------------------------------------------------------
# Tabular CUSUM on standardized points
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CusumPoint:
    """The two one-sided CUSUMs after one standardized point."""

    t: int
    upper: float
    """C⁺_t (accumulates increases of the error rate)."""
    lower: float
    """C⁻_t (accumulates decreases), as a non-negative number."""
    upper_signal: bool
    lower_signal: bool

    @property
    def signal(self) -> bool:
        """Either side beyond h."""
        return self.upper_signal or self.lower_signal


class CusumState:
    """O(1) two-sided tabular CUSUM on z-scores (see the module docstring).

    Args:
        k: reference value in sigma units (half the shift to detect).
        h: decision interval in sigma units.
    """

    __slots__ = ("h", "k", "lower", "t", "upper")

    KIND = "cusum"

    def __init__(
        self,
        k: float = DEFAULT_K,
        h: float = DEFAULT_H,
        *,
        upper: float = 0.0,
        lower: float = 0.0,
        t: int = 0,
    ) -> None:
        check_finite("k", k)
        if k < 0.0:
            raise StatsError(f"k must be >= 0, got {k}")
        check_positive("h", h)
        if upper < 0.0 or lower < 0.0 or t < 0:
            raise StatsError("upper, lower and t must be >= 0")
        self.k = k
        self.h = h
        self.upper = upper
        self.lower = lower
        self.t = t

    def update(self, z: float) -> CusumPoint:
        """Add one standardized point."""
        check_finite("z", z)
        self.upper = max(0.0, self.upper + z - self.k)
        self.lower = max(0.0, self.lower - z - self.k)
        self.t += 1
        return CusumPoint(self.t, self.upper, self.lower, self.upper > self.h, self.lower > self.h)

    def reset(self) -> None:
        """Restart both sides at 0 (e.g. after a signal has been handled)."""
        self.upper = 0.0
        self.lower = 0.0
        self.t = 0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            **_serde.header(self.KIND),
            "k": self.k,
            "h": self.h,
            "hi": self.upper,
            "lo": self.lower,
            "t": self.t,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CusumState:
        """Inverse of :meth:`to_dict`."""
        _serde.check_header(data, cls.KIND)
        try:
            return cls(
                _serde.get_float(data, "k"),
                _serde.get_float(data, "h"),
                upper=_serde.get_float(data, "hi"),
                lower=_serde.get_float(data, "lo"),
                t=_serde.get_int(data, "t"),
            )
        except StatsError as exc:
            raise _restore_error(exc) from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CusumState):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CusumState(k={self.k}, h={self.h}, upper={self.upper}, lower={self.lower}, t={self.t})"


def cusum(points: Iterable[float], k: float = DEFAULT_K, h: float = DEFAULT_H) -> list[CusumPoint]:
    """Batch tabular CUSUM over z-scores (identical to feeding :class:`CusumState`)."""
    state = CusumState(k, h)
    return [state.update(z) for z in points]


# --------------------------------------------------------------------------------------------
# Bernoulli CUSUM
# --------------------------------------------------------------------------------------------


def llr_gamma(p0: float, p1: float) -> tuple[float, float]:
    """``(c, γ)`` of the Bernoulli LLR: ``W = c (X - γ)`` for the shift p0 → p1 (p1 > p0)."""
    check_open_probability("p0", p0)
    check_open_probability("p1", p1)
    if not p1 > p0:
        raise StatsError(f"the Bernoulli CUSUM detects increases: need p1 > p0, got {p0}, {p1}")
    c = math.log(p1 * (1.0 - p0) / (p0 * (1.0 - p1)))
    gamma = math.log((1.0 - p0) / (1.0 - p1)) / c
    return c, gamma


def _p1_for_gamma(p0: float, gamma: float) -> float:
    """The p1 > p0 whose LLR reference value is ``gamma`` (p0 < gamma < 1)."""

    def excess(p1: float) -> float:
        return llr_gamma(p0, p1)[1] - gamma

    from scipy import optimize  # (lazy: scipy costs the scorer ~1 s of CPU at start-up)

    lo = p0 + (1.0 - p0) * 1e-12
    hi = 1.0 - (1.0 - p0) * 1e-12
    if not excess(lo) < 0.0 < excess(hi):
        raise StatsError(
            f"no p1 between p0 = {p0:g} and 1 has the reference value {gamma:g} (rates this "
            "near 0 or 1 are beyond the Bernoulli CUSUM's arithmetic)"
        )
    return float(optimize.brentq(excess, lo, hi, xtol=1e-15, rtol=1e-14))


@dataclass(frozen=True, slots=True)
class BernoulliCusumDesign:
    """Parameters of a Bernoulli CUSUM on its integer lattice.

    Attributes:
        p0: in-control error proportion.
        p1: the error proportion the chart is tuned to detect, as requested.
        m: lattice units per unit of the Reynolds-Stoumbos statistic B.
        g: lattice units subtracted by a correct verdict (γ ≈ g/m); the ``resolution``.
        limit: decision interval in lattice units (signal when S >= limit).
    """

    p0: float
    p1: float
    m: int
    g: int
    limit: int

    def __post_init__(self) -> None:
        llr_gamma(self.p0, self.p1)
        if not (1 <= self.g < self.m):
            raise StatsError(f"need 1 <= g < m, got g={self.g}, m={self.m}")
        if self.limit < 1:
            raise StatsError(f"limit must be >= 1, got {self.limit}")

    @classmethod
    def create(
        cls, p0: float, p1: float, h: float, resolution: int | None = None
    ) -> BernoulliCusumDesign:
        """Design for p0 → p1 with decision interval ``h`` in B units (rounded to the lattice).

        Args:
            p0: in-control error proportion.
            p1: error proportion to detect (> p0).
            h: decision interval in units of B (Reynolds & Stoumbos); see :func:`choose_h`.
            resolution: g, the lattice units of one correct verdict; ``None`` picks the
                smallest g that represents γ within 1%; 1 reproduces Reynolds & Stoumbos'
                γ = 1/m; larger values represent γ more finely.
        """
        m, g = cls.lattice(p0, p1, resolution)
        check_positive("h", h)
        return cls(p0, p1, m, g, max(1, round(h * m)))

    @staticmethod
    def lattice(p0: float, p1: float, resolution: int | None = None) -> tuple[int, int]:
        """``(m, g)``: the lattice on which γ is represented as g/m.

        With ``resolution=None`` (default) g is the smallest integer (up to 100) for which
        g/m is within 1% of γ; ``resolution=1`` is Reynolds & Stoumbos' γ = 1/m.
        """
        _, gamma = llr_gamma(p0, p1)
        if not (math.isfinite(gamma) and p0 < gamma < 1.0):
            raise StatsError(
                f"p0 = {p0:g}, p1 = {p1:g}: their reference value ({gamma:g}) cannot be "
                "represented (rates this near 0 or 1 are beyond the Bernoulli CUSUM's "
                "arithmetic)"
            )
        if resolution is None:
            for g in range(1, 101):
                m = BernoulliCusumDesign._denominator(p0, gamma, g)
                if m is not None and abs(g / m - gamma) <= 0.01 * gamma:
                    return m, g
            resolution = 100
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise StatsError(f"resolution must be an int >= 1, got {resolution!r}")
        m = BernoulliCusumDesign._denominator(p0, gamma, resolution)
        if m is None:
            raise StatsError(
                f"p1 = {p1:g} is too close to p0 = {p0:g}: no lattice of resolution "
                f"{resolution} represents its reference value; choose a larger p1"
            )
        return m, resolution

    @staticmethod
    def _denominator(p0: float, gamma: float, g: int) -> int | None:
        """m with g/m nearest to γ while g/m > p0 (else the chart would drift upward)."""
        m = max(g + 1, round(g / gamma))
        if g / m <= p0:
            m = max(g + 1, math.floor(g / gamma))
        return m if g / m > p0 else None

    @property
    def up(self) -> int:
        """Lattice units added by an incorrect verdict (m - g)."""
        return self.m - self.g

    @property
    def gamma(self) -> float:
        """The reference value the chart uses, g/m."""
        return self.g / self.m

    @property
    def p1_effective(self) -> float:
        """The alternative for which this lattice chart is exactly the LLR CUSUM."""
        return _p1_for_gamma(self.p0, self.gamma)

    @property
    def h(self) -> float:
        """Decision interval in B units (limit/m)."""
        return self.limit / self.m

    @property
    def h_llr(self) -> float:
        """Decision interval in log-likelihood-ratio units for p0 → p1_effective."""
        c, _ = llr_gamma(self.p0, self.p1_effective)
        return c * self.h

    def arl(self, p: float) -> float:
        """Exact zero-state ARL (in verdicts) when the true error proportion is ``p``."""
        return bernoulli_cusum_arl(self, p)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            **_serde.header("bcusum_design"),
            "p0": self.p0,
            "p1": self.p1,
            "m": self.m,
            "g": self.g,
            "H": self.limit,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> BernoulliCusumDesign:
        """Inverse of :meth:`to_dict`."""
        _serde.check_header(data, "bcusum_design")
        try:
            return cls(
                _serde.get_float(data, "p0"),
                _serde.get_float(data, "p1"),
                _serde.get_int(data, "m"),
                _serde.get_int(data, "g"),
                _serde.get_int(data, "H"),
            )
        except StatsError as exc:
            raise _restore_error(exc) from exc


MAX_LATTICE_CELLS = 16_000_000
"""Bound on the exact ARL's chain (states x bands): it keeps the time of one ARL
computation bounded whatever h or the target ARL0 asks for, and its memory (the C pass:
one ARL per state, 8 bytes, 128 MB at most; the banded LU without it: the banded matrix,
as much again, and the solver works on a copy).  The band is about m wide, so the bound on h
depends on the lattice: h <= 16e6 / m².  For p0 = 2%, p1 = 4% (m ≈ 35) that is h <= ~13 000;
for p0 = 0.1%, p1 = 0.2% (m ≈ 720) h <= ~30, still far beyond the h of an ARL0 of 10^6."""


def lattice_cells(up: int, down: int, limit: int) -> int:
    """Cells of the banded matrix of the chain :func:`_lattice_arl` solves."""
    return (min(up, limit) + min(down, limit) + 1) * limit


def max_lattice_limit(up: int, down: int) -> int:
    """The largest decision interval (lattice units) whose exact ARL stays within the bound."""
    return max(1, MAX_LATTICE_CELLS // (up + down + 1))


def _check_lattice(up: int, down: int, limit: int) -> None:
    if lattice_cells(up, down, limit) > MAX_LATTICE_CELLS:
        m = up + down
        raise StatsError(
            f"decision interval h = {limit / m:g} is too large for the exact ARL on this lattice "
            f"(m = {m}): h must be at most {max_lattice_limit(up, down) / m:g}"
        )


def _lattice_arl(up: int, down: int, limit: int, p: float) -> float:
    """Zero-state ARL of S_t = max(0, S_(t-1) + (up if error else -down)), signal at S >= limit.

    Solves (I - Q) L = 1 over the transient states 0..limit-1 (Brook & Evans 1972 Markov
    chain; exact because the states are exact integers): where the C module is built
    (``_lattice.c``), read from the chain's ARL curve at this rate, which one pass computes
    for every limit at once and :data:`_CURVES` keeps for the next call (a design asks one
    lattice and rate at many limits: about 6 times less CPU a design); else with a banded
    LU per call (LAPACK).

    Raises:
        StatsError: the banded matrix would exceed :data:`MAX_LATTICE_CELLS`.
    """
    if p <= 0.0:
        return math.inf
    _check_lattice(up, down, limit)
    if _native is not None and p <= 1.0 and _native_takes(up, down):
        value = float(_CURVES.upto(up, down, p, limit)[limit - 1])
        return value if 0.0 < value <= ARL_RESOLVED_MAX else math.inf
    return _banded_lu_arl(up, down, limit, p)  # (and for p nan or > 1: inf, as it always was)


NATIVE_BAND_MAX = 1 << 20
"""The widest band the C elimination takes ((down + 1) x (down + up + 1) values of scratch,
8 MB; the designs' lattices, m <= 400, need at most 160,000); a wider one is solved with
the banded LU. The climb (up = 1) keeps min(down, n) values, for down up to 2^31."""


def _native_takes(up: int, down: int) -> bool:
    if up == 1:
        return down <= 1 << 31
    return (down + 1) * (down + up + 1) <= NATIVE_BAND_MAX


_native: ModuleType | None
try:  # (built by the install where a C compiler is found: setup.py)
    from shared.stats import _lattice as _native
except ImportError:  # pragma: no cover - the build without a compiler
    _native = None


class _CurveCache:
    """ARL curves (the ARL at limits 1..n) by (up, down, p), least recently used out once
    they hold more than ``max_values`` ARLs. A curve is computed to twice the limit asked
    (a search doubles its limit), and one asked past its end again, from the start, to
    twice that: the pass keeps no state, so a curve costs its n values only."""

    def __init__(self, max_values: int) -> None:
        self.max_values = max_values
        self._curves: OrderedDict[tuple[int, int, float], np.ndarray] = OrderedDict()
        self.held = 0

    def upto(self, up: int, down: int, p: float, n: int) -> np.ndarray:
        """The curve of (up, down, p) to limit n at least (read-only: it is the cache's)."""
        key = (up, down, p)
        curve = self._curves.get(key)
        if curve is not None and len(curve) >= n:
            self._curves.move_to_end(key)
            return curve
        n = max(n, min(2 * n, max_lattice_limit(up, down)))
        assert _native is not None
        curve = np.empty(n)
        _native.curve(up, down, p, curve)  # (inf or nan where it overflows: read as inf)
        curve.flags.writeable = False
        old = self._curves.pop(key, None)  # (the shorter one, if any)
        if old is not None:
            self.held -= len(old)
        self._curves[key] = curve
        self.held += n
        while self.held > self.max_values and len(self._curves) > 1:
            self.held -= len(self._curves.popitem(last=False)[1])
        return curve

    def clear(self) -> None:
        self._curves.clear()
        self.held = 0


CURVES_CACHED = 2_000_000
"""ARLs :func:`_lattice_arl` keeps (8 bytes each: 16 MB at most, beside one curve larger
than that, up to :data:`MAX_LATTICE_CELLS` / (up + down + 1) values). A design's search
reads tens of curves of some hundreds to a few thousand limits each."""

_CURVES = _CurveCache(CURVES_CACHED)


def _banded_lu_arl(up: int, down: int, limit: int, p: float) -> float:
    """:func:`_lattice_arl` by a banded LU with partial pivoting (LAPACK), for p > 0 and a
    lattice within the bound: the way without the C module."""
    size = limit
    q = 1.0 - p
    if size == 1:  # one state: L = 1 + q L (an error signals at once)
        return 1.0 / (1.0 - q)
    upper_band = up if up < size else 0
    lower_band = min(down, size - 1)
    # LAPACK's general band solver, called directly: what scipy.linalg.solve_banded calls,
    # without its checks and copies, which cost 4-5 times the solve at these sizes (a design
    # on an estimated baseline makes thousands of them). The matrix is laid out as gbsv
    # wants it: lower_band rows for the fill-in above the upper_band + 1 + lower_band
    # diagonals; row d of the diagonals holds A[i, j] at column j, with d = upper_band + i - j.
    top = lower_band  # the first row of the diagonals proper
    ab = np.zeros((2 * lower_band + upper_band + 1, size), order="F")
    ab[top + upper_band, :] = 1.0
    if up < size:
        ab[top, up:] -= p  # A[i, i + up] for i + up < limit
    if down < size:
        ab[top + upper_band + down, : size - down] -= q  # A[i, i - down] for i >= down
    for i in range(min(down, size)):
        ab[top + upper_band + i, 0] -= q  # A[i, 0] for i < down (reflected at 0)
    if lower_band == upper_band == 1:  # tridiagonal (as solve_banded: its own routine)
        gtsv = _lapack("gtsv")
        diags = ab[top:]
        *_, arl, info = gtsv(diags[2, :-1], diags[1, :], diags[0, 1:], np.ones(size), 1, 1, 1, 1)
    else:
        gbsv = _lapack("gbsv")
        *_, arl, info = gbsv(lower_band, upper_band, ab, np.ones(size), 1, 1)
    if info != 0:  # (I - Q) is regular for p in (0, 1]: a failure here is a bug
        raise StatsError(
            f"the ARL system of lattice ({up}, {down}, {limit}) at p={p:g} is singular"
        )
    value = float(arl[0])
    # past ARL_RESOLVED_MAX the solve cancels catastrophically (it returned negative ARLs
    # of -1e17 for p = 0.001, up 1, down 40): the chain effectively never signals
    return value if 0.0 < value <= ARL_RESOLVED_MAX else math.inf


ARL_RESOLVED_MAX = 1e15
"""The largest ARL :func:`_lattice_arl` reports; a longer one is ``inf``. The banded LU's
condition number grows with the ARL, so near 1 / machine epsilon its digits are noise (a
sign among them; the C passes keep theirs, but the bound is the same either way); no
design needs an ARL0 beyond 1e8 verdicts."""


_LAPACK: dict[str, Any] = {}


def _lapack(name: str) -> Any:
    """A double-precision LAPACK routine of scipy's (imported when first needed)."""
    fn = _LAPACK.get(name)
    if fn is None:
        from scipy.linalg import lapack

        fn = _LAPACK[name] = getattr(lapack, "d" + name)
    return fn


def lattice_arl(up: int, down: int, limit: int, p: float) -> float:
    """Exact zero-state ARL, in verdicts, of the lattice chart S = max(0, S + up) on an
    error, max(0, S - down) on a correct verdict, signal at S >= limit, at error rate ``p``
    in (0, 1] (:func:`bernoulli_cusum_arl` without building a design: for callers that
    evaluate one lattice at many rates and limits)."""
    return _lattice_arl(up, down, limit, p)


def bernoulli_cusum_arl(design: BernoulliCusumDesign, p: float) -> float:
    """Exact zero-state ARL, in verdicts, of a Bernoulli CUSUM when the error rate is ``p``.

    ``p = p0`` gives the in-control ARL0 (verdicts between false alarms); ``p = p1`` the
    ARL1 (verdicts to detect the shift).  Returns ``inf`` for ``p = 0``.
    """
    if not (isinstance(p, int | float) and 0.0 <= p <= 1.0):
        raise StatsError(f"p must be in [0, 1], got {p!r}")
    return _lattice_arl(design.up, design.g, design.limit, float(p))


def choose_h(
    p0: float,
    p1: float,
    target_arl0: float,
    resolution: int | None = None,
    in_control: float | None = None,
) -> BernoulliCusumDesign:
    """The Bernoulli CUSUM design with the smallest decision interval whose ARL0 >= target.

    The in-control ARL (in verdicts) is computed exactly on the lattice, and it grows with
    the decision interval, so the result is the most sensitive chart that meets the target.
    ``in_control`` (default ``p0``) is the proportion the ARL0 is evaluated at: for a p0
    estimated from a sample, an upper confidence bound of it gives a chart whose ARL0 meets
    the target unless p0 was underestimated by more than the bound allows (guaranteed
    conditional performance, Gandy & Kvaløy 2013); it must lie below the chart's reference
    value, else no interval reaches the target.

    Args:
        p0: in-control error proportion.
        p1: error proportion to detect quickly (> p0).
        target_arl0: wanted in-control ARL in verdicts (e.g. 20 000 verdicts between false
            alarms for a queue with 1 000 reviewed verdicts a day).
        resolution: lattice resolution g (see :meth:`BernoulliCusumDesign.create`).
    """
    check_positive("target_arl0", target_arl0)
    m, g = BernoulliCusumDesign.lattice(p0, p1, resolution)
    up = m - g

    at = p0 if in_control is None else float(in_control)
    check_open_probability("in_control", at)
    if at * m >= g:  # the statistic drifts up at ``at``: no interval holds it for long
        raise StatsError(
            f"in_control {at:g} is at or above the chart's reference value {g / m:g}: no "
            "decision interval gives it a long in-control run"
        )

    def arl0(limit: int) -> float:
        return _lattice_arl(up, g, limit, at)

    top = max_lattice_limit(up, g)
    hi = 1
    while arl0(hi) < target_arl0:
        if hi >= top:
            raise StatsError(
                f"target ARL0 {target_arl0:g} is out of reach: the largest decision interval "
                f"the exact ARL allows on this lattice (h = {top / m:g}) gives ARL0 "
                f"{arl0(top):.4g}; ask for a smaller ARL0"
            )
        hi = min(2 * hi, top)
    lo = hi // 2  # arl0(lo) < target (or lo == 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if arl0(mid) >= target_arl0:
            hi = mid
        else:
            lo = mid
    return BernoulliCusumDesign(p0, p1, m, g, hi)


@dataclass(frozen=True, slots=True)
class BernoulliCusumPoint:
    """The Bernoulli CUSUM after one verdict."""

    t: int
    statistic: float
    """B_t in Reynolds-Stoumbos units (S_t / m)."""
    signal: bool


class BernoulliCusum:
    """O(1) Bernoulli CUSUM on its integer lattice (see the module docstring).

    The state is the integer S (and a verdict counter); arithmetic is exact.
    """

    __slots__ = ("design", "s", "t")

    KIND = "bcusum"

    def __init__(self, design: BernoulliCusumDesign, *, s: int = 0, t: int = 0) -> None:
        if s < 0 or t < 0:
            raise StatsError("s and t must be >= 0")
        self.design = design
        self.s = s
        self.t = t

    @property
    def statistic(self) -> float:
        """Current B = S/m."""
        return self.s / self.design.m

    def update(self, incorrect: bool) -> BernoulliCusumPoint:
        """Add one QA verdict (``True`` = the decision was found incorrect)."""
        signal = self.add(incorrect)
        return BernoulliCusumPoint(self.t, self.s / self.design.m, signal)

    def add(self, incorrect: bool) -> bool:
        """:meth:`update` without the point: whether the chart signals. The live scorer
        counts every random verdict through two or three charts, where building the point
        cost more than the step (bench/README.md)."""
        d = self.design
        if incorrect:
            self.s += d.m - d.g
        elif self.s > d.g:
            self.s -= d.g
        else:
            self.s = 0
        self.t += 1
        return self.s >= d.limit

    def step(self, errors: int, n: int) -> bool:
        """Detector interface for :func:`shared.stats.arl.simulate_arl` (needs ``n == 1``)."""
        check_count(errors, n)
        if n != 1:
            raise StatsError("the Bernoulli CUSUM takes one verdict at a time (n must be 1)")
        return self.update(errors == 1).signal

    def reset(self) -> None:
        """Restart at S = 0."""
        self.s = 0
        self.t = 0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (design included)."""
        d = self.design
        return {
            **_serde.header(self.KIND),
            "p0": d.p0,
            "p1": d.p1,
            "m": d.m,
            "g": d.g,
            "H": d.limit,
            "s": self.s,
            "t": self.t,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> BernoulliCusum:
        """Inverse of :meth:`to_dict`."""
        _serde.check_header(data, cls.KIND)
        try:
            design = BernoulliCusumDesign(
                _serde.get_float(data, "p0"),
                _serde.get_float(data, "p1"),
                _serde.get_int(data, "m"),
                _serde.get_int(data, "g"),
                _serde.get_int(data, "H"),
            )
            return cls(design, s=_serde.get_int(data, "s"), t=_serde.get_int(data, "t"))
        except StatsError as exc:
            raise _restore_error(exc) from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BernoulliCusum):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BernoulliCusum(design={self.design!r}, s={self.s}, t={self.t})"


def bernoulli_cusum(
    verdicts: Iterable[bool], design: BernoulliCusumDesign
) -> list[BernoulliCusumPoint]:
    """Batch Bernoulli CUSUM (identical to feeding :class:`BernoulliCusum`)."""
    state = BernoulliCusum(design)
    return [state.update(v) for v in verdicts]


# --------------------------------------------------------------------------------------------
# Risk-adjusted Bernoulli CUSUM
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiskAdjustedPoint:
    """The risk-adjusted CUSUM after one verdict."""

    t: int
    weight: float
    """W_t, the log-likelihood ratio of this verdict."""
    statistic: float
    """X_t."""
    signal: bool


class RiskAdjustedCusum:
    """O(1) risk-adjusted Bernoulli CUSUM (Steiner et al. 2000).

    Args:
        odds_ratio: R, the odds-ratio shift to detect (> 1 for deterioration; < 1 builds a
            chart for improvement).
        h: decision interval in log-likelihood-ratio units.
    """

    __slots__ = ("h", "odds_ratio", "statistic", "t")

    KIND = "racusum"

    def __init__(
        self, odds_ratio: float = 2.0, h: float = 4.5, *, statistic: float = 0.0, t: int = 0
    ) -> None:
        check_positive("odds_ratio", odds_ratio)
        if odds_ratio == 1.0:
            raise StatsError("odds_ratio must differ from 1")
        check_positive("h", h)
        if statistic < 0.0 or t < 0:
            raise StatsError("statistic and t must be >= 0")
        self.odds_ratio = odds_ratio
        self.h = h
        self.statistic = statistic
        self.t = t

    def weight(self, incorrect: bool, expected: float) -> float:
        """W for one verdict whose expected error probability is ``expected``."""
        check_open_probability("expected", expected)
        r = self.odds_ratio
        scale = 1.0 - expected + r * expected
        return math.log(r / scale) if incorrect else -math.log(scale)

    def update(self, incorrect: bool, expected: float) -> RiskAdjustedPoint:
        """Add one verdict with its expected error probability from the risk model."""
        w = self.weight(incorrect, expected)
        self.statistic = max(0.0, self.statistic + w)
        self.t += 1
        return RiskAdjustedPoint(self.t, w, self.statistic, self.statistic >= self.h)

    def reset(self) -> None:
        """Restart at 0."""
        self.statistic = 0.0
        self.t = 0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            **_serde.header(self.KIND),
            "R": self.odds_ratio,
            "h": self.h,
            "x": self.statistic,
            "t": self.t,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RiskAdjustedCusum:
        """Inverse of :meth:`to_dict`."""
        _serde.check_header(data, cls.KIND)
        try:
            return cls(
                _serde.get_float(data, "R"),
                _serde.get_float(data, "h"),
                statistic=_serde.get_float(data, "x"),
                t=_serde.get_int(data, "t"),
            )
        except StatsError as exc:
            raise _restore_error(exc) from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RiskAdjustedCusum):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"RiskAdjustedCusum(odds_ratio={self.odds_ratio}, h={self.h}, "
            f"statistic={self.statistic}, t={self.t})"
        )


def risk_adjusted_cusum(
    verdicts: Iterable[tuple[bool, float]], odds_ratio: float = 2.0, h: float = 4.5
) -> list[RiskAdjustedPoint]:
    """Batch risk-adjusted CUSUM over ``(incorrect, expected)`` pairs."""
    state = RiskAdjustedCusum(odds_ratio, h)
    return [state.update(incorrect, expected) for incorrect, expected in verdicts]
