"""Inter-rater agreement: Cohen's kappa, Fleiss' kappa, Krippendorff's alpha.

Used on calibration sessions and blind gold items, where several QA specialists rate the
same decisions, to measure the auditors themselves.  All three are chance-corrected:
``(observed agreement - chance agreement) / (1 - chance agreement)``, 1 for perfect
agreement, 0 for agreement at chance level, negative below it.

Cohen's kappa (two raters, every item rated by both)::

    p_o = Σ_c n_cc / N,    p_e = Σ_c (n_c· / N)(n_·c / N),    κ = (p_o - p_e) / (1 - p_e)

Fleiss' kappa (any number of raters, the same number n ≥ 2 of ratings per item; n_ij =
raters who put item i in category j; N items)::

    P_i = (Σ_j n_ij² - n) / (n (n - 1)),     P̄ = mean_i P_i
    p_j = Σ_i n_ij / (N n),                  P̄_e = Σ_j p_j²
    κ = (P̄ - P̄_e) / (1 - P̄_e)

Krippendorff's alpha (any number of raters, missing ratings allowed; units × raters with
``None`` for missing).  Units with fewer than two ratings are not pairable and are dropped.
From the coincidence matrix ``o_ck = Σ_u (number of ordered pairs (c, k) of ratings in u) /
(m_u - 1)`` with marginals n_c and total n::

    α = 1 - (n - 1) Σ_(c,k) o_ck δ²_ck / Σ_(c,k) n_c n_k δ²_ck

with the difference function δ² of the level of measurement: nominal ``[c ≠ k]``;
ordinal ``(Σ_(g=c..k) n_g - (n_c + n_k)/2)²`` over the ordered values; interval
``(c - k)²``; ratio ``((c - k)/(c + k))²``.

The statistics are undefined (:class:`UndefinedStatisticError`) when chance agreement is 1
(everything in one category) or nothing is pairable.

References:
    Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and
    Psychological Measurement 20, 37-46.
    Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters. Psychological
    Bulletin 76, 378-382.
    Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School
    for Communication, University of Pennsylvania.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Literal, TypeVar, get_args

from shared.stats.errors import StatsError, UndefinedStatisticError

__all__ = [
    "AlphaLevel",
    "cohen_kappa",
    "cohen_kappa_from_table",
    "fleiss_kappa",
    "krippendorff_alpha",
]

AlphaLevel = Literal["nominal", "ordinal", "interval", "ratio"]
_LEVELS: tuple[str, ...] = get_args(AlphaLevel)

H = TypeVar("H", bound=Hashable)


def cohen_kappa_from_table(table: Sequence[Sequence[float]]) -> float:
    """Cohen's kappa from a square table: ``table[i][j]`` items rated i by A and j by B."""
    size = len(table)
    if size == 0 or any(len(row) != size for row in table):
        raise StatsError("the agreement table must be square and non-empty")
    if any(cell < 0 for row in table for cell in row):
        raise StatsError("the agreement table must not have negative counts")
    total = float(sum(sum(row) for row in table))
    if total <= 0:
        raise StatsError("the agreement table is empty")
    observed = sum(table[i][i] for i in range(size)) / total
    rows = [sum(table[i]) / total for i in range(size)]
    cols = [sum(table[i][j] for i in range(size)) / total for j in range(size)]
    expected = sum(r * c for r, c in zip(rows, cols, strict=True))
    if expected >= 1.0:
        raise UndefinedStatisticError("Cohen's kappa is undefined: chance agreement is 1")
    return (observed - expected) / (1.0 - expected)


def cohen_kappa(rater_a: Sequence[H], rater_b: Sequence[H]) -> float:
    """Cohen's kappa for two raters who rated the same items (in the same order)."""
    if len(rater_a) != len(rater_b):
        raise StatsError("both raters must rate the same items")
    if not rater_a:
        raise StatsError("no items")
    categories = list(dict.fromkeys([*rater_a, *rater_b]))
    position = {c: i for i, c in enumerate(categories)}
    table = [[0.0] * len(categories) for _ in categories]
    for a, b in zip(rater_a, rater_b, strict=True):
        table[position[a]][position[b]] += 1.0
    return cohen_kappa_from_table(table)


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from an items × categories table of rating counts.

    Every row must sum to the same number of raters n ≥ 2.
    """
    if not counts:
        raise StatsError("no items")
    width = len(counts[0])
    if width == 0 or any(len(row) != width for row in counts):
        raise StatsError("every row must have one count per category")
    if any(c < 0 for row in counts for c in row):
        raise StatsError("counts must be >= 0")
    raters = sum(counts[0])
    if raters < 2 or any(sum(row) != raters for row in counts):
        raise StatsError("every item needs the same number (>= 2) of ratings")
    items = len(counts)
    p_items = [(sum(c * c for c in row) - raters) / (raters * (raters - 1)) for row in counts]
    p_bar = sum(p_items) / items
    shares = [sum(row[j] for row in counts) / (items * raters) for j in range(width)]
    p_e = sum(s * s for s in shares)
    if p_e >= 1.0:
        raise UndefinedStatisticError("Fleiss' kappa is undefined: chance agreement is 1")
    return (p_bar - p_e) / (1.0 - p_e)


def krippendorff_alpha(
    ratings: Sequence[Sequence[H | None]],
    level: AlphaLevel = "nominal",
    *,
    values: Sequence[H] | None = None,
) -> float:
    """Krippendorff's alpha for a units × raters matrix (``None`` = not rated).

    Args:
        ratings: one row per unit (item), one column per rater.
        level: ``"nominal"``, ``"ordinal"``, ``"interval"`` or ``"ratio"``.
        values: for ``"ordinal"``, the values in their order (default: sorted); every
            rating must be among them.  Interval and ratio need numeric ratings.
    """
    if level not in _LEVELS:
        raise StatsError(f"level must be one of {_LEVELS}, got {level!r}")
    units = [[r for r in row if r is not None] for row in ratings]
    pairable = [u for u in units if len(u) >= 2]
    if not pairable:
        raise UndefinedStatisticError("Krippendorff's alpha is undefined: no unit has two ratings")

    coincidence: dict[tuple[H, H], float] = {}
    for unit in pairable:
        weight = 1.0 / (len(unit) - 1)
        counts = Counter(unit)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                if pairs:
                    coincidence[(c, k)] = coincidence.get((c, k), 0.0) + pairs * weight
    marginals: dict[H, float] = {}
    for (c, _), o in coincidence.items():
        marginals[c] = marginals.get(c, 0.0) + o
    total = sum(marginals.values())

    delta = _difference(level, list(marginals), marginals, values)
    observed = sum(o * delta(c, k) for (c, k), o in coincidence.items())
    expected = sum(marginals[c] * marginals[k] * delta(c, k) for c in marginals for k in marginals)
    if expected == 0.0:
        raise UndefinedStatisticError(
            "Krippendorff's alpha is undefined: every pairable rating has the same value"
        )
    return 1.0 - (total - 1.0) * observed / expected


def _difference(
    level: str,
    seen: list[H],
    marginals: dict[H, float],
    values: Sequence[H] | None,
) -> Callable[[H, H], float]:
    """The squared difference function δ²(c, k) of the level of measurement."""
    if level == "nominal":
        return lambda c, k: 0.0 if c == k else 1.0
    if level == "ordinal":
        order = list(values) if values is not None else _sorted(seen)
        rank = {v: i for i, v in enumerate(order)}
        missing = [v for v in seen if v not in rank]
        if missing:
            raise StatsError(f"ratings {missing!r} are not among the ordered values")
        cumulative = [0.0]
        for v in order:
            cumulative.append(cumulative[-1] + marginals.get(v, 0.0))

        def ordinal(c: H, k: H) -> float:
            i, j = sorted((rank[c], rank[k]))
            between = cumulative[j + 1] - cumulative[i]
            return (between - (marginals[c] + marginals[k]) / 2.0) ** 2

        return ordinal
    numeric = {v: _as_number(v) for v in seen}
    if level == "interval":
        return lambda c, k: (numeric[c] - numeric[k]) ** 2

    def ratio(c: H, k: H) -> float:
        a, b = numeric[c], numeric[k]
        return 0.0 if a + b == 0 else ((a - b) / (a + b)) ** 2

    return ratio


def _sorted(seen: list[H]) -> list[H]:
    try:
        return sorted(seen)  # type: ignore[type-var]
    except TypeError as exc:
        raise StatsError("ordinal ratings must be sortable, or pass values= in order") from exc


def _as_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StatsError(f"interval and ratio alpha need numeric ratings, got {value!r}")
    return float(value)
