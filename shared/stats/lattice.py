"""Exact ARL curves of the integer-lattice CUSUM: the zero-state ARL at every decision
interval 1..n at once, for one or many error rates, in one pass.

The chart is S = max(0, S + up) on an error (probability p), max(0, S - down) on a correct
verdict, with a signal at S >= limit (:mod:`shared.stats.cusum`). Its zero-state ARL solves
(I - Q) L = 1 over the transient states 0..limit-1 (Brook & Evans 1972), and
ARL(limit) = L_0.

**All limits from one elimination.** The matrix for ``limit`` is the leading
limit x limit section of one infinite matrix A = I - Q (a transition out of the range is
absorbed, i.e. dropped). Gaussian elimination without pivoting eliminates column c with
row c only, so the factors of a leading section are the leading sections of the factors:
A_L = L_L U_L for every L. Then, with y = L^-1 1 and w = U^-T e_0 (both forward
substitutions, so their first L entries are those of the section),

    ARL(L) = e_0^T U_L^-1 L_L^-1 1 = sum_{i < L} w_i y_i,

a running sum over one elimination of the banded matrix (``down`` rows below the
diagonal, ``up`` above). A design that asks for the ARL at many limits of one lattice
and rate (a search for the smallest limit that meets a target, the same limits over a
belief's rates) costs one pass instead of a banded LU per limit.

**Why without pivoting, and exactly enough.** A is an M-matrix (positive diagonal,
non-positive off-diagonal, a nonsingular leading section for every L), for which
elimination without pivoting runs with positive pivots; L^-1 and U^-1 are non-negative,
so every term of the sum is >= 0 and the sum cancels nothing. Each row of the infinite A
sums to 0 (1 - q - p), and elimination keeps it so, so a pivot is computed as minus the
sum of its row's entries right of the diagonal, as Grassmann, Taksar & Heyman (1985) do
for Markov chains, instead of as a difference that cancels when the chain rarely leaves
0 (a long ARL): the pivots, and the ARL, keep their relative accuracy where a banded LU
with pivoting lost digits (it returned negative ARLs of -1e17 for p = 0.001, up 1,
down 40). The rows of the elimination live in a ring of ``down + 1`` rows, so memory is
O(up x down) beside the n values returned.

The loop is compiled with numba when first used (its compiled form is cached on disk);
:func:`extend_py` is the same function, uncompiled, for tests.

References:
    Brook, D. & Evans, D. A. (1972). An approach to the probability distribution of cusum
    run length. Biometrika 59, 539-549.
    Grassmann, W. K., Taksar, M. I. & Heyman, D. P. (1985). Regenerative analysis and
    steady state distributions for Markov chains. Operations Research 33, 1107-1116.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import cast

import numpy as np
from numpy.typing import NDArray

__all__ = ["ArlCurves", "CurveCache", "arl_curves", "extend_py"]

Curves = NDArray[np.float64]


def extend_py(
    up: int, down: int, start: int, ps: Curves, rows: Curves, acc: Curves, ys: Curves,
    total: Curves, out: Curves,
) -> None:  # fmt: skip
    """Eliminate columns ``start`` .. ``len(out) - 1`` of the chain (up, down) at the rates
    ``ps``, writing ``out[c, j]``, the zero-state ARL at limit c + 1 and rate ``ps[j]``; the
    elimination's state (``rows``, ``acc``, ``ys``, ``total``: :class:`ArlCurves`) is
    carried from the columns before ``start`` and left for the ones after."""
    k_ = ps.shape[0]
    width = down + up + 1  # a row: columns i - down .. i + up
    ring = down + 1  # rows c .. c + down are in play at column c
    piv = np.empty(k_)
    wc = np.empty(k_)
    mult = np.empty(k_)
    for c in range(start, out.shape[0]):
        r = c % ring
        # the pivot, as minus the sum of the row's entries right of the diagonal (GTH)
        for j in range(k_):
            piv[j] = 0.0
        for k in range(down + 1, width):
            for j in range(k_):
                piv[j] -= rows[r, k, j]
        ac = c % (up + 1)
        for j in range(k_):
            wc[j] = acc[ac, j] / piv[j]
            acc[ac, j] = 0.0
            total[j] += wc[j] * ys[r, j]
            out[c, j] = total[j]
        for a in range(1, up + 1):
            at = (c + a) % (up + 1)
            for j in range(k_):
                acc[at, j] -= rows[r, down + a, j] * wc[j]
        for a in range(1, down + 1):
            ri = (c + a) % ring
            for j in range(k_):
                mult[j] = rows[ri, down - a, j] / piv[j]
                rows[ri, down - a, j] = 0.0
                ys[ri, j] -= mult[j] * ys[r, j]
            for k in range(1, up + 1):
                for j in range(k_):
                    rows[ri, down - a + k, j] -= mult[j] * rows[r, down + k, j]
        # the row leaves the ring; row c + ring (> down: its down step is not reflected)
        # takes its place
        for k in range(width):
            for j in range(k_):
                rows[r, k, j] = 0.0
        for j in range(k_):
            rows[r, down + up, j] = -ps[j]
            rows[r, 0, j] = ps[j] - 1.0
            ys[r, j] = 1.0


Extend = Callable[[int, int, int, Curves, Curves, Curves, Curves, Curves, Curves], None]


@functools.cache
def _compiled() -> Extend:
    import numba  # (lazy: numba's import and the compilation cost about a second)

    try:  # compiled once, kept beside this file (or in the user's cache) for the next process
        return cast(Extend, numba.njit(cache=True, nogil=True)(extend_py))
    except RuntimeError:  # ("no locator available": nowhere writable) compiled every time
        return cast(Extend, numba.njit(nogil=True)(extend_py))


class ArlCurves:
    """The exact zero-state ARLs of the lattice chart (up, down) at the rates ``ps`` (each
    in [0, 1]), at every limit from 1 to as far as asked: :meth:`upto` carries the
    elimination on from where it stopped. ARLs past ``cap`` (or not positive), and all
    at p = 0, are ``inf``."""

    def __init__(
        self, up: int, down: int, ps: Curves, cap: float = math.inf, compiled: bool = True
    ) -> None:
        if up < 1 or down < 1:
            raise ValueError(f"up and down must be >= 1, got {up}, {down}")
        rates = np.array(ps, dtype=np.float64)
        if rates.ndim != 1 or not np.all((rates >= 0.0) & (rates <= 1.0)):
            raise ValueError("the rates must be a vector of probabilities in [0, 1]")
        self._never = rates == 0.0  # (the chain never signals: computed at p = 1, unread)
        rates[self._never] = 1.0
        self.up, self.down, self.ps, self.cap = int(up), int(down), rates, cap
        self._extend: Extend = _compiled() if compiled else extend_py
        k_, ring = len(rates), down + 1
        self._rows = np.zeros((ring, down + up + 1, k_))
        for i in range(ring):  # row i: A[i, i + up] = -p, A[i, max(i - down, 0)] -= 1 - p
            self._rows[i, down + up] = -rates
            self._rows[i, max(down - i, 0)] -= 1.0 - rates
        self._acc = np.zeros((up + 1, k_))  # e_0 - sum_j U[j, c] w_j, columns c .. c + up
        self._acc[0] = 1.0
        self._ys = np.ones((ring, k_))  # y of rows c .. c + down
        self._total = np.zeros(k_)
        self._out = np.empty((0, k_))
        self.n = 0  # columns eliminated: limits 1..n known

    @property
    def size(self) -> int:
        """Values held."""
        return int(self._out.size)

    def upto(self, n: int) -> Curves:
        """``out[L - 1, j]``: the ARL at limit L in 1..n and rate ``ps[j]``."""
        if n > self.n:
            if n > len(self._out):  # (room for twice as many: a search doubles its limit)
                grown = np.empty((max(n, 2 * len(self._out)), len(self.ps)))
                grown[: self.n] = self._out[: self.n]
                self._out = grown
            part = self._out[:n]
            # (a rate so small that its ARL passes 1e308 overflows to inf or nan, and the
            # ARL is reported inf: right, as the ARL only grows with the limit)
            with np.errstate(over="ignore", invalid="ignore"):
                self._extend(
                    self.up, self.down, self.n, self.ps, self._rows, self._acc, self._ys,
                    self._total, part,
                )  # fmt: skip
            new = part[self.n :]
            new[~((new > 0.0) & (new <= self.cap))] = math.inf
            new[:, self._never] = math.inf
            self.n = n
        return self._out[:n]


def arl_curves(up: int, down: int, n: int, ps: Curves, compiled: bool = True) -> Curves:
    """``out[L - 1, j]``: the exact zero-state ARL at limit L in 1..n and error rate
    ``ps[j]`` in [0, 1] of the lattice chart (up, down), from one elimination."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return ArlCurves(up, down, ps, compiled=compiled).upto(n)


class CurveCache:
    """:class:`ArlCurves` by key, least recently used out once they hold more than
    ``max_values`` values."""

    def __init__(self, max_values: int) -> None:
        self.max_values = max_values
        self._curves: OrderedDict[Hashable, ArlCurves] = OrderedDict()
        self._held = 0

    def upto(self, key: Hashable, n: int, make: Callable[[], ArlCurves]) -> Curves:
        """The curves of ``key`` (``make()`` the first time) for limits 1..n."""
        curves = self._curves.get(key)
        if curves is None:
            curves = self._curves[key] = make()
        self._curves.move_to_end(key)
        before = curves.size
        out = curves.upto(n)
        self._held += curves.size - before
        while self._held > self.max_values and len(self._curves) > 1:
            self._held -= self._curves.popitem(last=False)[1].size
        return out

    def clear(self) -> None:
        self._curves.clear()
        self._held = 0
