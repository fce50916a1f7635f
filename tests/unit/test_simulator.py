from __future__ import annotations

from itertools import islice

from services.ingest.validation import validate_items
from services.simulator.model import Drift, SimConfig, Simulation, queue_profiles


def test_reproducible_by_seed() -> None:
    a = list(islice(Simulation(SimConfig(seed=3)).events(6 * 3600), 2000))
    b = list(islice(Simulation(SimConfig(seed=3)).events(6 * 3600), 2000))
    c = list(islice(Simulation(SimConfig(seed=4)).events(6 * 3600), 2000))
    assert a == b
    assert a != c


def test_events_are_valid_and_in_emit_order() -> None:
    events = list(Simulation(SimConfig(queues=5, decisions_per_hour=300)).events(8 * 3600))
    times = [t for t, _ in events]
    assert times == sorted(times)
    result = validate_items([e for _, e in events], None)
    assert result.errors == []
    kinds = {e["kind"] for _, e in events}
    assert kinds == {"decision", "verdict"}


def test_realistic_accuracy_and_drift() -> None:
    cfg = SimConfig(queues=4, decisions_per_hour=3000, random_qa_rate=0.2, seed=5)
    q = queue_profiles(cfg)[0]
    for profile in queue_profiles(cfg):
        assert 0.92 <= profile.accuracy <= 0.975
    sim = Simulation(SimConfig(queues=4, decisions_per_hour=3000, random_qa_rate=0.2, seed=5,
                               drifts=(Drift(q.queue_id, 0.0, -0.15),)))  # fmt: skip
    n = e = 0
    for _, ev in sim.events(6 * 3600):
        if (
            ev["kind"] == "verdict"
            and ev["queue_id"] == q.queue_id
            and ev["sample_type"] == "random"
        ):
            n += 1
            e += ev["outcome"] == "incorrect"
    assert n > 1000
    assert abs((1 - e / n) - (q.accuracy - 0.15)) < 0.04


def test_verdicts_follow_their_decisions_by_the_qa_lag() -> None:
    from datetime import datetime

    decided = {}
    lags = []
    for _, ev in Simulation(SimConfig(queues=2, decisions_per_hour=2000, seed=1)).events(12 * 3600):
        if ev["kind"] == "decision":
            decided[ev["decision_id"]] = datetime.fromisoformat(ev["decided_at"])
        elif ev["decision_id"] in decided:
            lags.append(
                (
                    datetime.fromisoformat(ev["reviewed_at"]) - decided[ev["decision_id"]]
                ).total_seconds()
            )
    lags.sort()
    median = lags[len(lags) // 2]
    assert 1.5 * 3600 < median < 2.5 * 3600


def test_simulate_refuses_arguments_outside_their_range_before_the_broker() -> None:
    from typer.testing import CliRunner

    from services.cli import app

    runner = CliRunner(env={"QW_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    for args, says in (
        (["--queues", "-1"], "--queues"),
        (["--hours", "-1"], "--hours"),
        (["--speed", "-5"], "--speed"),
        (["--drift", "nosuch:1:0.5"], "not a simulated queue"),
        (["--drift", "hate-en:1:5"], "DELTA in [-1, 1]"),
    ):
        r = runner.invoke(app, ["simulate", *args])
        assert r.exit_code == 2, (args, r.output)
        assert says in r.output, (args, r.output)
