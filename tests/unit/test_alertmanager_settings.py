"""QW_ALERTS_ALERTMANAGER_*: the grammar and bounds of each setting, the team mapping, and
the shape of one pushed alert (the real Alertmanager: tests/integration and tests/e2e)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.alerts import db
from services.alerts.alertmanager import team_for, to_alertmanager
from services.alerts.settings import AlertsSettings
from tests.alerts_cases import NOW


def test_off_by_default_and_the_team_grammar_parses() -> None:
    s = AlertsSettings()
    assert s.alertmanager_urls == []
    assert s.team_map == ()
    s = AlertsSettings(
        alertmanager_urls=["http://am:9093/", "https://am2.example.test/prefix"],
        alertmanager_teams=" spam-*=trust-spam , cse-??=child-safety,*=quality",
    )
    assert s.alertmanager_urls == ["http://am:9093", "https://am2.example.test/prefix"]
    assert s.team_map == (("spam-*", "trust-spam"), ("cse-??", "child-safety"), ("*", "quality"))
    assert s.public_url == "http://127.0.0.1:8002"


def test_first_matching_glob_wins_else_the_default_team() -> None:
    teams = (("spam-en", "english"), ("spam-*", "spam"), ("cse-*", "cse"))
    assert team_for("spam-en", teams, "quality") == "english"
    assert team_for("spam-de", teams, "quality") == "spam"
    assert team_for("SPAM-de", teams, "quality") == "quality"  # case-sensitive, like queue ids
    assert team_for("hate-de", teams, "quality") == "quality"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"alertmanager_teams": "spam-*"}, "pair 1 'spam-*': expected glob=team"),
        ({"alertmanager_teams": "a=b,spam/*=x"}, "pair 2: glob 'spam/*'"),
        ({"alertmanager_teams": "spam-*=Trust Spam"}, "team 'Trust Spam'"),
        ({"alertmanager_teams": "a=b," * 200 + "a=b"}, "201 pairs, at most 200"),
        ({"alertmanager_urls": ["ftp://am:21"]}, "not an http(s) URL"),
        ({"alertmanager_urls": ["http://u:p@am:9093"]}, "credentials in the URL"),
        ({"alertmanager_urls": ["http://am:9093?x=1"]}, "no query or fragment"),
        ({"alertmanager_urls": ["http://am:99999"]}, "out of range"),
        ({"alertmanager_urls": ["http://am:9093", "http://am:9093"]}, "lists a URL twice"),
        ({"alertmanager_urls": [f"http://am{i}:9093" for i in range(11)]}, "at most 10"),
        ({"alertmanager_resend_s": 1}, "greater than or equal to 5"),
        ({"alertmanager_resend_s": 7200}, "less than or equal to 3600"),
        ({"alertmanager_timeout_s": 0}, "greater than 0"),
        ({"alertmanager_default_team": "-x"}, "String should match pattern"),
        ({"alertmanager_public_url": "qw.example.test"}, "not an http(s) URL"),
    ],
)
def test_a_bad_setting_is_refused_saying_what_is_wrong(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        AlertsSettings(**values)  # type: ignore[arg-type]


def test_the_environment_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QW_ALERTS_ALERTMANAGER_URLS", '["http://127.0.0.1:9093"]')
    monkeypatch.setenv("QW_ALERTS_ALERTMANAGER_TEAMS", "spam-*=trust-spam")
    monkeypatch.setenv("QW_ALERTS_ALERTMANAGER_RESEND_S", "30")
    s = AlertsSettings()
    assert s.alertmanager_urls == ["http://127.0.0.1:9093"]
    assert s.team_map == (("spam-*", "trust-spam"),)
    assert s.alertmanager_resend_s == 30


def _alert(**kw: object) -> db.Alert:
    fields: dict[str, object] = dict(
        id=7, dedup_key="k", queue_id="spam-en", rule="accuracy_24h_below_target",
        kind="below_target", severity="critical", status="firing", suppressed=False,
        message="accuracy 81% under the 90% target", first_seen_at=NOW, last_seen_at=NOW,
        resolved_at=None, occurrences=1, subgroup_start=None,
        breach={"observed_p": 0.19, "expected_p": 0.1, "policy_id": "spam.v3",
                "site_id": "bad site with spaces"},
    )  # fmt: skip
    fields.update(kw)
    return db.Alert(**fields)


def test_a_pushed_alert_has_routing_labels_and_times() -> None:
    s = AlertsSettings(alertmanager_resend_s=60, alertmanager_teams="spam-*=trust-spam")
    firing = to_alertmanager(_alert(), s, now=NOW + timedelta(minutes=5))
    assert firing["labels"] == {
        "alertname": "QualityWatchBelowTarget",
        "queue": "spam-en",
        "kind": "below_target",
        "rule": "accuracy_24h_below_target",
        "severity": "critical",
        "team": "trust-spam",
        "policy": "spam.v3",
        "service": "qualitywatch",
    }  # a site that is not a safe label value is left out
    assert firing["startsAt"] == "2026-11-02T12:00:00Z"
    assert firing["endsAt"] == "2026-11-02T12:09:00Z"  # now + 4 resends
    assert firing["annotations"]["summary"] == (
        "Queue spam-en: accuracy_24h_below_target (critical): error rate 19.0% against "
        "10.0% expected"
    )
    resolved = to_alertmanager(
        _alert(status="resolved", resolved_at=NOW + timedelta(minutes=3)), s, now=NOW
    )
    # active for the hold after the resolution (QW_ALERTS_ALERTMANAGER_RESOLVE_HOLD_S, 60 s),
    # so it inhibits Prometheus' rule on the same signals until that rule has resolved
    assert resolved["endsAt"] == "2026-11-02T12:04:00Z"
    s0 = s.model_copy(update={"alertmanager_resolve_hold_s": 0.0})
    at_once = to_alertmanager(
        _alert(status="resolved", resolved_at=NOW + timedelta(minutes=3)), s0, now=NOW
    )
    assert at_once["endsAt"] == "2026-11-02T12:03:00Z"
    unknown = to_alertmanager(_alert(kind="new_kind"), s, now=NOW)
    assert unknown["labels"]["alertname"] == "QualityWatchBreach"
