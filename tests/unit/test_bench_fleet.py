"""bench/fleet.py on a tiny fleet: the traffic it sends, and its accounting of false alarms,
delays and episodes, through the real pure Scorer."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pytest

from bench import fleet
from services.scorer.settings import ScorerSettings

TINY = fleet.FleetConfig(
    queues=2, days=1.5, seed=3, shifts=(0.5,), drift_days=0.5, rate_min=800, rate_max=1200
)


def test_the_traffic_has_late_duplicate_and_targeted_events() -> None:
    cfg = fleet.FleetConfig(queues=1, days=4, seed=5, shifts=())
    rate, _, end, batches = fleet.queue_traffic(cfg, 0, None)
    assert end == fleet.T0 + 4 * fleet.DAY  # no drift: control only
    decisions = [d for _, b in batches for d in b["decisions"]]
    verdicts = [v for _, b in batches for v in b["verdicts"]]
    ids = [d["decision_id"] for d in decisions]
    assert len(ids) > len(set(ids))  # duplicated decisions
    vids = [v["verdict_id"] for v in verdicts]
    assert len(vids) > len(set(vids))  # duplicated verdicts
    random_share = sum(v["sample_type"] == "random" for v in verdicts) / len(verdicts)
    assert 0.85 < random_share < 0.95
    per_day = sum(v["sample_type"] == "random" for v in verdicts) / 4
    assert per_day == pytest.approx(rate, rel=0.15)
    times = [at for at, _ in batches]
    assert times == sorted(times)
    # a batch holds only what arrived by its end, in event time
    for at, b in batches:
        for v in b["verdicts"]:
            assert datetime.fromisoformat(v["reviewed_at"]).timestamp() <= at


def test_a_huge_drift_is_always_caught_and_a_quiet_budget_raises_nothing() -> None:
    """5% -> 50% on every queue: caught, within a few dozen drifted verdicts, by the CUSUM
    or the p-chart. A budget of one false alarm in a million days: in control, nothing."""
    quiet = ScorerSettings(false_alarms_per_day=1e-6)
    results = fleet.run_fleet(TINY, settings=quiet)
    assert len(results) == 2
    for r in results:
        assert r.shift == 0.5
        assert r.control_breaches == []
        assert r.delay_verdicts is not None
        assert r.delay_hours is not None
        assert 0 < r.delay_verdicts < 200
        assert 0 < r.delay_hours < 12
        assert r.first_rule in ("cusum_upper", "p_chart_ucl")
        assert r.control_days == pytest.approx((r.drift_start - fleet.T0) / fleet.DAY)
        assert r.drift_breaches[0][0] >= r.drift_start
        # a drift that lasts holds one incident open, however often the CUSUM re-signals
        assert len(r.drift_incidents) == 1
        assert len(r.drift_breaches) > 1
        assert r.control_incidents == []
    s = fleet.summarise(TINY, results, wall=500)
    assert s.alarms == 0
    assert s.control_episodes == 0
    d = s.per_shift[0.5]
    assert d["caught"] == 2
    assert d["v50"] == min(r.delay_verdicts or 0 for r in results)  # nearest rank
    assert d["episodes_mean"] >= 1
    assert (d["incidents_mean"], d["incidents_max"], d["incidents_over_1"]) == (1, 1, 0)
    assert s.control_incidents == 0


def test_a_generous_budget_raises_false_alarms_and_they_are_counted() -> None:
    """Budget 1,000 a day for one queue: every CUSUM is at its ARL0 floor of 100 verdicts,
    so an in-control day of ~1,000 verdicts raises dozens; each is counted by rule, and the
    wall's rate is the queue-days' rate times the wall."""
    cfg = fleet.FleetConfig(queues=1, days=1, seed=1, shifts=(), rate_min=1000, rate_max=1000)
    loud = ScorerSettings(false_alarms_per_day=1000, expected_queues=1)
    (r,) = fleet.run_fleet(cfg, settings=loud)
    rules = {rule for _, rule in r.control_breaches}
    assert {"cusum_upper", "cusum_lower"} <= rules
    s = fleet.summarise(cfg, [r], wall=500)
    assert s.alarms == len(r.control_breaches) == sum(s.by_rule.values())
    assert s.queue_days == pytest.approx(1.0)
    assert s.per_shift == {}
    assert 1 <= s.control_episodes <= s.alarms
    # signals every hundred verdicts on both sides: one incident that never recovers
    assert s.control_incidents == len(r.control_incidents) == 1


def test_episodes_group_breaches_closer_than_the_gap() -> None:
    h = fleet.HOUR
    assert fleet.episodes([], 12 * h) == 0
    assert fleet.episodes([0, 5 * h, 16 * h], 12 * h) == 1  # each within 12 h of the last
    assert fleet.episodes([0, 13 * h, 14 * h, 40 * h], 12 * h) == 3
    assert fleet.quantile([3, 1, math.inf, 2], 0.5) == 2
    assert fleet.quantile([3, 1, math.inf, 2], 0.9) == math.inf


def test_the_command_writes_results_and_summarises_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.jsonl"
    args = ["--queues", "1", "--days", "0.5", "--drift-days", "0.25", "--shifts", "0.5"]
    assert fleet.main([*args, "--rate-min", "2000", "--rate-max", "2000", "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert "| 5% -> 50.0% | 1 | 1 |" in first
    assert fleet.main([*args, "--summarise", str(out)]) == 0
    again = capsys.readouterr().out
    assert again.split("\n\n", 1)[1] == first.split("\n\n", 1)[1]  # the same tables
    with pytest.raises(SystemExit):
        fleet.main(["--queues", "0"])


def test_estimated_baselines_learn_a_phase1_over_unequal_sites_and_run_site_charts() -> None:
    """--estimated: no configured baseline. Each queue learns its Phase I from its own
    traffic (no chart before it, so its in-control days start when the baseline freezes),
    over sites of unequal sizes and error rates, and a queue busy enough runs site charts;
    a huge drift is still caught."""
    cfg = fleet.FleetConfig(
        queues=1, days=2, seed=2, shifts=(0.5,), drift_days=0.5, rate_min=3000,
        rate_max=3000, estimated=True,
    )  # fmt: skip
    _, _, _, batches = fleet.queue_traffic(cfg, 0, 0.5)
    per_site: dict[str, int] = {}
    for _, b in batches:
        for d in b["decisions"]:
            per_site[d["site_id"]] = per_site.get(d["site_id"], 0) + 1
    assert set(per_site) == {"s0", "s1", "s2"}
    assert max(per_site.values()) > 1.2 * min(per_site.values())  # unequal sizes
    (r,) = fleet.run_fleet(cfg)
    assert r.phase1 is not None
    n, e = r.phase1
    assert 1000 < n < 5000
    assert 0 < e < n
    assert r.site_charts >= 2
    assert 0 < r.control_days < 2 - 0.5  # Phase I took its day (24 hourly subgroups)
    assert r.delay_verdicts is not None
    assert r.first_rule in ("cusum_upper", "cusum_site_upper", "p_chart_ucl")
    s = fleet.summarise(cfg, [r], wall=500)
    assert s.queue_days == pytest.approx(r.control_days)


def test_the_command_takes_estimated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "e.jsonl"
    args = ["--queues", "1", "--days", "1.5", "--drift-days", "0.25", "--shifts", "0.5"]
    rates = ["--rate-min", "2000", "--rate-max", "2000"]
    assert fleet.main([*args, *rates, "--estimated", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "estimated baselines: 1 of 1 queues left Phase I" in printed
    (r,) = fleet.load_results(str(out))
    assert r.phase1 is not None
    assert r.site_charts >= 2


def test_a_below_target_breach_of_a_queue_truly_below_target_is_no_false_alarm() -> None:
    """With --estimated the sites' mix sets each queue's true rate (site_mix, its own
    stream): a below-target breach is false only where the queue's true accuracy meets
    the target; every other rule's breach in control is false."""
    cfg = fleet.FleetConfig(queues=1, estimated=True)
    share, level = fleet.site_mix(cfg, 0)
    assert share.sum() == pytest.approx(1.0)
    assert fleet.true_rate(cfg, 0) == pytest.approx(float(share @ level))
    assert fleet.true_rate(fleet.FleetConfig(), 0) == 0.05  # configured: p0
    r = fleet.QueueResult(0, 1000.0, None, 5.0)
    r.control_breaches = [(1.0, fleet.BELOW_TARGET), (2.0, "cusum_upper")]
    p = fleet.true_rate(cfg, 0)
    assert fleet.false_alarms(cfg, r, target=1 - p / 2) == [(2.0, "cusum_upper")]  # truly below
    assert fleet.false_alarms(cfg, r, target=1 - 2 * p) == r.control_breaches
    s = fleet.summarise(cfg, [r], wall=500, target=1 - p / 2)
    assert (s.alarms, s.true_below_target) == (1, 1)
