"""Push QualityWatch's alerts to Prometheus Alertmanager (API v2, ``POST /api/v2/alerts``).

Alertmanager then does what it is best at: routing by team and severity, grouping,
inhibition, silences, maintenance time intervals and its receivers (Slack, PagerDuty, e-mail,
Opsgenie, webhooks). See docs/operations.md for the labels and a routing tree.

What is pushed comes from the incident and alert tables the consumer keeps
(services/alerts/db.py), read only: every alert that paged (not suppressed) of an open
incident, with ``endsAt`` a few resend intervals ahead, and of every incident resolved within
that horizon, with ``endsAt`` = the incident's resolution time plus a hold
(``alertmanager_resolve_hold_s``: the pushed alert inhibits Prometheus' rule on the same
signals until Prometheus has seen them end). An incident is one queue's
trouble: its alerts are its detectors' signals, and they end together. The whole set goes to each Alertmanager whenever it changed, and at least
every ``QW_ALERTS_ALERTMANAGER_RESEND_S`` otherwise, so:

- Alertmanager keeps a firing alert while pushes keep coming, and lets it end on its own
  (``endsAt``) when no replica has pushed for four resend intervals;
- a failed push (refused, timed out, unreachable) is counted in
  ``qw_alertmanager_pushes_total{outcome="error"}`` and simply retried with backoff; the
  consumer never waits for it (this task only reads the database);
- several replicas push the same alerts: harmless, Alertmanager identifies an alert by its
  label set and merges them;
- a restart loses nothing: the state is the table, not this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import db
from services.alerts.metrics import Metrics
from services.alerts.settings import AlertsSettings

log = logging.getLogger(__name__)

# alertname by the breach's kind; the Prometheus rules' own alerts have other names.
ALERTNAMES = {"spc": "QualityWatchSPCBreach", "below_target": "QualityWatchBelowTarget"}
FALLBACK_ALERTNAME = "QualityWatchBreach"
EXPIRY_RESENDS = 4  # a firing alert's endsAt is this many resend intervals ahead
CHUNK = 500  # alerts per POST
# A breach may name the one site or policy behind it (root-cause fields); only values that
# are safe and bounded become labels.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")


def team_for(queue_id: str, teams: Sequence[tuple[str, str]], default: str) -> str:
    """The first glob in ``teams`` that matches the queue id wins (case-sensitive)."""
    for glob, team in teams:
        if fnmatch.fnmatchcase(queue_id, glob):
            return team
    return default


def _cause(breach: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = breach.get(key)
        if isinstance(value, str) and _LABEL_VALUE.match(value):
            return value
    return None


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_alertmanager(
    alert: db.Alert,
    settings: AlertsSettings,
    *,
    now: datetime,
    incident: db.Incident | None = None,
) -> dict[str, Any]:
    """One alert in Alertmanager's postable form (labels, annotations, times, generatorURL).

    An alert of an incident lives in Alertmanager as long as its incident: firing until the
    incident resolves (one quiet detector does not end the page while another still
    signals), labelled with the incident's id, and annotated with every rule that signalled.
    """
    alertname = ALERTNAMES.get(alert.kind, FALLBACK_ALERTNAME)
    breach = alert.breach if isinstance(alert.breach, dict) else {}
    labels = {
        "alertname": alertname,
        "queue": alert.queue_id,
        "rule": alert.rule,
        "kind": alert.kind,
        "severity": alert.severity,
        "team": team_for(alert.queue_id, settings.team_map, settings.alertmanager_default_team),
        "service": "qualitywatch",
    }
    if incident is not None:
        labels["incident"] = str(incident.id)
    site = _cause(breach, "site", "site_id")
    if site is not None:
        labels["site"] = site
    policy = _cause(breach, "policy", "policy_id")
    if policy is not None:
        labels["policy"] = policy
    base = settings.public_url
    health = f"{base}/v1/queues/{quote(alert.queue_id, safe='')}/health"
    observed, expected = breach.get("observed_p"), breach.get("expected_p")
    rates = ""
    if isinstance(observed, int | float) and isinstance(expected, int | float):
        rates = f": error rate {observed:.1%} against {expected:.1%} expected"
    status, resolved_at = alert.status, alert.resolved_at
    if incident is not None:
        status, resolved_at = incident.status, incident.resolved_at
    annotations = {
        "summary": f"Queue {alert.queue_id}: {alert.rule} ({alert.severity}){rates}",
        "description": alert.message,
        "health_url": health,
        "runbook_url": f"{settings.alertmanager_runbook_url}#{alertname.lower()}",
        "dedup_key": alert.dedup_key,
        "alert_id": str(alert.id),
        "status": status,
        "first_seen_at": _iso(alert.first_seen_at),
    }
    cause = breach.get("cause_summary")
    if isinstance(cause, str) and cause:
        annotations["cause"] = cause[:1000]
    if incident is not None:
        annotations["incident_url"] = f"{base}/v1/incidents/{incident.id}"
        annotations["signals"] = ", ".join(incident.rules)
        others = [r for r in incident.rules if r != alert.rule]
        if others:
            annotations["summary"] += f"; also {', '.join(others)}"
    if status == "resolved" and resolved_at is not None:
        # still active for the hold, so that it inhibits Prometheus' rule on the same
        # alerts (QueueSPCBreachFiring) until that has seen qw_alerts_firing drop
        ends = resolved_at + timedelta(seconds=settings.alertmanager_resolve_hold_s)
    else:
        ends = now + timedelta(seconds=EXPIRY_RESENDS * settings.alertmanager_resend_s)
    return {
        "labels": labels,
        "annotations": annotations,
        "startsAt": _iso(alert.first_seen_at),
        "endsAt": _iso(max(ends, alert.first_seen_at)),
        "generatorURL": f"{base}/v1/queues/{quote(alert.queue_id, safe='')}/chart",
    }


async def alerts_to_push(
    session: AsyncSession, now: datetime, horizon_s: float
) -> list[tuple[db.Alert, db.Incident | None]]:
    """The alerts that paged, each with its incident: those of open incidents, and of those
    resolved within the horizon (their resolution is re-sent until a firing alert pushed
    before it would have expired anyway). Alerts recorded before incidents follow their own
    status. Suppressed alerts are left out: they joined an open incident without paging."""
    since = now - timedelta(seconds=horizon_s)
    q = (
        select(db.Alert, db.Incident)
        .outerjoin(db.Incident, db.Incident.id == db.Alert.incident_id)
        .where(
            db.Alert.suppressed.is_(False),
            or_(
                db.Incident.status.in_(db.OPEN),
                (db.Incident.status == "resolved") & (db.Incident.resolved_at >= since),
                db.Alert.incident_id.is_(None)
                & (
                    db.Alert.status.in_(db.OPEN)
                    | ((db.Alert.status == "resolved") & (db.Alert.resolved_at >= since))
                ),
            ),
        )
        .order_by(db.Alert.id)
    )
    return [(a, i) for a, i in (await session.execute(q)).all()]


class AlertmanagerPusher:
    """The background task: reads the alert table, pushes the set to every Alertmanager."""

    def __init__(
        self,
        settings: AlertsSettings,
        sessions: async_sessionmaker[AsyncSession],
        client: httpx.AsyncClient,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.client = client
        self.metrics = metrics
        self.urls = [f"{u}/api/v2/alerts" for u in settings.alertmanager_urls]
        # per Alertmanager: what it last accepted and when, and its failure streak
        self._sent: list[frozenset[tuple[int, str, int]] | None] = [None] * len(self.urls)
        self._sent_at = [float("-inf")] * len(self.urls)
        self._failures = [0] * len(self.urls)
        self._retry_at = [float("-inf")] * len(self.urls)

    async def run(self, stop: asyncio.Event) -> None:
        if not self.urls:
            return
        log.info("pushing alerts to %d Alertmanager(s)", len(self.urls))
        while not stop.is_set():
            try:
                await self.push_once()
            except Exception:  # a database hiccup: logged, tried again next round
                log.exception("reading alerts for Alertmanager failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.alertmanager_poll_s)

    async def push_once(self) -> int:
        """One round; returns to how many Alertmanagers the set was pushed successfully."""
        now = datetime.now(UTC)
        s = self.settings
        horizon = EXPIRY_RESENDS * s.alertmanager_resend_s + s.alertmanager_resolve_hold_s
        async with self.sessions() as session:
            alerts = await alerts_to_push(session, now, horizon)
        state = frozenset(
            (a.id, i.status if i is not None else a.status, len(i.rules) if i else 0)
            for a, i in alerts
        )
        body = [to_alertmanager(a, self.settings, now=now, incident=i) for a, i in alerts]
        loop = asyncio.get_running_loop()
        due = [
            i for i in range(len(self.urls))
            if loop.time() >= self._retry_at[i]
            and (state != self._sent[i]
                 or loop.time() - self._sent_at[i] >= self.settings.alertmanager_resend_s)
        ]  # fmt: skip
        results = await asyncio.gather(*(self._push(i, body) for i in due))
        for i, ok in zip(due, results, strict=True):
            if ok:
                self._sent[i], self._sent_at[i], self._failures[i] = state, loop.time(), 0
                self._retry_at[i] = float("-inf")
            else:
                self._failures[i] += 1
                backoff = min(self.settings.alertmanager_resend_s, 2 ** (self._failures[i] - 1))
                self._retry_at[i] = loop.time() + backoff
        return sum(results)

    async def _push(self, index: int, body: list[dict[str, Any]]) -> bool:
        url = self.urls[index]
        try:
            for start in range(0, max(len(body), 1), CHUNK):
                r = await self.client.post(
                    url,
                    json=body[start : start + CHUNK],
                    timeout=self.settings.alertmanager_timeout_s,
                )
                if r.status_code >= 300:
                    raise httpx.HTTPStatusError(
                        f"{r.status_code} {r.text[:300]!r}", request=r.request, response=r
                    )
        except (httpx.HTTPError, OSError) as exc:
            self.metrics.alertmanager_pushes.labels(str(index), "error").inc()
            log.warning(
                "push of %d alert(s) to Alertmanager #%d failed (%d in a row): %s",
                len(body), index, self._failures[index] + 1, exc or type(exc).__name__,
            )  # fmt: skip
            return False
        self.metrics.alertmanager_pushes.labels(str(index), "ok").inc()
        return True
