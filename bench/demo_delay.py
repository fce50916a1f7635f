"""How long after its drift the demo's drifted queue is alerted: the demo's own traffic
(``qwatch demo`` defaults: seed 7, 20 queues, one site of one queue 24 points less accurate
from simulated hour 22) through the pure ``Scorer``, in batches of ``--batch-s`` simulated
seconds, without a broker.

    .venv/bin/python bench/demo_delay.py [--batch-s 300] [--hours 34]

Prints when the first drifted random verdict is emitted and each breach of the drifted queue
(simulated hours from the start, and its message), then the delay from that verdict to the
first alert. Settings as the demo sets them (hourly subgroups, grace 4 h, Phase I of 16).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from services.demo.orchestrator import DemoOptions
from services.scorer.core import Scorer
from services.scorer.settings import ScorerSettings
from services.simulator.model import Drift, SimConfig, Simulation, queue_profiles
from shared import batches
from shared.events import Decision, Verdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-s", type=float, default=300.0)
    ap.add_argument("--hours", type=float, default=34.0)
    args = ap.parse_args()
    opts = DemoOptions()
    queue = queue_profiles(SimConfig(seed=opts.seed, queues=opts.queues))[3].queue_id
    drift = Drift(queue, opts.drift_at_h * 3600, opts.drift_delta, opts.drift_site)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=args.hours
    )
    cfg = SimConfig(
        seed=opts.seed, queues=opts.queues, decisions_per_hour=opts.decisions_per_hour,
        random_qa_rate=opts.random_qa_rate, drifts=(drift,), start=start,
    )  # fmt: skip
    scorer = Scorer(
        ScorerSettings(subgroup_seconds=3600, grace_seconds=4 * 3600, phase1_subgroups=16), {}
    )
    t0, drift_t = start.timestamp(), start.timestamp() + drift.at_s
    buf: list[dict[str, Any]] = []
    offset = 0
    first_verdict: float | None = None
    first_alert: float | None = None
    decided: dict[str, tuple[str, float]] = {}
    # random verdicts of drifted decisions emitted so far, and of them incorrect: the
    # evidence any detector could have had, counted when the first alert came out
    drifted = [0, 0]
    at_alert: list[int] = []

    def flush() -> None:
        nonlocal buf, offset, first_alert, at_alert
        if not buf:
            return
        decisions = [Decision(**e).model_dump(mode="json") for e in buf if "decided_at" in e]
        verdicts = [Verdict(**e).model_dump(mode="json") for e in buf if "reviewed_at" in e]
        batch = batches.EventBatch(v=1, queue_id=queue, decisions=decisions, verdicts=verdicts)
        out = scorer.process(batch, time.time(), (0, offset))
        offset += 1
        scorer.commit(queue)
        for entry in scorer.unsent(queue):
            scorer.acked(queue, entry.seq)
        for b in out.breaches:
            at = (b.detected_at.timestamp() - t0) / 3600
            if first_alert is None:
                first_alert, at_alert = at, list(drifted)
            print(f"+{at:.2f} h {b.rule}: {b.message}")
        buf = []

    next_flush = t0 + args.batch_s
    seen: set[str] = set()
    drifted_at: list[float] = []
    for emit, event in Simulation(cfg).events(args.hours * 3600):
        if event.get("queue_id") != queue:
            continue
        event = {k: v for k, v in event.items() if k != "kind"}
        if "decided_at" in event:
            when = datetime.fromisoformat(event["decided_at"]).timestamp()
            decided[event["decision_id"]] = (event["site_id"], when)
        elif event.get("sample_type") == "random" and event["verdict_id"] not in seen:
            seen.add(event["verdict_id"])
            site, when = decided.get(event["decision_id"], ("", 0.0))
            if site == drift.site_id and when >= drift_t:
                drifted[0] += 1
                drifted_at.append((emit - t0) / 3600)
                drifted[1] += event["outcome"] == "incorrect"
                if first_verdict is None:
                    first_verdict = (emit - t0) / 3600
                    print(f"+{first_verdict:.2f} h first drifted random verdict emitted")
        while emit >= next_flush:
            flush()
            next_flush += args.batch_s
        buf.append(event)
    flush()
    if first_verdict is not None and first_alert is not None:
        print(f"queue {queue}: first alert {first_alert - first_verdict:.2f} simulated hours "
              f"after the first drifted verdict, {first_alert - drift.at_s / 3600:.2f} after "
              "the drift began")  # fmt: skip
        print(f"by then {at_alert[0]} random verdicts of drifted decisions of site "
              f"{drift.site_id} had been emitted ({at_alert[1]} incorrect); QA lag: "
              "log-normal, median 2 h")  # fmt: skip
        soon = sum(t <= first_verdict + 1.5 for t in drifted_at)
        print(f"(within 1.5 h of the first drifted verdict: {soon} of them)")


if __name__ == "__main__":
    main()
