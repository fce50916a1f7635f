"""Cohen's kappa, Fleiss' kappa and Krippendorff's alpha against published worked examples."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.stats import (
    AlphaLevel,
    StatsError,
    UndefinedStatisticError,
    cohen_kappa,
    cohen_kappa_from_table,
    fleiss_kappa,
    krippendorff_alpha,
)

from .helpers import FAST


def test_cohen_wikipedia_example() -> None:
    """Wikipedia, "Cohen's kappa", worked example: 50 grant proposals read by A and B.

    Both yes 20, A yes / B no 5, A no / B yes 10, both no 15: p_o = 0.7, p_e = 0.5, κ = 0.4.
    """
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4, abs=1e-12)
    assert cohen_kappa_from_table([[20, 5], [10, 15]]) == pytest.approx(0.4, abs=1e-12)


def test_cohen_by_hand_three_categories() -> None:
    table = [[10, 2, 1], [3, 12, 2], [0, 1, 9]]
    total = 40
    p_o = (10 + 12 + 9) / total
    rows = [13 / total, 17 / total, 10 / total]
    cols = [13 / total, 15 / total, 12 / total]
    p_e = sum(r * c for r, c in zip(rows, cols, strict=True))
    assert cohen_kappa_from_table(table) == pytest.approx((p_o - p_e) / (1 - p_e), abs=1e-12)


# Fleiss (1971); also the worked example of Wikipedia's "Fleiss' kappa" article:
# 10 subjects, 14 raters, 5 categories; P̄ = 0.378, P̄e = 0.213, κ = 0.210.
FLEISS_EXAMPLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_wikipedia_example() -> None:
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.20993, abs=5e-6)
    assert round(fleiss_kappa(FLEISS_EXAMPLE), 3) == 0.210


# Krippendorff, K. (2011), "Computing Krippendorff's Alpha-Reliability", the reliability
# data with 4 observers and 12 units, missing values included (here units x observers).
# Published: nominal 0.743, ordinal 0.815, interval 0.849, ratio 0.797.
_OBSERVERS = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]
KRIPPENDORFF_2011 = [list(unit) for unit in zip(*_OBSERVERS, strict=True)]


@pytest.mark.parametrize(
    ("level", "expected"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_2011_example(level: AlphaLevel, expected: float) -> None:
    alpha = krippendorff_alpha(KRIPPENDORFF_2011, level)
    assert round(alpha, 3) == expected


# Wikipedia, "Krippendorff's alpha", computational example: 3 coders, 15 units
# (units x coders).  nominal alpha = 0.691 (0.691358...), interval alpha = 0.811 (0.810845...).
_CODERS = [
    [None, None, None, None, None, 3, 4, 1, 2, 1, 1, 3, 3, None, 3],
    [1, None, 2, 1, 3, 3, 4, 3, None, None, None, None, None, None, None],
    [None, None, 2, 1, 3, 4, 4, None, 2, 1, 1, 3, 3, None, 4],
]
WIKIPEDIA_ALPHA = [list(unit) for unit in zip(*_CODERS, strict=True)]


def test_krippendorff_wikipedia_example() -> None:
    assert krippendorff_alpha(WIKIPEDIA_ALPHA, "nominal") == pytest.approx(0.691358, abs=1e-6)
    assert krippendorff_alpha(WIKIPEDIA_ALPHA, "interval") == pytest.approx(0.810845, abs=1e-6)


def test_ordinal_with_labels_and_an_explicit_order() -> None:
    """Ordered labels give the same ordinal alpha as their ranks (0.815 above)."""
    names = {1: "very low", 2: "low", 3: "mid", 4: "high", 5: "very high"}
    labelled = [[None if r is None else names[r] for r in unit] for unit in KRIPPENDORFF_2011]
    order = ["very low", "low", "mid", "high", "very high"]
    alpha = krippendorff_alpha(labelled, "ordinal", values=order)
    assert alpha == pytest.approx(krippendorff_alpha(KRIPPENDORFF_2011, "ordinal"), abs=1e-12)


def test_two_raters_nominal_alpha_relates_to_scott_pi() -> None:
    """With 2 raters and no missing data, nominal α = 1 - (2N-1)/(2N) (1 - π) (Scott's π)."""
    a = [1, 1, 2, 2, 3, 1, 2, 3, 3, 1]
    b = [1, 2, 2, 2, 3, 1, 1, 3, 2, 1]
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    pooled = a + b
    p_e = sum((pooled.count(c) / (2 * n)) ** 2 for c in set(pooled))
    pi = (p_o - p_e) / (1 - p_e)
    alpha = krippendorff_alpha([[x, y] for x, y in zip(a, b, strict=True)])
    assert alpha == pytest.approx(1 - (2 * n - 1) / (2 * n) * (1 - pi), abs=1e-12)


categories = st.sampled_from(["approve", "remove", "restrict", "label", "escalate"])


@FAST
@given(labels=st.lists(categories, min_size=2, max_size=60).filter(lambda xs: len(set(xs)) > 1))
def test_perfect_agreement_gives_one(labels: list[str]) -> None:
    assert cohen_kappa(labels, labels) == pytest.approx(1.0)
    counts = [[3 if c == label else 0 for c in sorted(set(labels))] for label in labels]
    assert fleiss_kappa(counts) == pytest.approx(1.0)
    units = [[label, label, None, label] for label in labels]
    assert krippendorff_alpha(units, "nominal") == pytest.approx(1.0)
    assert krippendorff_alpha(units, "ordinal") == pytest.approx(1.0)


@FAST
@given(
    pairs=st.lists(st.tuples(categories, categories), min_size=2, max_size=80).filter(
        lambda ps: len({x for p in ps for x in p}) > 1
    )
)
def test_kappa_is_symmetric_and_at_most_one(pairs: list[tuple[str, str]]) -> None:
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    try:
        k = cohen_kappa(a, b)
    except UndefinedStatisticError:
        return
    assert k <= 1.0 + 1e-12
    assert cohen_kappa(b, a) == pytest.approx(k)


def test_undefined_and_invalid_inputs() -> None:
    with pytest.raises(UndefinedStatisticError):
        cohen_kappa(["a", "a"], ["a", "a"])
    with pytest.raises(UndefinedStatisticError):
        fleiss_kappa([[3, 0], [3, 0]])
    with pytest.raises(UndefinedStatisticError):
        krippendorff_alpha([[1, None], [None, 2]])
    with pytest.raises(UndefinedStatisticError):
        krippendorff_alpha([[1, 1], [1, 1]])
    with pytest.raises(StatsError):
        fleiss_kappa([[2, 1], [1, 1]])
    with pytest.raises(StatsError):
        cohen_kappa(["a"], ["a", "b"])
    with pytest.raises(StatsError):
        krippendorff_alpha([["x", "y"]], "interval")
    with pytest.raises(StatsError):
        krippendorff_alpha([["x", "y"]], "ordinal", values=["x"])
