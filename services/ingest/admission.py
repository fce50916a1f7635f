"""Which queues ingest takes events for: known queues only (``QW_INGEST_QUEUES``).

A queue id becomes a Kafka key, scorer state, database rows, metric series and a wall tile;
a grammar alone lets anyone who can send an event create as many as they like. Three modes:

* ``admitted`` (the default): the static list (``QW_INGEST_QUEUES_ALLOW``,
  ``QW_INGEST_QUEUES_FILE``) plus the queues admitted at run time by an authenticated call
  (``PUT /v1/queues/{id}``, scope ``admin``; ``qwatch queues admit``), which every ingest
  process follows on ``qw.queues.v1`` (``shared/admission.py``).
* ``allowlist``: the static list only; run-time admission is refused.
* ``open``: any queue, up to ``QW_INGEST_QUEUES_OPEN_MAX`` distinct ones per process, then
  only those (for a trial; every process counts its own, and a restart forgets them).

``QueuePolicy`` is the decision, pure; ``QueueGate`` adds the barrier on the admitted-queues
log, so an event sent after its queue's admission was acknowledged is never refused for it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

QueueMode = Literal["allowlist", "admitted", "open"]
HOW = Literal["static", "runtime", "open"]

_GLOB = re.compile(r"[*?\[]")
_MEMO_MAX = 100_000  # queue ids a glob admitted, remembered (a bound on a set we keep)


def read_queue_file(text: str) -> list[str]:
    """One queue id or glob a line; blank lines and ``#`` comments ignored."""
    out = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            out.append(entry)
    return out


class QueuePolicy:
    """Whether a queue is admitted, and why not. Pure: the run-time set is handed in."""

    def __init__(self, mode: QueueMode, allow: Iterable[str] = (), open_max: int = 1000) -> None:
        self.mode: QueueMode = mode
        self.allow = tuple(dict.fromkeys(allow))
        self._exact = {p for p in self.allow if not _GLOB.search(p)}
        globs = [fnmatch.translate(p) for p in self.allow if _GLOB.search(p)]
        self._glob = re.compile("|".join(globs)) if globs else None
        self._memo: set[str] = set()  # ids a glob matched
        self.open_max = open_max
        self.runtime: dict[str, dict[str, Any]] = {}  # admitted at run time: its record
        self.seen: set[str] = set()  # open mode: the distinct queues taken so far

    # -- the decision ---------------------------------------------------------------------
    def how(self, queue_id: str, *, take: bool = True) -> HOW | None:
        """How ``queue_id`` is admitted, or None. In open mode an unseen queue is taken while
        there is room, unless ``take`` is False (a look, not an event)."""
        if queue_id in self._exact or queue_id in self._memo:
            return "static"
        if queue_id in self.runtime and self.mode != "allowlist":
            return "runtime"
        if self._glob is not None and self._glob.fullmatch(queue_id):
            if len(self._memo) < _MEMO_MAX:
                self._memo.add(queue_id)
            return "static"
        if self.mode == "open" and queue_id in self.seen:
            return "open"
        if self.mode == "open" and take and len(self.seen) < self.open_max:
            self.seen.add(queue_id)
            return "open"
        return None

    def admits(self, queue_id: str) -> bool:
        return self.how(queue_id) is not None

    def refusal(self, queue_id: str) -> str:
        """Why ``queue_id`` is refused, and what would admit it."""
        q = f"queue {queue_id!r} is not admitted"
        if self.mode == "allowlist":
            return f"{q} (QW_INGEST_QUEUES=allowlist: add it to QW_INGEST_QUEUES_ALLOW or the file)"
        if self.mode == "open":
            return (
                f"{q} (QW_INGEST_QUEUES=open: {self.open_max} distinct queues already taken, "
                f"QW_INGEST_QUEUES_OPEN_MAX; admit it with `qwatch queues admit {queue_id}` or "
                f"PUT /v1/queues/{queue_id})"
            )
        return (
            f"{q} (QW_INGEST_QUEUES=admitted: admit it with `qwatch queues admit {queue_id}` or "
            f"PUT /v1/queues/{queue_id})"
        )

    def error(self, queue_id: str) -> dict[str, Any]:
        """The item error of a refused event, as ingest reports errors."""
        return {"loc": ["queue_id"], "msg": self.refusal(queue_id), "type": "queue_not_admitted"}

    # -- the run-time set -----------------------------------------------------------------
    @property
    def runtime_admission(self) -> bool:
        return self.mode != "allowlist"

    def apply(self, queue_id: str, record: dict[str, Any] | None) -> None:
        """A record of the admitted-queues log: admitted (its record) or removed (None)."""
        if record is None:
            self.runtime.pop(queue_id, None)
        else:
            self.runtime[queue_id] = record

    def counts(self) -> dict[str, int]:
        """Admitted queues by how: static ids (globs not counted), run time, open."""
        return {"static": len(self._exact), "runtime": len(self.runtime), "open": len(self.seen)}


class QueueGate:
    """The policy, and the admitted-queues log's barrier (``catch_up``: None without a log)."""

    def __init__(
        self, policy: QueuePolicy, catch_up: Callable[[], Awaitable[bool]] | None = None
    ) -> None:
        self.policy = policy
        self._catch_up = catch_up

    async def refused(self, queue_ids: Iterable[str]) -> set[str]:
        """The queues among ``queue_ids`` that are not admitted, read after the log caught up
        (one round trip, and only when some queue looked unknown)."""
        distinct = set(queue_ids)
        unknown = {q for q in distinct if not self.policy.admits(q)}
        if unknown and self._catch_up is not None:
            await self._catch_up()
            unknown = {q for q in unknown if not self.policy.admits(q)}
        return unknown
