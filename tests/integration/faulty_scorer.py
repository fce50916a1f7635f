"""The real scorer worker with one injected bug: scoring a batch that holds a decision whose
id is ``FAULT_ID`` raises. Run as ``python -m tests.integration.faulty_scorer`` (same
environment as ``qwatch scorer``); a test of the stream glue's handling of any exception in
``Scorer.process``, which the admission guard leaves no event of its own to trigger."""

from __future__ import annotations

from typing import Any

from services.scorer.core import Output, Scorer

FAULT_ID = "d-inject-fault"
_process = Scorer.process


def _faulty(self: Scorer, batch: Any, *args: Any, **kwargs: Any) -> Output:
    out = _process(self, batch, *args, **kwargs)  # half-way: staged, not committed
    decisions = batch["decisions"]  # v3: columns; v1, v2: an object per event
    if isinstance(decisions, dict):
        ids = decisions.get("decision_id", [])
    else:
        ids = [d.get("decision_id") for d in decisions if isinstance(d, dict)]
    if FAULT_ID in ids:
        raise RuntimeError("injected fault")
    return out


def main() -> None:
    Scorer.process = _faulty  # type: ignore[method-assign]
    from services.cli import scorer

    scorer()


if __name__ == "__main__":
    main()
