"""Per-site health in the alerts service: each site against its target (QW_SITE_TARGETS,
else the queue's) over 24 h and 7 d, with the Wilson interval and P(accuracy >= target) of
the statistics library; the ``site`` filter of ``GET /v1/queues``; two bounded per-queue
metrics, never a series per site."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from services.alerts.api import create_app
from services.alerts.consumer import export_snapshot
from services.alerts.health import WEIGHTS, against_target, health, site_health
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings
from services.alerts.view import HealthView
from shared.events import OTHER_SITES, QualitySnapshot, SiteWindows
from shared.settings import KafkaSettings, QualitySettings
from shared.stats.intervals import prob_at_least, wilson_interval
from tests.alerts_cases import NOW, make_snapshot, sqlite_sessions


def windows(n: int, errors: int, n7: int | None = None, errors7: int | None = None) -> SiteWindows:
    n7 = n if n7 is None else n7
    e7 = errors if errors7 is None else errors7
    return SiteWindows(
        decisions_24h=n * 4, n_24h=n, errors_24h=errors, decisions_7d=n7 * 4, n_7d=n7,
        errors_7d=e7,
    )  # fmt: skip


def snap(queue: str, sites: dict[str, SiteWindows], accuracy: float = 0.95) -> QualitySnapshot:
    return make_snapshot(queue, 3, []).model_copy(
        update={"accuracy_24h": accuracy, "n_24h": 500, "sites": sites}
    )


TARGETS = QualitySettings(
    accuracy_target=0.9, site_targets={"manila": 0.92, "hate-en/manila": 0.95, "dublin": 0.8}
)


def test_a_window_against_its_target_is_the_librarys_wilson_and_posterior() -> None:
    w = against_target(412, 49, 0.92, 0.95, decisions=2000)
    ci = wilson_interval(363, 412, 0.95)
    assert (w.n, w.errors, w.decisions) == (412, 49, 2000)
    assert w.accuracy == pytest.approx(363 / 412)
    assert w.interval == (ci.lower, ci.upper)
    assert w.prob_at_least_target == prob_at_least(363, 412, 0.92)
    assert w.below_target_with_confidence is (ci.upper < 0.92)
    assert w.below_target_with_confidence  # 88.1%, upper bound 90.9%
    ok = against_target(412, 10, 0.92, 0.95)
    assert not ok.below_target_with_confidence
    assert ok.prob_at_least_target is not None
    assert ok.prob_at_least_target > 0.99
    empty = against_target(0, 0, 0.92, 0.95)
    assert (empty.accuracy, empty.interval, empty.prob_at_least_target) == (None, None, None)
    assert not empty.below_target_with_confidence


@pytest.mark.parametrize(
    ("queue", "site", "target", "source"),
    [
        ("hate-en", "manila", 0.95, "queue_site"),  # the queue's own contract wins
        ("spam-en", "manila", 0.92, "site"),
        ("spam-en", "lagos", 0.9, "queue"),
        ("spam-en", OTHER_SITES, 0.9, "queue"),
    ],
)
def test_a_sites_target_is_its_queues_then_its_own_then_the_queues(
    queue: str, site: str, target: float, source: str
) -> None:
    assert TARGETS.site_target(queue, site) == (target, source)


@pytest.mark.parametrize(
    ("targets", "says"),
    [
        ({"manila": 1.0}, "'manila': the target 1.0 must be in (0, 1)"),
        ({"manila": 0}, "must be in (0, 1)"),
        ({"manila": True}, "'manila': the target must be a number, not True"),
        ({"manila": "0.9"}, "must be a number"),
        ({"a/b/c": 0.9}, "key 'a/b/c': expected `site` or `queue/site`"),
        ({"(other)": 0.9}, "key '(other)'"),
        ({"/manila": 0.9}, "key '/manila'"),
        ({"q/": 0.9}, "key 'q/'"),
    ],
)
def test_site_targets_refuse_what_they_cannot_mean(targets: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as err:
        QualitySettings(site_targets=targets)
    assert says in str(err.value)


def test_too_many_site_targets_are_refused() -> None:
    with pytest.raises(ValidationError, match="10001 site targets, at most 10000"):
        QualitySettings(site_targets={f"s{i}": 0.9 for i in range(10_001)})


def test_the_environment_sets_site_targets_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QW_SITE_TARGETS", '{"manila": 0.93, "q-1/manila": 0.97}')
    s = AlertsSettings(kafka=KafkaSettings())
    assert s.quality.site_target("q-1", "manila") == (0.97, "queue_site")
    assert s.quality.site_target("q-2", "manila") == (0.93, "site")


def test_each_site_is_reported_against_its_target_over_a_day_and_a_week() -> None:
    s = snap("hate-en", {
        "manila": windows(400, 60, 2800, 210),  # 85% today, 92.5% this week: target 95%
        "dublin": windows(300, 12),
        OTHER_SITES: windows(20, 1),
        "austin": windows(0, 0, 50, 2),  # nothing reviewed today
    })  # fmt: skip
    sites = site_health(s, TARGETS.site_target, 0.95, 30)
    assert [x.site for x in sites] == ["austin", "dublin", "manila", OTHER_SITES]
    by = {x.site: x for x in sites}

    def by_site(s: QualitySnapshot) -> dict[str, Any]:
        return {x.site: x for x in site_health(s, TARGETS.site_target, 0.95, 30)}

    m = by["manila"]
    assert (m.target, m.target_source) == (0.95, "queue_site")
    assert (m.last_24h.n, m.last_24h.errors, m.last_24h.decisions) == (400, 60, 1600)
    assert m.last_24h.accuracy == pytest.approx(0.85)
    assert m.last_24h.below_target_with_confidence
    assert m.last_7d.below_target_with_confidence  # 92.5% over 2,800: still under 95%
    assert m.last_24h.prob_at_least_target == prob_at_least(340, 400, 0.95)
    assert "site manila, target 95.0%: 24h accuracy 85.0%" in m.explanation
    assert "below target with confidence" in m.explanation
    assert "P(>= target) <1%" in m.explanation  # never "0%": it is not impossible
    assert "P(>= target) >99%" in by_site(s)["dublin"].explanation
    d = by["dublin"]
    assert (d.target, d.target_source, d.last_24h.below_target_with_confidence) == (
        0.8,
        "site",
        False,
    )
    assert by[OTHER_SITES].target_source == "queue"
    assert "too few verdicts to say (need 30)" in by[OTHER_SITES].explanation
    a = by["austin"]
    assert (a.last_24h.n, a.last_24h.accuracy) == (0, None)
    assert "24h: no random QA verdicts" in a.explanation
    # the queue's health carries them, and its own P(accuracy >= target)
    h = health(
        s, target=0.9, min_sample=30, age_s=0, stale_after_s=300, firing=[],
        site_target=TARGETS.site_target,
    )  # fmt: skip
    assert h.sites == sites
    assert h.prob_at_least_target == prob_at_least(475, 500, 0.9)
    assert health(s, target=0.9, min_sample=30, age_s=0, stale_after_s=300, firing=[]).sites == []
    # a queue with too little data overall still lists its sites
    thin = s.model_copy(update={"n_24h": 3, "accuracy_24h": 1.0})
    h = health(
        thin, target=0.9, min_sample=30, age_s=0, stale_after_s=300, firing=[],
        site_target=TARGETS.site_target,
    )  # fmt: skip
    assert h.band == "insufficient_data"
    assert h.sites == sites


def test_a_site_below_its_target_with_confidence_makes_the_band_red_and_is_named() -> None:
    """A partner site failing its contract with confidence is a red condition even while the
    queue meets its own target and the score says amber; the explanation names the site.
    The ``(other)`` aggregate and a site under ``min_sample`` verdicts never count."""
    targets = QualitySettings(accuracy_target=0.9, site_targets={"dublin": 0.95})
    dublin = windows(412, 107)  # 74.0% against 95%: the upper bound is far under the target
    s = snap("hate-en", {"dublin": dublin, "manila": windows(400, 8)}, accuracy=0.95)

    def of(s: QualitySnapshot, firing: list[str]) -> Any:
        return health(
            s, target=0.9, min_sample=30, age_s=0, stale_after_s=300, firing=firing,
            site_target=targets.site_target,
        )  # fmt: skip

    r = of(s, ["cusum_site_upper", "cusum_site_upper"])  # two sites' CUSUMs: one rule
    assert 60 <= sum(WEIGHTS[k] * v for k, v in r.components.items()) < 80  # amber by its parts
    assert (r.score, r.band) == (59.0, "red")  # capped: the score says what the band says
    assert r.firing_alerts == ["cusum_site_upper"]
    assert r.band_reason is not None
    assert r.band_reason.startswith("site dublin below target 95.0%: 74.0% (upper 95% bound ")
    assert not r.below_target_with_confidence  # the queue itself meets its target
    assert (
        "site dublin: 24h accuracy 74.0% is below its 95.0% target with confidence (n=412)"
        in r.explanation
    )
    assert "site manila" not in r.explanation
    quiet = of(s, [])  # no alert at all (score 100): the site alone makes it red
    assert quiet.components == {"accuracy": 100.0, "stability": 100.0, "freshness": 100.0}
    assert (quiet.score, quiet.band) == (59.0, "red")  # never 100 beside a red band
    assert quiet.band_reason == r.band_reason
    assert f"score capped at 59 (red): {quiet.band_reason}" in quiet.explanation
    # without the per-site targets (no site_target), the band is the score's
    assert health(s, target=0.9, min_sample=30, age_s=0, stale_after_s=300, firing=[]).band == (
        "green"
    )
    # the (other) aggregate of unnamed sites is no partner site: never red for it
    other = snap("hate-en", {OTHER_SITES: dublin, "manila": windows(400, 8)}, accuracy=0.95)
    assert (of(other, []).band, "site (other)" in of(other, []).explanation) == ("green", False)
    # too few verdicts at the site to say, even if its bound is under the target
    thin = snap("hate-en", {"dublin": windows(20, 20), "manila": windows(400, 8)}, accuracy=0.95)
    day = site_health(thin, targets.site_target, 0.95, 30)[0].last_24h
    assert day.below_target_with_confidence
    assert of(thin, []).band == "green"


def test_a_band_reason_names_the_failing_sites_before_what_the_tile_shows() -> None:
    """A wall cuts the reason after two lines, and the tile shows the 24h accuracy already:
    with several sites failing, their names come first, then the queue's line, then each."""
    targets = QualitySettings(accuracy_target=0.9)
    bad = windows(400, 100)  # 75%
    s = snap(
        "cse-pt", {"austin": bad, "dublin": bad, "manila": bad, "lisbon": windows(400, 8)},
        accuracy=0.80,
    )  # fmt: skip
    r = health(
        s, target=0.9, min_sample=30, age_s=0, stale_after_s=300, firing=[],
        site_target=targets.site_target,
    )  # fmt: skip
    assert r.band == "red"
    assert r.band_reason is not None
    first, second, *each = r.band_reason.split("; ")
    assert first == "sites austin, dublin, manila below target"
    assert second.startswith("24h accuracy 80.0% below target 90.0%")
    assert [w.split(" below")[0] for w in each] == ["site austin", "site dublin", "site manila"]


def settings(**kw: Any) -> AlertsSettings:
    return AlertsSettings(kafka=KafkaSettings(), quality=TARGETS, **kw)


def ids(bodies: list[bytes]) -> list[str]:
    return [json.loads(b)["queue_id"] for b in bodies]


def test_the_list_filters_by_site_pages_and_tags() -> None:
    view = HealthView(settings(), clock=lambda: NOW.timestamp())
    with_manila = [f"q-{i:02d}" for i in range(0, 12, 2)]
    queues = {q: snap(q, {"manila": windows(100, 5)} if q in with_manila else {"dublin": windows(50, 1)}) for q in [f"q-{i:02d}" for i in range(12)]}  # fmt: skip
    queues["q-99"] = snap("q-99", {OTHER_SITES: windows(10, 0)})
    view.apply([(s, NOW) for s in queues.values()])
    first = view.page(limit=4, site="manila")
    assert ids(first.bodies) == with_manila[:4]
    assert first.next_after == with_manila[3]
    rest = view.page(limit=4, site="manila", after=first.next_after)
    assert (ids(rest.bodies), rest.next_after) == (with_manila[4:], None)
    assert ids(view.page(limit=100, site="dublin").bodies) == [
        q for q in sorted(queues) if q not in with_manila and q != "q-99"
    ]
    assert view.page(limit=100, site="lagos").bodies == []
    assert len(view.page(limit=100, site="manila", bands=["green", "amber"]).bodies) == 6
    # the ETag follows the filtered page's bytes: a site's counts change, so do they
    tag = view.page(limit=4, site="manila").etag
    view.apply([(snap("q-01", {"dublin": windows(50, 2)}), NOW)])  # not on the page
    assert view.page(limit=4, site="manila").etag == tag
    view.apply([(snap("q-02", {"manila": windows(100, 30)}), NOW)])
    assert view.page(limit=4, site="manila").etag != tag
    served = json.loads(view.page(limit=1, site="manila").bodies[0])
    assert served["health"]["sites"][0]["site"] == "manila"
    assert served["snapshot"]["sites"]["manila"]["n_24h"] == 100


async def test_the_api_takes_a_site_and_refuses_one_outside_the_grammar(tmp_path: Path) -> None:
    async with sqlite_sessions(tmp_path) as sessions:
        view = HealthView(settings(), sessions)
        view.apply([
            (snap("a", {"manila": windows(100, 5)}), NOW),
            (snap("b", {"dublin": windows(100, 5)}), NOW),
        ])  # fmt: skip
        view.loaded = True
        app = create_app(settings(), sessions, Metrics.create(CollectorRegistry()), view=view)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            r = await client.get("/v1/queues", params={"site": "manila"})
            assert r.status_code == 200
            assert [q["queue_id"] for q in r.json()] == ["a"]
            (site,) = r.json()[0]["health"]["sites"]
            assert (site["site"], site["target"], site["target_source"]) == ("manila", 0.92, "site")
            again = await client.get(
                "/v1/queues",
                params={"site": "manila"},
                headers={"If-None-Match": r.headers["etag"]},
            )
            assert again.status_code == 304
            for bad in ("(other)", "a/b", "", "x" * 129):
                r = await client.get("/v1/queues", params={"site": bad})
                assert r.status_code == 422, bad
            one = await client.get("/v1/queues/a/health")
            assert one.json()["health"]["sites"][0]["last_7d"]["n"] == 100


def test_metrics_count_sites_per_queue_and_never_label_a_site() -> None:
    m = Metrics.create(CollectorRegistry())
    s = AlertsSettings(kafka=KafkaSettings(), quality=TARGETS)
    many = {f"site-{i:02d}": windows(100, 2) for i in range(32)}
    many["manila"] = windows(400, 60)  # below its 92% with confidence
    many[OTHER_SITES] = windows(300, 60)  # below the queue's 90% with confidence
    export_snapshot(m, snap("q", many), s, ["p_chart_ucl"])
    assert m.registry.get_sample_value("qw_queue_sites", {"queue": "q"}) == 33
    # the named sites below target: manila; (other) is no site with a contract, never one
    assert m.registry.get_sample_value("qw_queue_sites_below_target", {"queue": "q"}) == 1
    labels = {k for fam in m.registry.collect() for smp in fam.samples for k in smp.labels}
    assert "site" not in labels  # (tests/unit/test_alerts_metrics.py: the series bound)
    m.forget_queue("q")
    assert m.registry.get_sample_value("qw_queue_sites", {"queue": "q"}) is None
