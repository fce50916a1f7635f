"""The demo's terminal view: readable at 100 columns, error rates only (as the alerts say
them), worst first, Phase I
shown as learning, nothing that gives the drifted queue away; a plain line for logs."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from services.demo.orchestrator import plain_line, queue_rows, render, scored_through
from services.simulator.run import SimProgress


def _queue(qid: str, band: str, score: float | None, **snap: Any) -> dict[str, Any]:
    base = {
        "accuracy_24h": 0.95, "n_24h": 4_000, "baseline_p": 0.05, "ewma": 0.05,
        "subgroups_closed": 30,
    }  # fmt: skip
    return {"queue_id": qid, "snapshot": {**base, **snap}, "health": {"band": band, "score": score}}


QUEUES = [
    _queue("trust-spam-en-long-name", "green", 97.0),
    _queue("trust-hate-de", "red", 41.0, accuracy_24h=0.891, ewma=0.14),
    _queue("trust-new-fr", "insufficient_data", None, baseline_p=None, phase1_subgroups=3),
    _queue("trust-nudity-es", "amber", 72.0),
]


def _text(width: int = 100) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    prog = SimProgress()
    console.print(render(prog, QUEUES, ["FIRING   12:00:00 trust-hate-de p_chart_ucl: x"], 16))
    return out.getvalue()


def test_fits_in_100_columns_and_hides_the_drift() -> None:
    text = _text()
    assert max(len(line) for line in text.splitlines()) <= 100, text
    assert "drift" not in text.lower()
    assert "learning (3/16)" in text
    table = text.split("alerts received")[0]
    for col in ("error", "24h", "95%", "interval", "baseline", "recent", "error rates:"):
        assert col in table
    # error rates, as the alerts say them: no accuracy beside them
    assert "acc" not in table.lower()
    assert "89.1%" not in table


def test_rows_worst_first_with_text_bands_and_error_rates() -> None:
    rows = queue_rows(QUEUES, 16)
    assert [r[0] for r in rows] == [
        "trust-hate-de", "trust-nudity-es", "trust-spam-en-long-name", "trust-new-fr",
    ]  # fmt: skip
    red = rows[0]
    assert "ALERT" in red[1]
    assert red[2] == "10.9%"  # 1 - accuracy 24h 89.1%
    assert red[5] == "5.0%"  # baseline error rate
    assert red[6] == "14.0%"  # recent = the EWMA of the error rate
    lo, hi = (float(x.rstrip("%")) for x in red[3].split("-"))
    assert lo < 10.9 < hi
    assert rows[3][5] == "-"  # in Phase I: no baseline yet


def test_plain_line_counts_queues_by_status_and_names_the_worst_error_rate() -> None:
    line = plain_line(SimProgress(), QUEUES, 16)
    for part in ("1 ALERT", "1 learning", "1 ok", "1 watch"):
        assert part in line
    assert "worst trust-hate-de: error rate 24h 10.9%, baseline 5.0%, recent 14.0%" in line
    assert "acc" not in line
    assert "[" not in line  # no markup in a log line
    learning = [q for q in QUEUES if q["snapshot"]["baseline_p"] is None]
    assert "worst" not in plain_line(SimProgress(), learning, 16)


def test_the_progress_says_how_far_the_scorer_has_scored() -> None:
    """On a busy machine the scorer falls behind the simulator: the line says so, beside the
    simulator's clock (a new user saw '+34.0 h' for minutes while nothing past +20 h was
    scored, then '0 alerts' with no word of why)."""
    start = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    prog = SimProgress(sim_time=start + 34 * 3600, sim_start=start)
    behind = [
        {**q, "snapshot": {**q["snapshot"], "as_of": datetime.fromtimestamp(start + h * 3600, UTC).isoformat()}}
        for q, h in zip(QUEUES, (20.5, 21.0, 20.0, 30.0), strict=True)
    ]  # fmt: skip
    assert scored_through(behind, start) == 20.0
    assert "(+34.0 h, scored +20.0 h)" in plain_line(prog, behind, 16)
    assert scored_through(QUEUES, start) is None  # a queue without as_of yet: not said
    assert "scored" not in plain_line(prog, QUEUES, 16)
