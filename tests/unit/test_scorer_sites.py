"""Per-site counts in the scorer (services/scorer/sites.py): each subgroup's sites add up to
its totals through late data, revisions, duplicates and replays; at most
``sites_per_queue`` sites by name, the rest under ``(other)``; the snapshot's 24 h and 7 d
windows per site add up to the queue's."""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from services.ingest.validation import validate_items
from services.scorer.core import Output, Scorer
from services.scorer.state import Bucket, QueueState
from shared import batches, codec
from shared.events import OTHER_SITES, QualitySnapshot, SubgroupPoint
from tests.factories import T0, decision, verdict
from tests.unit.test_scorer_core import feed, settings

H = timedelta(hours=1)
START = int(T0.timestamp())


def sites_of(p: SubgroupPoint) -> dict[str, tuple[int, int, int]]:
    return {k: (c.decisions, c.n, c.errors) for k, c in p.sites.items()}


def adds_up(p: SubgroupPoint) -> None:
    """A subgroup's sites add up to its totals."""
    assert sum(c.decisions for c in p.sites.values()) == p.decisions, p
    assert sum(c.n for c in p.sites.values()) == p.n, p
    assert sum(c.errors for c in p.sites.values()) == p.errors, p


def windows_add_up(snap: QualitySnapshot) -> None:
    """A snapshot's sites add up to the queue's windows."""
    for w in ("24h", "7d"):
        n = sum(getattr(s, f"n_{w}") for s in snap.sites.values())
        assert n == getattr(snap, f"n_{w}"), (w, snap.sites)
        acc = getattr(snap, f"accuracy_{w}")
        if n:
            errors = sum(getattr(s, f"errors_{w}") for s in snap.sites.values())
            assert abs((1 - errors / n) - acc) < 1e-12


def reviewed(i: str, site: str, at: Any, correct: bool, lag: timedelta = H) -> list[dict[str, Any]]:
    return [decision(i, "q", at, site_id=site), verdict(i, "q", at + lag, correct=correct)]


def test_each_subgroup_counts_its_sites_and_the_snapshot_their_windows() -> None:
    sc = Scorer(settings(baseline_p={"q": 0.1}), {})
    items: list[dict[str, Any]] = []
    for i in range(30):
        items += reviewed(f"m{i}", "manila", T0 + timedelta(minutes=i), correct=i % 5 != 0)
    for i in range(10):
        items += reviewed(f"d{i}", "dublin", T0 + timedelta(minutes=i), correct=True)
    items.append(decision("u", "q", T0 + timedelta(minutes=50), site_id="dublin"))  # no QA yet
    items.append(decision("t", "q", T0 + 4 * H, site_id="austin"))  # closes the first hour
    out = feed(sc, items)
    (point,) = [p for p in out.points if p.start == T0]
    assert sites_of(point) == {"manila": (30, 30, 6), "dublin": (11, 10, 0)}
    adds_up(point)
    snap = out.snapshots[-1]
    assert set(snap.sites) == {"austin", "dublin", "manila"}  # austin: decisions, no verdicts
    m = snap.sites["manila"]
    assert (m.decisions_24h, m.n_24h, m.errors_24h) == (30, 30, 6)
    assert (m.decisions_7d, m.n_7d, m.errors_7d) == (30, 30, 6)
    assert (snap.sites["austin"].decisions_24h, snap.sites["austin"].n_24h) == (1, 0)
    windows_add_up(snap)


def test_only_random_samples_count_toward_a_sites_n() -> None:
    sc = Scorer(settings(), {})
    feed(sc, [
        decision(1, "q", site_id="manila"),
        verdict(1, "q", correct=False, sample_type="targeted"),
        decision(2, "q", site_id="manila"),
        verdict(2, "q", correct=False),
    ])  # fmt: skip
    assert sc.state("q").buckets[START].sites == {"manila": [2, 1, 1]}


def test_a_verdict_before_its_decision_counts_for_the_decisions_site() -> None:
    sc = Scorer(settings(), {})
    feed(sc, [verdict(1, "q", correct=False)])
    assert sc.state("q").buckets == {}
    feed(sc, [decision(1, "q", site_id="manila")])
    assert sc.state("q").buckets[START].sites == {"manila": [1, 1, 1]}


def test_duplicates_and_a_replayed_message_count_once_per_site() -> None:
    sc = Scorer(settings(), {})
    items = [decision(1, "q", site_id="manila"), verdict(1, "q", correct=False)]
    feed(sc, [*items, *items])
    feed(sc, items)
    batch = batches.group_by_queue(validate_items([*items, decision(2, "q")], None).events)[0]
    sc.process(batch, time.time(), (9, 1))
    sc.commit("q")
    assert sc.process(batch, time.time(), (9, 1)).skipped
    assert sc.state("q").buckets[START].sites == {"manila": [1, 1, 1], "dublin": [1, 0, 0]}


def test_late_verdicts_revise_the_sites_of_a_closed_subgroup() -> None:
    sc = Scorer(settings(baseline_p={"q": 0.05}), {})
    items: list[dict[str, Any]] = []
    for i in range(25):
        items += reviewed(f"a{i}", "manila", T0 + timedelta(minutes=i), correct=True)
    closed = feed(sc, [*items, decision("tick", "q", T0 + 5 * H)])
    (first,) = [p for p in closed.points if p.start == T0]
    assert sites_of(first) == {"manila": (25, 25, 0)}
    # hours later: verdicts of that hour's dublin decisions, and one decision whose verdict
    # was waiting for it
    late: list[dict[str, Any]] = []
    for i in range(5):
        late += reviewed(f"b{i}", "dublin", T0 + timedelta(minutes=30 + i), False, lag=6 * H)
    feed(sc, [verdict("c", "q", T0 + 6 * H, correct=False)])
    out = feed(sc, [*late, decision("c", "q", T0 + timedelta(minutes=59), site_id="austin")])
    (revised,) = [p for p in out.points if p.start == T0]
    assert revised.revision == first.revision + 1
    assert (revised.original_n, revised.n, revised.late) == (25, 31, 6)
    assert sites_of(revised) == {"manila": (25, 25, 0), "dublin": (5, 5, 5), "austin": (1, 1, 1)}
    adds_up(revised)


def test_sites_past_the_bound_are_summed_as_other() -> None:
    sc = Scorer(settings(sites_per_queue=2), {})
    items: list[dict[str, Any]] = []
    for k, site in enumerate(["dublin", "manila", "austin", "lagos", "dublin"]):
        items += reviewed(f"{k}", site, T0 + timedelta(minutes=k), correct=k != 3)
    out = feed(sc, [*items, decision("t", "q", T0 + 5 * H, site_id="manila")])
    assert sc.state("q").buckets[START].sites == {
        "dublin": [2, 2, 0], "manila": [1, 1, 0], OTHER_SITES: [2, 2, 1],
    }  # fmt: skip
    assert set(out.snapshots[-1].sites) == {"dublin", "manila", OTHER_SITES}
    assert sc.state("q").site_names == {"dublin", "manila"}


def test_a_site_gone_for_the_retained_week_frees_its_slot() -> None:
    sc = Scorer(settings(sites_per_queue=1), {})
    feed(sc, reviewed("old", "dublin", T0, correct=True))
    feed(sc, reviewed("x", "manila", T0 + 2 * H, correct=True))
    assert sc.state("q").buckets[START + 7200].sites == {OTHER_SITES: [1, 1, 0]}
    # nine days on: the batch that moves the watermark counts first, then expires dublin's
    # only bucket; manila is named from the next count on
    day9 = T0 + 9 * 24 * H
    feed(sc, [decision("tick", "q", day9, site_id="austin")])
    assert START not in sc.state("q").buckets
    feed(sc, reviewed("y", "manila", day9, correct=False))
    st = sc.state("q")
    assert st.buckets[int(day9.timestamp())].sites == {OTHER_SITES: [1, 0, 0], "manila": [1, 1, 1]}
    assert st.site_names == {"manila"}
    # the record rebuilds the same set, so a replay from it bounds the same way
    again = QueueState.from_dict(codec.loads(codec.dumps(st.to_dict())))
    assert again.site_names is None
    restarted = Scorer(settings(sites_per_queue=1), {"q|q": st.to_dict()})
    feed(restarted, reviewed("z", "austin", day9 + H, correct=True))
    assert restarted.state("q").buckets[int((day9 + H).timestamp())].sites == {
        OTHER_SITES: [1, 1, 0]
    }


def test_a_bucket_from_before_per_site_counts_reads_as_other() -> None:
    old = [40, 3, 50, 2, 0, {"under_enforcement": 3}, 0, 40, 3, "charted", {}]
    b = Bucket.from_list(old)
    assert b.sites == {OTHER_SITES: [50, 40, 3]}
    assert Bucket.from_list(b.to_list()) == b
    assert Bucket.from_list([0, 0, 0, 0, 0, {}, -1, 0, 0, "", {}]).sites == {}
    assert Bucket.from_list([1, 0, 0, 0, 0, {}, -1, 0, 0, ""]).sites == {OTHER_SITES: [0, 1, 0]}


SITES = ("dublin", "manila", "austin", "lagos")


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[list[dict[str, Any]]], int]:
    """Decisions over 30 hours and 4 sites, verdicts 0-12 h later (some before their
    decision, some duplicated, some not random), cut into batches in a jittered order."""
    n = draw(st.integers(1, 120))
    items: list[tuple[float, int, dict[str, Any]]] = []
    for i in range(n):
        at = T0 + timedelta(minutes=draw(st.integers(0, 30 * 60)))
        site = SITES[draw(st.integers(0, 3))]
        d = decision(i, "q", at, site_id=site)
        items.append((at.timestamp() + draw(st.integers(-3600, 3600)), 0, d))
        if draw(st.booleans()):
            lag = timedelta(minutes=draw(st.integers(1, 12 * 60)))
            v = verdict(i, "q", at + lag, correct=draw(st.booleans()),
                        sample_type=draw(st.sampled_from(["random", "random", "targeted"])))  # fmt: skip
            copies = draw(st.integers(1, 2))
            for _ in range(copies):
                items.append((at.timestamp() + lag.total_seconds() * draw(st.floats(0, 1)), 1, v))
    items.sort(key=lambda x: x[0])
    stream = [x[2] for x in items]
    size = draw(st.integers(1, 20))
    return [stream[k : k + size] for k in range(0, len(stream), size)], draw(st.integers(1, 4))


@given(streams())
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_per_site_counts_always_add_up_to_the_subgroup_and_the_windows(
    case: tuple[list[list[dict[str, Any]]], int],
) -> None:
    chunks, bound = case
    sc = Scorer(settings(sites_per_queue=bound, grace_seconds=3600), {})
    out = Output()
    for chunk in chunks:
        got = feed(sc, chunk, wall=T0.timestamp() + 40 * 3600)
        out.points += got.points
        out.snapshots += got.snapshots
    for p in out.points:
        adds_up(p)
        assert len([s for s in p.sites if s != OTHER_SITES]) <= bound
    for snap in out.snapshots:
        windows_add_up(snap)
        assert len([s for s in snap.sites if s != OTHER_SITES]) <= bound
    st_ = sc.state("q")
    for b in st_.buckets.values():
        assert [sum(c[k] for c in b.sites.values()) for k in range(3)] == [b.decisions, b.n, b.e]


def test_the_sites_of_a_random_day_add_up() -> None:
    """A larger run through Phase I and charting: every point and snapshot adds up."""
    rng = random.Random(8)
    sc = Scorer(settings(sites_per_queue=3), {})
    arrivals: dict[int, list[dict[str, Any]]] = {}  # by the hour they arrive in
    for hour in range(30):
        for i in range(60):
            at = T0 + hour * H + timedelta(seconds=rng.uniform(0, 3599))
            site = rng.choice(["dublin", "manila", "austin", "lagos", "lima"])
            lag = rng.choice([1, 2, 9])  # some after the subgroup closed (2 h of grace)
            d, v = reviewed(f"{hour}-{i}", site, at, rng.random() > 0.1, lag=lag * H)
            arrivals.setdefault(hour, []).append(d)
            arrivals.setdefault(hour + lag, []).append(v)
    out = Output()
    for hour in sorted(arrivals):
        got = feed(sc, arrivals[hour])
        out.points += got.points
        out.snapshots += got.snapshots
    assert any(OTHER_SITES in p.sites for p in out.points)
    assert any(p.revision > 0 for p in out.points)
    for p in out.points:
        adds_up(p)
    for snap in out.snapshots:
        windows_add_up(snap)
