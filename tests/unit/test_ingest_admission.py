"""Which queues ingest takes (services/ingest/admission.py), and how the HTTP API reports
and dead-letters the others: pure, with in-memory publishers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from services.ingest.admission import QueueGate, QueuePolicy, read_queue_file
from services.ingest.api import QueueAdmin, create_app
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import Publisher
from services.ingest.settings import IngestSettings
from shared.apikeys import AuthPolicy, KeyStore
from shared.events import Decision, Verdict
from tests.factories import decision, verdict


@pytest.mark.parametrize(
    ("mode", "allow", "queue", "how"),
    [
        ("admitted", [], "spam-en", None),
        ("admitted", ["spam-en"], "spam-en", "static"),
        ("admitted", ["spam-*"], "spam-de", "static"),
        ("admitted", ["spam-*"], "hate-de", None),
        ("admitted", ["spam-[de][en]"], "spam-en", "static"),
        ("admitted", ["spam-?"], "spam-en", None),
        ("allowlist", ["hate-en"], "hate-en", "static"),
        ("allowlist", [], "hate-en", None),
        ("open", [], "anything", "open"),
    ],
)
def test_policy_decides_by_the_static_list_and_mode(
    mode: Any, allow: list[str], queue: str, how: str | None
) -> None:
    assert QueuePolicy(mode, allow).how(queue) == how


def test_runtime_admission_counts_except_in_allowlist_mode() -> None:
    admitted, allowlist = QueuePolicy("admitted"), QueuePolicy("allowlist")
    for p in (admitted, allowlist):
        p.apply("new-q", {"admitted_by": "x"})
    assert admitted.how("new-q") == "runtime"
    assert allowlist.how("new-q") is None
    admitted.apply("new-q", None)  # removed
    assert admitted.how("new-q") is None
    assert "PUT /v1/queues/new-q" in admitted.refusal("new-q")
    assert "QW_INGEST_QUEUES=allowlist" in allowlist.refusal("new-q")


def test_open_mode_takes_at_most_open_max_distinct_queues() -> None:
    p = QueuePolicy("open", open_max=3)
    assert [p.admits(f"q{i}") for i in range(5)] == [True, True, True, False, False]
    assert p.admits("q1")  # one it took stays taken
    assert p.how("q9", take=False) is None
    assert p.counts()["open"] == 3
    assert "3 distinct queues already taken" in p.refusal("q4")
    p.apply("q4", {})  # admitted at run time: outside the bound
    assert p.how("q4") == "runtime"


def test_the_queue_file_and_settings_make_the_static_list(tmp_path: Path) -> None:
    assert read_queue_file("# ours\nspam-en\n\n  hate-* # all hate\n") == ["spam-en", "hate-*"]
    f = tmp_path / "queues.txt"
    f.write_text("cse-*\n")
    s = IngestSettings(queues_allow=["spam-en"], queues_file=f)
    assert s.queues == "admitted"  # the default
    assert s.queue_patterns() == ["spam-en", "cse-*"]
    with pytest.raises(ValueError, match="no such file"):
        IngestSettings(queues_file=tmp_path / "missing.txt")


async def test_gate_reads_the_log_to_its_end_before_refusing() -> None:
    policy = QueuePolicy("admitted")
    calls = 0

    async def catch_up() -> bool:  # the log holds an admission this process has not read
        nonlocal calls
        calls += 1
        policy.apply("late-q", {})
        return True

    gate = QueueGate(policy, catch_up)
    assert await gate.refused(["late-q", "other"]) == {"other"}
    assert calls == 1
    policy.apply("ok", {})
    assert await gate.refused(["ok"]) == set()
    assert calls == 1  # nothing unknown: no round trip


class MemoryPublisher:
    def __init__(self) -> None:
        self.events: list[Decision | Verdict] = []
        self.dead: list[dict[str, Any]] = []

    async def publish(self, events: Sequence[Decision | Verdict]) -> int:
        self.events.extend(events)
        return len(events)

    async def dead_letter(self, **record: Any) -> Any:
        self.dead.append(record)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def _app(
    policy: QueuePolicy, auth: AuthPolicy | None = None
) -> tuple[httpx.AsyncClient, MemoryPublisher, IngestMetrics]:
    pub = MemoryPublisher()
    metrics = IngestMetrics.create()

    async def admit(queue_id: str, by: str) -> None:
        policy.apply(queue_id, {"admitted_by": by})

    async def remove(queue_id: str) -> None:
        policy.apply(queue_id, None)

    app = create_app(
        cast(Publisher, pub), auth=auth, gate=QueueGate(policy),
        queue_admin=QueueAdmin(admit, remove), metrics=metrics,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://i"), pub, metrics


async def test_http_names_each_refused_item_and_dead_letters_it() -> None:
    c, pub, _ = _app(QueuePolicy("admitted", ["a"]))
    async with c:
        body = [decision(1, "a"), decision(2, "zz"), verdict(1, "a"), {"x": 1}, verdict(2, "zz")]
        r = await c.post("/v1/events", json=body)
        assert r.status_code == 422
        data = r.json()
        assert data["accepted"] == 2
        assert [x["index"] for x in data["rejected"]] == [1, 3, 4]
        refusal = data["rejected"][0]["errors"][0]
        assert refusal["type"] == "queue_not_admitted"
        assert refusal["loc"] == ["queue_id"]
        assert refusal["msg"].startswith("queue 'zz' is not admitted (QW_INGEST_QUEUES=admitted")
        text = (await c.get("/metrics")).text
    assert [e.queue_id for e in pub.events] == ["a", "a"]
    assert [d["key"] for d in pub.dead] == [b"zz", b"zz"]
    assert pub.dead[0]["source_topic"] is None
    assert b'"decision_id":"d2"' in pub.dead[0]["value"]  # the item, re-encoded
    assert 'qw_ingest_refused_events_total{reason="queue_not_admitted",source="http"} 2.0' in text
    assert 'qw_ingest_refused_events_total{reason="invalid",source="http"} 1.0' in text
    assert 'qw_ingest_accepted_events_total{source="http"} 2.0' in text
    assert "zz" not in text  # never a label


async def test_admission_over_http_then_removal() -> None:
    policy = QueuePolicy("admitted", ["static-q"])
    c, pub, _ = _app(policy)
    async with c:
        assert (await c.post("/v1/decisions", json=[decision(1, "new")])).status_code == 422
        r = await c.put("/v1/queues/new")
        assert r.status_code == 200
        assert r.json() == {"queue_id": "new", "admitted": True, "how": "runtime"}
        assert (await c.post("/v1/decisions", json=[decision(1, "new")])).status_code == 202
        listed = (await c.get("/v1/queues")).json()
        assert listed["runtime"] == ["new"]
        assert listed["static"] == ["static-q"]
        assert (await c.delete("/v1/queues/new")).json()["admitted"] is False
        assert (await c.delete("/v1/queues/new")).status_code == 404
        assert (await c.delete("/v1/queues/static-q")).status_code == 404  # static: not removable
        assert (await c.get("/v1/queues/static-q")).json()["how"] == "static"
        assert (await c.put("/v1/queues/bad%20id")).status_code == 422
    assert len(pub.events) == 1


async def test_allowlist_mode_refuses_runtime_admission() -> None:
    c, _, _ = _app(QueuePolicy("allowlist", ["a"]))
    async with c:
        r = await c.put("/v1/queues/b")
    assert r.status_code == 409
    assert "QW_INGEST_QUEUES=allowlist" in r.json()["detail"]


async def test_admission_needs_an_admin_key(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    _, admin = store.create("ops", ["admin"])
    _, producer = store.create("producer", ["ingest"])
    c, _, _ = _app(QueuePolicy("admitted"), AuthPolicy(store, "production", False))
    async with c:
        assert (await c.put("/v1/queues/q")).status_code == 401
        bearer = {"Authorization": f"Bearer {producer}"}
        assert (await c.put("/v1/queues/q", headers=bearer)).status_code == 403
        assert (await c.get("/v1/queues", headers=bearer)).status_code == 200
        r = await c.put("/v1/queues/q", headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200
        assert (await c.delete("/v1/queues/q", headers=bearer)).status_code == 403
