"""Grouping, subgroups, baselines and charts of ``shared.analysis.charts``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.analysis.charts import (
    ChartSpec,
    Exclusion,
    GroupChart,
    Period,
    analyze,
    parse_exclusions,
    parse_tz,
)
from shared.analysis.errors import OptionError
from shared.analysis.load import VerdictRow, load_verdicts

from .helpers import ORANGE_JUICE, orange_juice_csv, verdict_rows, write_csv


def oj_chart(tmp_path: Path, **options: Any) -> GroupChart:
    verdicts = load_verdicts(orange_juice_csv(tmp_path))
    (group,) = analyze(verdicts.rows, ChartSpec(**options))
    assert group.error is None, group.error
    return group


def test_montgomery_orange_juice_p_chart(tmp_path: Path) -> None:
    """Example 7.1: p̄ = 0.2313, UCL = 0.4102, LCL = 0.0524; samples 15 and 23 signal."""
    group = oj_chart(tmp_path)
    assert group.baseline is not None
    assert group.baseline.p_bar == pytest.approx(0.2313, abs=5e-5)
    assert [sg.n for sg in group.subgroups] == [50] * 30
    assert [sg.errors for sg in group.subgroups] == ORANGE_JUICE
    for pt in group.points:
        assert pt.ucl == pytest.approx(0.4102, abs=5e-5)
        assert pt.lcl == pytest.approx(0.0524, abs=5e-5)
        assert pt.center == pytest.approx(0.2313, abs=5e-5)
    beyond = [pt.index for pt in group.points if "ucl" in pt.signals or "lcl" in pt.signals]
    assert beyond == [15, 23]
    assert group.points[14].p == pytest.approx(0.44)
    # with the run rules off, those two are the only signals
    quiet = oj_chart(tmp_path, rules="none")
    assert [pt.index for pt in quiet.points if pt.signals] == [15, 23]


def test_montgomery_revised_limits_by_explicit_exclusion(tmp_path: Path) -> None:
    """Excluding 15 and 23 (assignable causes): p̄ = 0.2150, UCL 0.3893, LCL 0.0407."""
    group = oj_chart(tmp_path, exclude=parse_exclusions(["15,23"]), rules="none")
    assert group.baseline is not None
    assert group.baseline.p_bar == pytest.approx(0.2150, abs=5e-5)
    assert group.baseline.excluded == (15, 23)
    assert group.points[0].ucl == pytest.approx(0.3893, abs=5e-5)
    assert group.points[0].lcl == pytest.approx(0.0407, abs=5e-5)
    assert [pt.index for pt in group.points if pt.excluded] == [15, 23]
    # sample 21 (p = 0.40) is now above the revised UCL too, as Montgomery notes
    assert [pt.index for pt in group.points if "ucl" in pt.signals] == [15, 21, 23]


def test_np_chart_is_the_p_chart_on_the_count_scale(tmp_path: Path) -> None:
    p = oj_chart(tmp_path)
    np_ = oj_chart(tmp_path, chart="np")
    assert np_.points[0].center == pytest.approx(50 * p.points[0].center)
    assert p.points[0].ucl is not None
    assert np_.points[0].ucl == pytest.approx(50 * p.points[0].ucl)
    assert [pt.signals for pt in np_.points] == [pt.signals for pt in p.points]


def test_run_rules_use_the_standardized_points(tmp_path: Path) -> None:
    weco = oj_chart(tmp_path)
    assert "weco2" in weco.points[22].signals  # 20 then 24 errors: two beyond 2 sigma
    assert not any(s in ("weco1", "nelson1") for pt in weco.points for s in pt.signals)
    nelson = oj_chart(tmp_path, rules="nelson")
    assert any(s.startswith("nelson") for pt in nelson.points for s in pt.signals)
    wider = oj_chart(tmp_path, nsigmas=2.5)
    assert any("weco1" in pt.signals for pt in wider.points)  # rule 1 kept when L != 3


def test_phase1_freezes_the_baseline_and_judges_the_rest(tmp_path: Path) -> None:
    group = oj_chart(tmp_path, phase1=10, rules="none")
    assert group.baseline is not None
    assert group.baseline.source == "phase1"
    assert group.baseline.p_bar == pytest.approx(sum(ORANGE_JUICE[:10]) / 500)
    assert [pt.phase for pt in group.points] == ["I"] * 10 + ["II"] * 20
    with pytest.raises(OptionError, match="--phase1"):
        ChartSpec(phase1=0)


def test_exclusion_outside_phase1_is_a_group_error(tmp_path: Path) -> None:
    verdicts = load_verdicts(orange_juice_csv(tmp_path))
    (group,) = analyze(verdicts.rows, ChartSpec(phase1=10, exclude=(Exclusion(15),)))
    assert group.error is not None
    assert "no subgroup 15 in the 10 Phase I subgroups" in group.error


def test_standard_given_baseline(tmp_path: Path) -> None:
    group = oj_chart(tmp_path, baseline_rate=0.2, rules="none")
    assert group.baseline is not None
    assert group.baseline.source == "standard"
    assert group.points[0].center == 0.2
    assert {pt.phase for pt in group.points} == {"II"}
    with pytest.raises(OptionError, match="not both"):
        ChartSpec(baseline_rate=0.2, phase1=5)
    with pytest.raises(OptionError, match="no meaning with --baseline-rate"):
        ChartSpec(baseline_rate=0.2, exclude=(Exclusion(1),))
    with pytest.raises(OptionError, match="strictly between 0 and 1"):
        ChartSpec(baseline_rate=1.5)


def test_laney_ewma_and_cusum_charts(tmp_path: Path) -> None:
    laney = oj_chart(tmp_path, chart="laney")
    assert laney.baseline is not None
    assert laney.baseline.sigma_z is not None
    assert laney.baseline.sigma_z > 1  # the orange-juice data are overdispersed
    ewma = oj_chart(tmp_path, chart="ewma")
    assert ewma.design == {"lam": 0.1, "L": 2.814}
    assert ewma.baseline is not None
    assert ewma.points[0].statistic == pytest.approx(0.9 * ewma.baseline.p_bar + 0.1 * 12 / 50)
    cusum = oj_chart(tmp_path, chart="cusum")
    assert cusum.points[0].ucl == 5.0
    assert cusum.points[0].lcl == -5.0
    first = next(pt for pt in cusum.points if pt.signals)
    assert first.signals == ("ucl",)
    assert first.onset is not None
    assert first.onset <= first.index
    after = cusum.points[first.index]  # the chart restarts after a signal
    assert after.z is not None
    assert after.statistic == pytest.approx(max(0.0, after.z - 0.5))


def test_bernoulli_cusum_has_one_point_per_verdict(tmp_path: Path) -> None:
    group = oj_chart(tmp_path, chart="bernoulli-cusum")
    assert len(group.points) == 1500
    assert {pt.n for pt in group.points} == {1}
    assert group.design["p1"] == pytest.approx(2 * group.design["p0"])
    assert group.design["arl0"] >= 1000
    assert group.points[-1].subgroup == 30
    assert any(pt.signals == ("ucl",) for pt in group.points)
    assert any("false alarms are expected" in note for note in group.notes)
    designed = oj_chart(tmp_path, chart="bernoulli-cusum", h=3.0, p1=0.35)
    assert designed.design["h"] == pytest.approx(3.0, abs=0.1)


def test_groups_by_site_and_only(tmp_path: Path) -> None:
    rows = verdict_rows([1, 2], n=10, queue="a", site_id="manila") + verdict_rows(
        [0, 5], n=10, queue="b", site_id="dublin"
    )
    verdicts = load_verdicts(write_csv(tmp_path / "v.csv", rows))
    by_queue = analyze(verdicts.rows, ChartSpec())
    assert [g.group for g in by_queue] == ["a", "b"]
    by_site = analyze(verdicts.rows, ChartSpec(by="site"))
    assert [g.group for g in by_site] == ["dublin", "manila"]
    assert [g.group for g in analyze(verdicts.rows, ChartSpec(only=("b",)))] == ["b"]
    with pytest.raises(OptionError, match="no queue named 'zz'"):
        analyze(verdicts.rows, ChartSpec(only=("zz",)))
    with pytest.raises(OptionError, match="--by policy needs a policy_id column"):
        analyze(verdicts.rows, ChartSpec(by="policy"))


def test_a_group_that_cannot_be_charted_does_not_stop_the_others(tmp_path: Path) -> None:
    rows = verdict_rows([0, 0], n=10, queue="perfect") + verdict_rows([1, 2], n=10, queue="ok")
    verdicts = load_verdicts(write_csv(tmp_path / "v.csv", rows))
    ok, perfect = analyze(verdicts.rows, ChartSpec(chart="ewma"))
    assert perfect.group == "perfect"
    assert perfect.error is not None
    assert "needs 0 < p̄ < 1" in perfect.error
    assert ok.error is None
    assert ok.points


def test_periods_and_time_zones() -> None:
    t = datetime(2026, 11, 4, 23, 30, tzinfo=UTC)  # a Wednesday
    assert Period.parse("1d").floor(t, UTC) == datetime(2026, 11, 4, tzinfo=UTC)
    assert Period.parse("4h").floor(t, UTC) == datetime(2026, 11, 4, 20, tzinfo=UTC)
    assert Period.parse("1w").floor(t, UTC) == datetime(2026, 11, 2, tzinfo=UTC)
    manila = ZoneInfo("Asia/Manila")  # UTC+8: 23:30 UTC is already Thursday there
    assert Period.parse("1d").floor(t, manila) == datetime(2026, 11, 5, tzinfo=manila)
    assert parse_tz("UTC") is UTC
    for bad in ("5h", "2d", "1m", "day"):
        with pytest.raises(OptionError, match="bad period"):
            Period.parse(bad)
    with pytest.raises(OptionError, match="unknown time zone"):
        parse_tz("Mars/Olympus")


def test_subgroups_follow_the_period() -> None:
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    rows = [
        VerdictRow(i, "q", t0 + timedelta(hours=i * 7), i % 3 == 0) for i in range(12)
    ]  # 77 hours
    (daily,) = analyze(rows, ChartSpec(period=Period.parse("1d"), rules="none"))
    assert [sg.n for sg in daily.subgroups] == [4, 3, 4, 1]
    (hourly,) = analyze(rows, ChartSpec(period=Period.parse("1h"), rules="none"))
    assert len(hourly.subgroups) == 12  # periods without verdicts have no subgroup


def test_parse_exclusions() -> None:
    assert parse_exclusions(["15,23", "3-4", "spam-en:7"]) == (
        Exclusion(15),
        Exclusion(23),
        Exclusion(3),
        Exclusion(4),
        Exclusion(7, "spam-en"),
    )
    for bad in ("0", "x", "5-3"):
        with pytest.raises(OptionError, match="--exclude"):
            parse_exclusions([bad])
    with pytest.raises(OptionError, match=r"from the lower number up, e\.g\. 3-5"):
        parse_exclusions(["5-3"])
    # a range is bounded before it is built (1-1000000000 ate 2 GB in 30 s, then more)
    with pytest.raises(OptionError, match="at most 100,000 subgroups can be excluded"):
        parse_exclusions(["1-1000000000"])
    with pytest.raises(OptionError, match="at most 100,000"):
        parse_exclusions(["1-60000", "q:1-60000"])
    assert len(parse_exclusions(["1-100000"])) == 100_000


def test_an_exclusion_of_a_group_left_out_by_only_says_so(tmp_path: Path) -> None:
    rows = verdict_rows([1, 2], n=10, queue="a") + verdict_rows([0, 5], n=10, queue="b")
    verdicts = load_verdicts(write_csv(tmp_path / "v.csv", rows))
    spec = ChartSpec(only=("a",), exclude=parse_exclusions(["b:1"]))
    with pytest.raises(OptionError, match="no queue named 'b' among those --only charts"):
        analyze(verdicts.rows, spec)
    with pytest.raises(OptionError, match=r"no queue named 'c'$"):
        analyze(verdicts.rows, ChartSpec(exclude=parse_exclusions(["c:1"])))


def test_the_baseline_line_counts_the_subgroups_it_used(tmp_path: Path) -> None:
    rows = verdict_rows([1, 2, 1, 3], n=10, queue="a")
    verdicts = load_verdicts(write_csv(tmp_path / "v.csv", rows))
    (kept,) = analyze(verdicts.rows, ChartSpec(exclude=parse_exclusions(["2-3"])))
    assert kept.baseline is not None
    assert kept.baseline.describe().startswith("trial limits from 2 of 4 subgroups: p̄ = ")
    assert kept.baseline.describe().endswith(", excluding 2, 3")
    (every,) = analyze(verdicts.rows, ChartSpec())
    assert every.baseline is not None
    assert every.baseline.describe().startswith("trial limits from all 4 subgroups")


def test_repeated_or_overlapping_exclusions_count_once() -> None:
    """The bound counted `1-60000,1-60000` as 120,000 subgroups; it counts distinct ones
    (per group), each listed once, in the order first named, without building a range to
    count it."""
    assert len(parse_exclusions(["1-60000,1-60000"])) == 60_000
    assert len(parse_exclusions(["1-60000", "30000-100000", "100000", "7"])) == 100_000
    assert parse_exclusions(["5-7", "1-6", "9,6", "q:6", "3-10"]) == tuple(
        [Exclusion(i) for i in (5, 6, 7, 1, 2, 3, 4, 9)]
        + [Exclusion(6, "q"), Exclusion(8), Exclusion(10)]
    )
    # one group's subgroups and every group's are distinct entries
    with pytest.raises(OptionError, match="at most 100,000"):
        parse_exclusions(["1-60000", "q:1-60000"])
    with pytest.raises(OptionError, match=r"bad --exclude '2-100001': at most 100,000"):
        parse_exclusions(["1-60000", "1", "2-100001"])
    # still refused at once, without building the range
    started = time.perf_counter()
    for specs in (["1-1000000000"], ["1-50000", "1-1000000000,1-1000000000"]):
        with pytest.raises(OptionError, match="at most 100,000"):
            parse_exclusions(specs)
    assert time.perf_counter() - started < 1.0


def test_the_phase1_baseline_line_counts_the_subgroups_it_used(tmp_path: Path) -> None:
    """With --exclude, the Phase I line said "first 4 subgroups", not how many it used."""
    rows = verdict_rows([1, 2, 1, 3, 2, 2], n=10, queue="a")
    verdicts = load_verdicts(write_csv(tmp_path / "v.csv", rows))
    (kept,) = analyze(verdicts.rows, ChartSpec(phase1=4, exclude=parse_exclusions(["2"])))
    assert kept.baseline is not None
    assert kept.baseline.describe().startswith("Phase I: 3 of the first 4 subgroups: p̄ = ")
    assert kept.baseline.describe().endswith(", excluding 2")
    (every,) = analyze(verdicts.rows, ChartSpec(phase1=4))
    assert every.baseline is not None
    assert every.baseline.describe().startswith("Phase I: first 4 subgroups: p̄ = ")


def test_unknown_options_are_refused() -> None:
    with pytest.raises(OptionError, match="unknown chart 'xbar'; choose one of p, np"):
        ChartSpec(chart="xbar")
    with pytest.raises(OptionError, match="unknown rule set"):
        ChartSpec(rules="iso")
    with pytest.raises(OptionError, match="unknown --by"):
        ChartSpec(by="moderator")
    with pytest.raises(OptionError, match="--lam"):
        ChartSpec(lam=1.5)
    assert ChartSpec(chart="p", lam=0.2).ignored_options() == ["--lam"]
