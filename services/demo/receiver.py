"""A Standard Webhooks receiver: the demo's and the tests' chat room. It is a real HTTP
server; each accepted alert is kept and handed to a callback, each id taken once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response

from services.alerts.webhook_policy import parse_secrets
from services.alerts.webhooks import ID_HEADER, verify
from shared import codec
from shared.codec import json_response

# Raises (any exception) unless the headers carry a valid signature of the body.
Verifier = Callable[[bytes, dict[str, str]], object]


@dataclass
class Inbox:
    secret: str  # whsec_<base64>, as in QW_ALERTS_WEBHOOK_SECRET
    received: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    on_alert: Callable[[dict[str, Any]], None] | None = None
    seen_keys: set[str] = field(default_factory=set)
    # another verifier (the tests pass the standardwebhooks package's); default ours
    verifier: Verifier | None = None
    # Alertmanager's notifications (``qwatch demo --alertmanager``): (receiver, alert) each
    notifications: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    on_notification: Callable[[str, dict[str, Any]], None] | None = None

    def app(self) -> FastAPI:
        app = FastAPI(title="webhook receiver")
        keys = parse_secrets(self.secret, production=False)

        def ours(body: bytes, headers: dict[str, str]) -> None:
            verify(keys, headers, body)

        check = self.verifier or ours

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                check(body, headers)
            except Exception as exc:  # any verifier's refusal
                self.rejected.append(f"{type(exc).__name__}: {exc}")
                return json_response({"detail": "invalid signature"}, status_code=401)
            key = headers.get(ID_HEADER, "")
            if key in self.seen_keys:
                return json_response({"status": "duplicate"}, status_code=200)
            self.seen_keys.add(key)
            payload: dict[str, Any] = codec.loads(body)
            self.received.append(payload)
            if self.on_alert is not None:
                self.on_alert(payload)
            return json_response({"status": "ok"}, status_code=200)

        @app.post("/alertmanager/{receiver}")
        async def alertmanager(receiver: str, request: Request) -> Response:
            """Alertmanager's webhook (unsigned: it is the demo's own, on loopback), one
            notification of a group; each alert in it is kept and handed on."""
            payload = codec.loads(await request.body())
            alerts = payload.get("alerts") if isinstance(payload, dict) else None
            if not isinstance(alerts, list):
                return json_response({"detail": "not an Alertmanager notification"}, 422)
            for alert in alerts:
                if isinstance(alert, dict):
                    self.notifications.append((receiver, alert))
                    if self.on_notification is not None:
                        self.on_notification(receiver, alert)
            return json_response({"status": "ok"}, status_code=200)

        return app

    def for_queue(self, queue_id: str, event: str = "firing") -> list[dict[str, Any]]:
        return [
            p for p in self.received if p["alert"]["queue_id"] == queue_id and p["event"] == event
        ]
