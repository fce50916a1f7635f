"""What a backfill is for, end to end: a new installation learns its baselines from history.

An export of three days ago (decisions and QA verdicts, as the simulator makes them, with
duplicates) goes through the real ``qwatch backfill`` command into the raw topics of a fresh
installation, whose ingest, scorer and alerts run as processes on the broker. Once the
scorer has read it, every queue's baseline is frozen from a Phase I *in that history*, not
from a day of live traffic; its counts are the export's exactly (each id once); and the
Phase I's verdicts and errors are the export's random verdicts of its subgroups.

(It found ingest cutting a queue's large poll into batches by position: the first batch
held every verdict, hours ahead of most decisions, and 27 of a Phase I's 588 verdicts came
late. ``shared/batches.py``, ``aligned``.)
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.demo.orchestrator import Services, wait_http
from services.simulator.model import SimConfig, Simulation
from shared.admission import admit_all
from shared.settings import KafkaSettings
from tests.e2e.test_pipeline import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

HOURS = 40
PHASE1 = 10
HOUR = 3600


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize("services_start", ["before", "after"])
async def test_a_backfilled_history_freezes_each_queues_baseline(
    kafka_settings: KafkaSettings, tmp_path: Path, services_start: str
) -> None:
    """``services_start``: before the backfill (the load counted as it is sent), or after it
    (the load, 40 hours of history, read as a backlog in several of ingest's polls). With
    ingest's verdicts paused only after a poll was handled, as before 2026-12-06, ``after``
    failed here: a poll's verdicts ran hours ahead of the decisions, and some verdicts came
    late (a trial of 2026-12-05 found 92-172 of 14,413 late so)."""
    start = (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    # verdicts within ~4 h of their decision (a lognormal lag of median 1 h), so none misses
    # the grace period of its subgroup and the Phase I holds every one of its random verdicts
    cfg = SimConfig(
        seed=23, queues=2, decisions_per_hour=300, random_qa_rate=0.2, start=start,
        qa_lag_median_s=HOUR, qa_lag_sigma=0.3, duplicate_rate=0.02,
    )  # fmt: skip
    events = [ev for _, ev in Simulation(cfg).events(HOURS * HOUR)]
    export = tmp_path / "history.ndjson"
    export.write_text("".join(json.dumps(ev) + "\n" for ev in events))

    # the truth, per queue: each id once; the Phase I's random verdicts by their decision's hour
    decided: dict[str, float] = {}
    decisions: dict[str, set[str]] = defaultdict(set)
    verdicts: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for ev in events:
        if ev["kind"] == "decision":
            decisions[ev["queue_id"]].add(ev["decision_id"])
            decided[ev["decision_id"]] = _epoch(ev["decided_at"])
        else:
            verdicts[ev["queue_id"]][ev["verdict_id"]] = ev
    assert len(events) > sum(map(len, decisions.values())) + sum(map(len, verdicts.values()))

    ports = {name: free_port() for name in ("ingest", "alerts")}
    env = {
        **kafka_settings.as_env(),
        "QW_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'qw.db'}",
        "QW_INGEST_PORT": str(ports["ingest"]),
        "QW_ALERTS_PORT": str(ports["alerts"]),
        "QW_SCORER_PHASE1_SUBGROUPS": str(PHASE1),
        "QW_SCORER_GRACE_SECONDS": str(4 * HOUR),
        "QW_SCORER_DATA_DIR": str(tmp_path / "scorer"),
    }
    services = Services(env, tmp_path / "logs")

    async def start_services() -> None:
        for name in ("ingest", "scorer", "alerts"):
            services.start(name)
        await wait_http(f"http://127.0.0.1:{ports['ingest']}/healthz", services)
        await wait_http(f"http://127.0.0.1:{ports['alerts']}/healthz", services)

    try:
        if services_start == "before":
            await start_services()
        await admit_all(kafka_settings, decisions, by="test")

        loaded = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.cli", "backfill", str(export),
             "--state-dir", str(tmp_path / "backfill")],
            env=services.env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        said = loaded.stdout + loaded.stderr
        assert loaded.returncode == 0, said
        assert (
            f"history.ndjson: loaded, {len(events):,} rows: {len(events):,} events sent, 0 rejected"
            in said
        ), said
        if services_start == "after":
            await start_services()

        deadline = time.monotonic() + 240
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['alerts']}") as client:
            while True:
                services.check()
                queues = {q["queue_id"]: q for q in (await client.get("/v1/queues")).json()}
                snaps = {qid: q["snapshot"] for qid, q in queues.items()}
                if set(snaps) == set(decisions) and all(
                    s["decisions_total"] == len(decisions[qid])
                    and s["verdicts_total"] == len(verdicts[qid])
                    and s["baseline_state"] == "frozen"
                    for qid, s in snaps.items()
                ):
                    break
                assert time.monotonic() < deadline, json.dumps(snaps, indent=1)[:4000]
                await asyncio.sleep(1)
            history = {
                qid: (await client.get(f"/v1/queues/{qid}/baselines")).json() for qid in decisions
            }
    finally:
        services.stop()

    for qid, snap in snaps.items():
        assert snap["baseline_source"] == "estimated", snap
        assert snap["phase1_subgroups"] == PHASE1, snap
        assert snap["pending_verdicts"] == 0, snap
        assert snap["rejected_items"] == 0, snap
        assert snap["late_verdicts_total"] == 0, snap  # (each verdict in its subgroup's grace)
        frozen = [b for b in history[qid]["baselines"] if b["status"] == "frozen"]
        assert len(frozen) == 1, history[qid]
        base = frozen[0]
        # frozen in the history (event time three days ago), from its first PHASE1 hours
        frozen_at = _epoch(base["frozen_at"])
        assert start.timestamp() + PHASE1 * HOUR <= frozen_at < start.timestamp() + HOURS * HOUR
        assert base["subgroups"] == PHASE1, base
        end = start.timestamp() + PHASE1 * HOUR
        phase1 = [
            v for v in verdicts[qid].values()
            if v["sample_type"] == "random" and decided[v["decision_id"]] < end
        ]  # fmt: skip
        errors = sum(v["outcome"] == "incorrect" for v in phase1)
        assert (base["baseline_n"], base["baseline_errors"]) == (len(phase1), errors), json.dumps(
            [base, {k: v for k, v in snap.items() if k not in ("sites", "site_cusums")}]
        )
        assert base["baseline_p"] == pytest.approx(errors / len(phase1), rel=1e-9), base
