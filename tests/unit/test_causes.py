"""Root cause (services/scorer/causes.py): the ranking by hand-checkable numbers, its bounds,
properties, and through the Scorer: a drift on one site of one queue names that site, and a
shift of the whole queue names none ("queue-wide": a slice is a cause only when it stands
out from the rest of the queue, not merely from the baseline)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import fisher_exact

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
    # baseline 5%: manila has 40 errors in 200, dublin 12 in 200 (6.0%); the window's excess
    # over the baseline is 52 - 20 = 32; at the rest's (dublin's) rate manila would have had
    # 12 errors: it explains 40 - 12 = 28 of the 32, 87.5%
    s = _slices([("manila", "hate.v3", 400, 100, 30), ("manila", "spam.v1", 400, 100, 10),
                 ("dublin", "hate.v3", 400, 200, 12)])  # fmt: skip
    ranked = causes.rank([s], 0.05)
    top = ranked[0]
    assert (top.dimension, top.value) == ("site", "manila")
    assert (top.n, top.errors, top.expected_errors) == (200, 40, 10.0)
    assert top.rest_p == 0.06
    assert top.excess_share == 0.875
    assert top.significant
    assert top.p_value is not None
    assert top.p_value < 0.05
    assert top.p_interval[0] > 0.05
    # dublin is below the rest of the queue: no cause at all
    assert not [c for c in ranked if c.value == "dublin" or c.value.startswith("dublin/")]
    pair = next(c for c in ranked if c.dimension == "site_policy")
    assert pair.value == "manila/hate.v3"  # 30 errors in 100 against 22 in 300
    assert pair.excess_share == round((30 - 100 * 22 / 300) / 32, 4)
    # hate.v3: 42 in 300 (14%) against spam.v1's 10 in 100 (10%): explains 12 of the 32, but
    # does not stand out
    policy = next(c for c in ranked if c.dimension == "policy")
    assert (policy.value, policy.excess_share, policy.significant) == ("hate.v3", 0.375, False)
    assert causes.summary(ranked) == (
        "88% of the excess errors are site manila (40 errors, 10.0 expected, n=200; 20.0% "
        "against 6.0% elsewhere), mostly under_enforcement (100%)"
    )
    assert causes.label(ranked, "site") == "manila"
    # the pair explains 71%, and stands out: the policy to route to
    assert causes.label(ranked, "policy") == "hate.v3"
    # a tenure band holding every verdict of the window explains nothing: not listed
    assert not [c for c in ranked if c.dimension == "tenure"]


def test_a_pair_that_explains_nearly_all_comes_first() -> None:
    s = _slices([("manila", "hate.v3", 10, 100, 35), ("manila", "spam.v1", 10, 100, 5),
                 ("dublin", "hate.v3", 10, 100, 5), ("dublin", "spam.v1", 10, 100, 5)])  # fmt: skip
    ranked = causes.rank([s], 0.05)
    assert (ranked[0].dimension, ranked[0].value) == ("site_policy", "manila/hate.v3")
    assert ranked[0].excess_share == 1.0  # the rest is at the baseline: all of it
    assert causes.summary(ranked, lower=False) is not None
    assert "site manila on policy hate.v3" in (causes.summary(ranked) or "")
    assert causes.label(ranked, "site") == "manila"
    assert causes.label(ranked, "policy") == "hate.v3"


def test_no_excess_no_cause_and_a_lower_breach_ranks_missing_errors() -> None:
    flat = _slices([("a", "p", 400, 1000, 50), ("b", "p", 400, 1000, 50)])
    assert causes.rank([flat], 0.05) == []
    assert causes.summary(causes.rank([flat], 0.05)) is None  # (no window given)
    # errors vanished at site b (its QA feed sends only "correct"): the missing errors
    dead = _slices([("a", "p", 400, 1000, 50), ("b", "p", 400, 1000, 0)])
    ranked, said = causes.explain([dead], 0.05, lower=True)
    assert (ranked[0].dimension, ranked[0].value) == ("site", "b")
    assert ranked[0].excess_share == 1.0
    assert "100% of the missing errors are site b" in (said or "")
    assert causes.label(ranked, "site") == "b"


def _by_tenure(rows: list[tuple[int, int, int]], site: str = "s") -> causes.Slices:
    """(tenure days, n, errors) rows, one site and policy."""
    return _slices([(site, "p", days, n, e) for days, n, e in rows])


def test_a_uniform_shift_is_queue_wide_not_the_biggest_cohort() -> None:
    # the reported case: 5% -> 16% everywhere; tenure 1y+ holds 61% of the verdicts (it was
    # named: "72% of the excess errors are moderators of tenure 1y+")
    s = _slices([("a", "p", 400, 310, 50), ("a", "p", 100, 100, 16), ("a", "p", 10, 90, 14),
                 ("b", "p", 400, 300, 48), ("b", "p", 100, 100, 16), ("b", "p", 10, 100, 17)])  # fmt: skip
    ranked, said = causes.explain([s], 0.05)
    assert not [c for c in ranked if c.significant], ranked
    assert all(c.excess_share is not None and c.excess_share < 0.1 for c in ranked)
    assert said == (
        "queue-wide: no site, policy, tenure band or severity stands out from the rest of the "
        "queue (errors 16.1% against the 5.0% baseline, n=1000)"
    )
    assert causes.label(ranked, "site") is None
    assert causes.label(ranked, "policy") is None


def test_a_dead_feed_everywhere_is_queue_wide() -> None:
    # the QA feed sends only "correct" for every site: the missing errors are everyone's
    # (it was blamed on the cohort holding 61% of the verdicts)
    s = _slices([("a", "p", 400, 610, 0), ("a", "p", 100, 200, 0), ("b", "q", 10, 190, 0)])
    ranked, said = causes.explain([s], 0.05, lower=True)
    assert ranked == []
    assert said is not None
    assert said.startswith("queue-wide: no site")
    assert "errors 0.0% against the 5.0% baseline, n=1000" in said
    # nearly dead (a trickle of errors, alike everywhere): the same
    trickle = _slices([("a", "p", 400, 600, 6), ("a", "p", 100, 200, 2), ("b", "q", 10, 200, 2)])
    ranked, said = causes.explain([trickle], 0.05, lower=True)
    assert not [c for c in ranked if c.significant]
    assert said is not None
    assert said.startswith("queue-wide")
    assert causes.label(ranked, "site") is None


def test_two_sites_alike_bad_neither_is_the_cause() -> None:
    # the reported case: both sites of a queue bad (26.3% and 23.5%): one was named with an
    # excess_share of 1.15
    s = _slices([("a", "p", 400, 190, 50), ("b", "p", 400, 200, 47)])
    ranked, said = causes.explain([s], 0.05)
    assert all(0 <= (c.excess_share or 0) <= 1 for c in ranked)
    assert not [c for c in ranked if c.significant]
    assert said is not None
    assert said.startswith("queue-wide")
    assert causes.label(ranked, "site") is None


def test_one_bad_site_among_four_is_named_with_a_share_within_one() -> None:
    s = _slices([("a", "p", 400, 200, 10), ("b", "p", 400, 200, 10), ("c", "p", 400, 200, 40),
                 ("d", "p", 400, 200, 10)])  # fmt: skip
    ranked, said = causes.explain([s], 0.05)
    assert (ranked[0].dimension, ranked[0].value, ranked[0].excess_share) == ("site", "c", 1.0)
    assert said is not None
    assert said.startswith("100% of the excess errors are site c (40 ")
    assert "; 20.0% against 5.0% elsewhere" in said
    assert causes.label(ranked, "site") == "c"


def test_two_equally_bad_sites_of_four_are_both_named_and_route_nowhere() -> None:
    # a and b at 20%, c and d at 5% (the baseline): each bad site's rest holds the other, so
    # each explains a third of the excess (40 errors against 20 at the rest's 10%: 20 of 60)
    s = _slices([("a", "p", 400, 200, 40), ("b", "p", 400, 200, 40), ("c", "p", 400, 200, 10),
                 ("d", "p", 400, 200, 10)])  # fmt: skip
    ranked, said = causes.explain([s], 0.05)
    sites = [c for c in ranked if c.dimension == "site"]
    assert [(c.value, c.excess_share, c.significant) for c in sites] == [
        ("a", 0.3333, True), ("b", 0.3333, True)
    ]  # fmt: skip
    assert said is not None
    assert said.startswith("33% of the excess errors are site a (40 errors")
    assert "; 33% are site b (40 errors" in said
    assert causes.label(ranked, "site") is None  # neither explains half: no one site's team


def test_spread_over_three_sites_of_four_says_so() -> None:
    s = _slices([("a", "p", 400, 400, 80), ("b", "p", 400, 400, 80), ("c", "p", 400, 400, 80),
                 ("d", "p", 400, 400, 4)])  # fmt: skip
    ranked, said = causes.explain([s], 0.01)
    assert all((c.excess_share or 0) < causes.MIN_SHARE for c in ranked)
    if any(c.significant for c in ranked):
        assert said is not None
        assert said.startswith("spread: site ")
        assert said.endswith("stand out, none explains 30% of the excess errors")
    assert causes.label(ranked, "site") is None


def test_fisher_and_holm_by_hand() -> None:
    # one-sided Fisher p-values against scipy's own 2x2 test
    rows = [(200, 40, 400, 52), (100, 30, 400, 52), (50, 0, 300, 20)]
    upper = causes._fisher(rows, lower=False)
    lower = causes._fisher(rows, lower=True)
    for (n, e, big_n, big_e), pu, pl in zip(rows, upper, lower, strict=True):
        table = [[e, n - e], [big_e - e, big_n - n - (big_e - e)]]
        assert abs(pu - fisher_exact(table, alternative="greater")[1]) < 1e-9
        assert abs(pl - fisher_exact(table, alternative="less")[1]) < 1e-9
    # Holm: 0.01 x 3, then max(0.03 x 2, 0.04 x 1)
    adjusted = causes.holm([0.01, 0.04, 0.03])
    assert [round(x, 9) for x in adjusted] == [0.03, 0.06, 0.06]
    assert causes.holm([]) == []
    assert causes.holm([0.5, 0.9]) == [1.0, 1.0]


def test_a_uniform_rate_names_a_cause_about_one_time_in_twenty_at_most() -> None:
    # calibration: 400 queues whose 4 sites x 2 policies x 3 tenure bands all have the same
    # error rate (random draws): a significant cause is a false alarm; Holm across the
    # slices holds the family-wise rate at 5% (conservative: slices overlap)
    rng = random.Random(11)
    false = 0
    for _ in range(400):
        rate = rng.uniform(0.03, 0.3)
        s: causes.Slices = {}
        for i in range(rng.randrange(200, 1500)):
            keys = causes.keys_of(
                "abcd"[i % 4], "pq"[i % 7 % 2], ("<30d", "1y+", "unknown")[i % 3], 2
            )
            causes.count(s, keys, rng.random() < rate, "under_enforcement")
        ranked, said = causes.explain([s], rate / 2)
        false += any(c.significant for c in ranked)
        if not any(c.significant for c in ranked):
            assert said is not None
            assert said.startswith("queue-wide")
    assert false <= 30  # 5% of 400 is 20; binomial 95% upper bound about 29


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
        assert c.rest_p is not None
        assert c.p > c.rest_p
        assert c.n < n_all  # (with a rest)
        assert 0 <= c.p_interval[0] <= c.p <= c.p_interval[1] <= 1
        assert c.p_value is not None
        assert 0 <= c.p_value <= 1
        assert c.significant == (c.p_value <= 1 - causes.CONFIDENCE)
        if c.excess_share is None:
            assert e_all - n_all * p0 <= 0
        else:
            assert 0 <= c.excess_share <= 1  # never more than all of it
    # the order is by the errors explained (but a near-best pair may lead)
    rest = [round(c.errors - c.n * (c.rest_p or 0), 9) for c in ranked[1:]]  # as ranked
    assert rest == sorted(rest, reverse=True)
    # a label only for a cause that stands out and explains at least half
    for dim in ("site", "policy"):
        if causes.label(ranked, dim) is not None:
            assert any(
                c.significant and (c.excess_share or 0) >= causes.LABEL_SHARE for c in ranked
            )
    _, said = causes.explain([s], p0)
    assert (said is not None) == (n_all > 0)  # something to say of a window with verdicts


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from("abcd"), st.sampled_from("xyz"), st.integers(0, 800), st.integers(1, 20)
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([10, 20, 50]),
    st.data(),
)
def test_a_uniform_shift_names_nothing(
    cells: list[tuple[str, str, int, int]], m: int, data: st.DataObject
) -> None:
    # every cell (site, policy, tenure) at exactly the same error rate j/m, above a baseline:
    # every slice is at the rest's rate, none is a cause, the summary says queue-wide
    j = data.draw(st.integers(1, m - 1))
    p0 = data.draw(st.floats(0.001, j / m * 0.9))
    s = _slices([(site, pol, days, k * m, k * j) for site, pol, days, k in cells])
    for lower in (False, True):
        ranked, said = causes.explain([s], p0, lower=lower)
        assert ranked == []
        assert said is not None
        assert said.startswith("queue-wide: no site")
        assert causes.label(ranked, "site") is None
        assert causes.label(ranked, "policy") is None


@FAST
@given(
    st.lists(st.integers(1, 20), min_size=4, max_size=4),
    st.integers(0, 3),
    st.sampled_from([0.15, 0.2, 0.3, 0.5]),
)
def test_one_bad_site_among_four_is_first(ks: list[int], bad: int, rate: float) -> None:
    # three sites at the baseline 5% exactly, one above it: that site, all of the excess
    s = _slices([("abcd"[i], "p", 400, 20 * k, k if i != bad else round(20 * k * rate))
                 for i, k in enumerate(ks)])  # fmt: skip
    ranked, said = causes.explain([s], 0.05)
    top = ranked[0]
    assert (top.dimension, top.value) == ("site", "abcd"[bad])
    assert top.excess_share is not None
    assert 0.99 <= top.excess_share <= 1
    assert all(0 <= (c.excess_share or 0) <= 1 for c in ranked)
    if top.significant:
        assert said is not None
        assert said.startswith(f"100% of the excess errors are site {'abcd'[bad]} ")
        assert causes.label(ranked, "site") == "abcd"[bad]
    else:  # too few verdicts to tell it from the rest
        assert causes.label(ranked, "site") is None


def test_a_bucket_round_trips_its_slices_and_reads_an_old_one() -> None:
    b = Bucket(n=3, e=1, slices=_slices([("a", "p", 5, 3, 1)]))
    assert Bucket.from_list(b.to_list()) == b
    assert Bucket.from_list(b.to_list()[:10]).slices == {}


def _traffic(
    hour: int, n: int, rng: random.Random, drifted_site: str | None, everywhere: float = 0.04
) -> list[Any]:
    items: list[Any] = []
    for i in range(n):
        k = f"{hour}-{i}"
        site = ("manila", "dublin", "austin", "krakow")[i % 4]
        policy = ("hate.v3", "spam.v1")[(i // 4) % 2]
        rate = 0.20 if site == drifted_site else everywhere
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


def test_a_drift_of_the_whole_queue_names_no_site() -> None:
    # every site, policy and cohort from 4% to 12%: the alerts say queue-wide, and carry no
    # site or policy label (Alertmanager routes on them: no one site's team is paged)
    rng = random.Random(7)
    sc = Scorer(settings(), {})
    breaches = []
    for hour in range(16):
        out = feed(sc, _traffic(hour, 240, rng, None, 0.12 if hour >= 8 else 0.04))
        breaches += out.breaches
    spc = [b for b in breaches if b.kind == "spc" and b.rule != "cusum_lower"]
    assert spc, "the drift must signal"
    for b in spc:
        assert b.site is None, (b.rule, b.cause_summary)
        assert b.policy is None, (b.rule, b.cause_summary)
        assert b.cause_summary is not None
        assert b.message.endswith(f"Cause: {b.cause_summary}")
    assert sum((b.cause_summary or "").startswith("queue-wide") for b in spc) >= len(spc) - 1
