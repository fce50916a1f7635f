"""``qwatch baseline``: reset a queue's baseline after a policy change or a migration, and
read its audit trail, through the alerts service's API (``services/alerts/baselines.py``).

    qwatch baseline reset spam-en --reason "policy spam.v4 in force (CHG-1234)"
    qwatch baseline list spam-en

The API's address is ``--api`` or ``QW_ALERTS_URL`` (default ``http://127.0.0.1:8002``, or the
port of ``QW_ALERTS_PORT`` where that is set: the one the alerts service listens on); the
key (scope ``admin`` to reset) ``--key`` or ``QW_API_KEY``. A reset is sent with an
``Idempotency-Key`` of its own and retried with it (up to ``RETRIES`` times, on no answer or
a 503), so however often it is tried, the queue is reset once.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime
from typing import Annotated, Any

import httpx
import typer

from shared.ids import KEY_ID_DESCRIPTION, is_key_id

baseline_app = typer.Typer(
    name="baseline", help="Reset a queue's baseline (a new Phase I), and its audit trail.",
    no_args_is_help=True,
)  # fmt: skip
RETRIES = 3
DEFAULT_API = "http://127.0.0.1:8002"

Api = Annotated[
    str | None,
    typer.Option(
        help=f"the alerts service (QW_ALERTS_URL; default {DEFAULT_API}, on QW_ALERTS_PORT "
        "where set)"
    ),
]
Key = Annotated[str | None, typer.Option(help="an API key (QW_API_KEY)")]


def _client(api: str | None, key: str | None) -> httpx.Client:
    token = key or os.environ.get("QW_API_KEY")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = api or os.environ.get("QW_ALERTS_URL") or _local_api()
    return httpx.Client(base_url=base, headers=headers, timeout=30.0, trust_env=False)


def _local_api() -> str:
    """The alerts service on this machine, on the port it takes from QW_ALERTS_PORT."""
    port = os.environ.get("QW_ALERTS_PORT", "").strip()
    if not port:
        return DEFAULT_API
    if not port.isdigit() or not 0 < int(port) < 65536:
        typer.echo(f"qwatch: QW_ALERTS_PORT={port!r} is not a port (1-65535)", err=True)
        raise typer.Exit(2)
    return f"http://127.0.0.1:{int(port)}"


def _refused(r: httpx.Response) -> typer.Exit:
    try:
        detail: Any = r.json().get("detail", r.text)
    except ValueError:
        detail = r.text
    if isinstance(detail, list):  # a 422: each bad field
        detail = "; ".join(f"{'.'.join(map(str, d['loc'][1:]))}: {d['msg']}" for d in detail)
    # the API's words for its fields, as this command's options
    detail = str(detail).replace("replace_configured=true", "--replace-configured")
    typer.echo(f"qwatch: {r.status_code}: {detail}", err=True)
    return typer.Exit(1)


def _queue(queue_id: str) -> str:
    if not is_key_id(queue_id):
        raise typer.BadParameter(f"{queue_id[:60]!r} is not a queue id ({KEY_ID_DESCRIPTION})")
    return queue_id


@baseline_app.command("reset")
def reset(
    queue: Annotated[str, typer.Argument(help="the queue id", callback=_queue)],
    reason: Annotated[str, typer.Option(help="why: kept in the audit trail")],
    effective_at: Annotated[
        str | None,
        typer.Option(
            help="when the change took effect (ISO 8601 with a zone); the new Phase I learns "
            "from the first subgroup starting then. Default: now (the queue's latest events)"
        ),
    ] = None,
    replace_configured: Annotated[
        bool, typer.Option(help="reset a queue whose baseline is configured (a standard)")
    ] = False,
    api: Api = None,
    key: Key = None,
) -> None:
    """Start a new Phase I for QUEUE: the queue shows 'learning (n/N)' until it has learnt
    its new baseline; its chart alerts resolve; the below-target rule keeps applying."""
    body: dict[str, Any] = {"reason": reason, "replace_configured": replace_configured}
    if effective_at is not None:
        try:
            when = datetime.fromisoformat(effective_at)
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            typer.echo(
                "qwatch: --effective-at: ISO 8601 with a time zone, e.g. 2026-11-25T10:00:00Z",
                err=True,
            )
            raise typer.Exit(2)
        body["effective_at"] = when.isoformat()
    headers = {"Idempotency-Key": f"qwatch-{uuid.uuid4().hex}"}
    with _client(api, key) as client:
        for attempt in range(1, RETRIES + 1):
            try:
                r = client.post(f"/v1/queues/{queue}/baseline:reset", json=body, headers=headers)
            except httpx.HTTPError as exc:
                if attempt == RETRIES:
                    typer.echo(f"qwatch: no answer from {client.base_url}: {exc}", err=True)
                    raise typer.Exit(2) from None
            else:
                if r.status_code != 503 or attempt == RETRIES:
                    break
            time.sleep(attempt)
    if r.status_code != 202:
        raise _refused(r)
    got = r.json()
    typer.echo(
        f"baseline reset of {queue} asked by {got['actor']} (request {got['request_id']}): "
        f"the scorer starts a new Phase I within seconds; 'qwatch baseline list {queue}' "
        "shows it"
    )


@baseline_app.command("list")
def list_baselines(
    queue: Annotated[str, typer.Argument(help="the queue id", callback=_queue)],
    api: Api = None,
    key: Key = None,
) -> None:
    """QUEUE's baselines, newest first: who reset it, when, why, and what each froze."""
    with _client(api, key) as client:
        try:
            r = client.get(f"/v1/queues/{queue}/baselines")
        except httpx.HTTPError as exc:
            typer.echo(f"qwatch: no answer from {client.base_url}: {exc}", err=True)
            raise typer.Exit(2) from None
    if r.status_code != 200:
        raise _refused(r)
    found = r.json()["baselines"]
    if not found:
        typer.echo(f"{queue}: no baseline yet (nothing scored, or its first Phase I not begun)")
    for b in found:
        epoch = "-" if b["epoch"] is None else str(b["epoch"])
        p = "" if b["baseline_p"] is None else f" p={b['baseline_p']:.2%} from {b['subgroups']}"
        who = f" by {b['actor']}: {b['reason']}" if b["actor"] else ""
        when = b["requested_at"] or b["frozen_at"] or ""
        mark = "*" if b["current"] else " "
        typer.echo(f"{mark}{epoch:>3} {b['status']:<9} {when}{who}{p}")
