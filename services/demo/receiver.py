"""A webhook receiver that verifies QualityWatch signatures: the demo's and the tests' chat
room. It is a real HTTP server; each accepted alert is kept and handed to a callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response

from services.alerts.webhooks import SIGNATURE_HEADER, SignatureError, verify
from shared import codec
from shared.codec import json_response


@dataclass
class Inbox:
    secret: str
    received: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    on_alert: Callable[[dict[str, Any]], None] | None = None
    seen_keys: set[str] = field(default_factory=set)

    def app(self) -> FastAPI:
        app = FastAPI(title="webhook receiver")

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            try:
                verify(self.secret, request.headers.get(SIGNATURE_HEADER), body)
            except SignatureError as exc:
                self.rejected.append(str(exc))
                return json_response({"detail": str(exc)}, status_code=401)
            key = request.headers.get("Idempotency-Key", "")
            if key in self.seen_keys:
                return json_response({"status": "duplicate"}, status_code=200)
            self.seen_keys.add(key)
            payload: dict[str, Any] = codec.loads(body)
            self.received.append(payload)
            if self.on_alert is not None:
                self.on_alert(payload)
            return json_response({"status": "ok"}, status_code=200)

        return app

    def for_queue(self, queue_id: str, event: str = "firing") -> list[dict[str, Any]]:
        return [
            p for p in self.received if p["alert"]["queue_id"] == queue_id and p["event"] == event
        ]
