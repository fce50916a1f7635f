"""Path (b) of ``bench/pipeline.py``: Quix Streams doing the per-queue hourly count.

    <quix venv>/bin/python bench/pipeline_quix.py BOOTSTRAP TOPIC GROUP STATE_DIR

Runs in its own virtualenv (``bench/pipeline.py`` creates it with the pinned
``quixstreams``); imports nothing of the project. The topic's records are keyed by queue, so
a tumbling window of one hour, counted per key, with RocksDB state (Quix's default store) and
at-least-once processing, is the per-queue hourly count. Event time is the record's own
``decided_at`` / ``reviewed_at``; a grace of 12 hours keeps late events in their window.
Runs until SIGTERM (Quix stops gracefully on it).
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from quixstreams import Application  # type: ignore[import-not-found,unused-ignore]

HOUR_MS = 3600 * 1000


def event_time(value: Any, headers: Any, timestamp: int, timestamp_type: Any) -> int:
    t = value.get("decided_at") or value["reviewed_at"]
    return int(datetime.fromisoformat(t).timestamp() * 1000)


def main(bootstrap: str, topic_name: str, group: str, state_dir: str) -> None:
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        state_dir=state_dir,
        # the default is 5 s; 1 s keeps the committed offsets (what the bench times) close
        # behind the processing
        commit_interval=1.0,
        loglevel="WARNING",
    )
    topic = app.topic(topic_name, value_deserializer="json", timestamp_extractor=event_time)
    sdf = app.dataframe(topic)
    sdf = sdf.tumbling_window(HOUR_MS, grace_ms=12 * HOUR_MS).count().final()
    app.run()


if __name__ == "__main__":
    main(*sys.argv[1:5])
