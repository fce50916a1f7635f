"""Root cause (services/scorer/causes.py): the ranking by hand-checkable numbers, its bounds,
properties, and through the Scorer: a drift on one site of one queue names that site."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.scorer import causes
from services.scorer.core import Scorer
from services.scorer.state import Bucket
from tests.factories import T0, decision, verdict
from tests.unit.stats.helpers import FAST
from tests.unit.test_scorer_core import feed, settings

H = timedelta(hours=1)


def _slices(rows: list[tuple[str, str, int, int, int]]) -> causes.Slices:
    """(site, policy, tenure days, n, errors) rows into one bucket's slices."""
    s: causes.Slices = {}
    for site, policy, days, n, e in rows:
        keys = causes.keys_of(site, policy, causes.tenure_band(days), 2)
        for i in range(n):
            causes.count(s, keys, i < e, "under_enforcement")
    return s


def test_the_ranking_by_hand() -> None:
    # baseline 5%: manila has 40 errors in 200 (10 expected: 30 excess); dublin 12 in 200
    # (2 excess); the window's excess is 32, so manila explains 30/32 = 93.75% of it
    s = _slices([("manila", "hate.v3", 400, 100, 30), ("manila", "spam.v1", 400, 100, 10),
                 ("dublin", "hate.v3", 400, 200, 12)])  # fmt: skip
    ranked = causes.rank([s], 0.05)
    top = ranked[0]
    assert (top.dimension, top.value) == ("site", "manila")
    assert (top.n, top.errors, top.expected_errors) == (200, 40, 10.0)
    assert top.excess_share == 0.9375
    assert top.significant
    assert top.p_interval[0] > 0.05
    pair = next(c for c in ranked if c.dimension == "site_policy")
    assert pair.value == "manila/hate.v3"  # 30 - 5 = 25 excess
    assert pair.excess_share == round(25 / 32, 4)
    assert causes.summary(ranked) == (
        "94% of the excess errors are site manila (40 errors, 10.0 expected, n=200), "
        "mostly under_enforcement (100%)"
    )
    assert causes.label(ranked, "site") == "manila"
    # hate.v3 has 42 errors in 300 (15 expected): 27 of the 32, 84%, mostly at manila
    assert causes.label(ranked, "policy") == "hate.v3"
    # a tenure band holding every verdict of the window explains nothing: not listed
    assert not [c for c in ranked if c.dimension == "tenure"]


def test_a_pair_that_explains_nearly_all_comes_first() -> None:
    s = _slices([("manila", "hate.v3", 10, 100, 35), ("manila", "spam.v1", 10, 100, 5),
                 ("dublin", "hate.v3", 10, 100, 5), ("dublin", "spam.v1", 10, 100, 5)])  # fmt: skip
    ranked = causes.rank([s], 0.05)
    assert (ranked[0].dimension, ranked[0].value) == ("site_policy", "manila/hate.v3")
    assert causes.summary(ranked, lower=False) is not None
    assert "site manila on policy hate.v3" in (causes.summary(ranked) or "")
    assert causes.label(ranked, "site") == "manila"
    assert causes.label(ranked, "policy") == "hate.v3"


def test_no_excess_no_cause_and_a_lower_breach_ranks_missing_errors() -> None:
    flat = _slices([("a", "p", 400, 1000, 50), ("b", "p", 400, 1000, 50)])
    assert causes.summary(causes.rank([flat], 0.05)) is None
    # errors vanished at site b (its QA feed sends only "correct"): the missing errors
    dead = _slices([("a", "p", 400, 1000, 50), ("b", "p", 400, 1000, 0)])
    ranked = causes.rank([dead], 0.05, lower=True)
    assert (ranked[0].dimension, ranked[0].value) == ("site", "b")
    assert "missing errors are site b" in (causes.summary(ranked, lower=True) or "")


def test_values_per_dimension_are_bounded() -> None:
    s: causes.Slices = {}
    for i in range(causes.MAX_VALUES * 3):
        causes.count(s, causes.keys_of(f"site{i}", "p", "1y+", 2), False, None)
    sites = [k for k in s if k.startswith("site=")]
    assert len(sites) == causes.MAX_VALUES + 1
    assert s[f"site={causes.OTHER}"][0] == causes.MAX_VALUES * 2
    assert sum(v[0] for k, v in s.items() if k.startswith("site=")) == causes.MAX_VALUES * 3


def test_tenure_bands() -> None:
    assert [causes.tenure_band(d) for d in (None, 0, 29, 30, 89, 90, 364, 365, 5000)] == [
        "unknown", "<30d", "<30d", "30-89d", "30-89d", "90-364d", "90-364d", "1y+", "1y+"
    ]  # fmt: skip


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from("abcd"), st.sampled_from("xyz"), st.integers(0, 60), st.integers(0, 60)
        ),
        min_size=1,
        max_size=12,
    ),
    st.floats(0.01, 0.5),
)
def test_properties(rows: list[tuple[str, str, int, int]], p0: float) -> None:
    s = _slices([(site, pol, 100, n, min(e, n)) for site, pol, n, e in rows])
    ranked = causes.rank([s, {}], p0)
    assert len(ranked) <= causes.TOP
    n_all = sum(v[0] for k, v in s.items() if k.startswith("site="))
    e_all = sum(v[1] for k, v in s.items() if k.startswith("site="))
    for c in ranked:
        assert c.errors > c.expected_errors  # only slices above the baseline
        assert 0 <= c.p_interval[0] <= c.p <= c.p_interval[1] <= 1
        if c.excess_share is not None:
            assert e_all - n_all * p0 > 0
            assert c.excess_share > 0
    # shares of one dimension's slices above the baseline add up to at least one
    sites = [c for c in causes.rank([s], p0) if c.dimension == "site"]
    if (
        sites
        and len(sites) == len([k for k in s if k.startswith("site=")])
        and sites[0].excess_share
    ):
        assert sum(c.excess_share or 0 for c in sites) >= 0.999
    # the order is by excess errors (but a near-best pair may lead)
    rest = [c.errors - c.expected_errors for c in ranked[1:]]
    assert rest == sorted(rest, reverse=True)


def test_a_bucket_round_trips_its_slices_and_reads_an_old_one() -> None:
    b = Bucket(n=3, e=1, slices=_slices([("a", "p", 5, 3, 1)]))
    assert Bucket.from_list(b.to_list()) == b
    assert Bucket.from_list(b.to_list()[:10]).slices == {}


def _traffic(hour: int, n: int, rng: random.Random, drifted_site: str | None) -> list[Any]:
    items: list[Any] = []
    for i in range(n):
        k = f"{hour}-{i}"
        site = ("manila", "dublin", "austin", "krakow")[i % 4]
        policy = ("hate.v3", "spam.v1")[(i // 4) % 2]
        rate = 0.20 if site == drifted_site else 0.04
        at = T0 + hour * H + timedelta(seconds=rng.uniform(0, 3599))
        items.append(decision(k, "q", at, site_id=site, policy_id=policy,
                              moderator_tenure_days=(i * 37) % 700))  # fmt: skip
        items.append(verdict(k, "q", at + H, correct=rng.random() >= rate))
    return items


def test_a_drift_on_one_site_names_that_site_first() -> None:
    rng = random.Random(7)
    sc = Scorer(settings(), {})
    breaches = []
    for hour in range(16):
        breaches += feed(sc, _traffic(hour, 240, rng, "manila" if hour >= 8 else None)).breaches
    spc = [b for b in breaches if b.kind == "spc" and b.rule != "cusum_lower"]
    assert spc, "the drift must signal"
    for b in spc:
        assert b.causes, b.rule
        top = b.causes[0]
        assert "manila" in top.value, (b.rule, b.causes)
        assert b.site == "manila", b.rule
        assert b.cause_summary is not None
        assert b.message.endswith(f"Cause: {b.cause_summary}")
    # the record keeps slices for a day's buckets only
    state = sc.state("q")
    old = [s for s, b in state.buckets.items() if b.slices and s < state.watermark - 90000 - 3600]
    assert not old
