"""Which webhook URLs, secrets and retry schedules the alerts service accepts, and that a
secret never shows in a repr, a settings error or ``qwatch config``."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from services.alerts.settings import AlertsSettings
from services.alerts.webhook_policy import (
    DEFAULT_SCHEDULE,
    MAX_QUOTED,
    check_addresses,
    check_url,
    generate_secret,
    parse_schedule,
    parse_secrets,
    quote_url,
)
from services.cli import settings_error


def whsec(raw: bytes) -> str:
    return "whsec_" + base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://example.com/x", "scheme 'gopher'"),
        ("ftp://example.com/x", "scheme 'ftp'"),
        ("http:///nohost", "no host"),
        ("http://user:pw@example.com/h", "credentials"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/h", "link-local"),
        ("http://127.0.0.1:8080/h", "loopback"),
        ("http://[::1]/h", "loopback"),
        ("http://[::ffff:127.0.0.1]/h", "loopback"),
        ("http://localhost/h", "localhost"),
        ("http://api.localhost/h", "localhost"),
        ("http://10.1.2.3/h", "private"),
        ("http://172.16.0.1/h", "private"),
        ("http://192.168.1.1/h", "private"),
        ("http://[fc00::1]/h", "private"),
        ("http://100.64.0.1/h", "private or reserved"),
        ("http://0.0.0.0/h", "unspecified"),
        ("http://[::]/h", "unspecified"),
        ("http://example.com:99999/h", "not a valid URL"),
        # the numeric spellings the resolver (inet_aton) takes, and the root's trailing dot
        ("http://2130706433/h", "loopback"),
        ("http://0x7f.1/h", "loopback"),
        ("http://0177.0.0.1/h", "loopback"),
        ("http://127.1/h", "loopback"),
        ("http://localhost./h", "localhost"),
        ("http://0xa9fea9fe/h", "link-local"),
        ("http://3232235777/h", "private"),
        ("http://10.1/h", "private"),
    ],
)
def test_refused_urls(url: str, why: str) -> None:
    assert why in (check_url(url, allow_private=False) or "")


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/q?token=abc", "http://93.184.216.34:8080/h",
            "https://[2606:4700::1111]/h", "http://1558071330/h",
            "https://1e3.example/h"],
)  # fmt: skip
def test_public_urls_pass(url: str) -> None:
    assert check_url(url, allow_private=False) is None


def test_the_allow_setting_lets_loopback_and_private_through_but_not_other_schemes() -> None:
    assert check_url("http://127.0.0.1:9/h", allow_private=True) is None
    assert check_url("http://10.0.0.1/h", allow_private=True) is None
    assert "scheme" in (check_url("file:///x", allow_private=True) or "")


def test_resolved_addresses() -> None:
    assert check_addresses(["93.184.216.34"]) is None
    assert "loopback" in (check_addresses(["93.184.216.34", "127.0.0.1"]) or "")
    assert "link-local" in (check_addresses(["fe80::1%eth0"]) or "")


def test_schedule_grammar_and_bounds() -> None:
    assert parse_schedule(DEFAULT_SCHEDULE) == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert parse_schedule("500ms, 1.5s,2m") == (0.5, 1.5, 120)
    for bad, msg in [
        ("", "empty"),
        ("5", "not a duration"),
        ("5d", "not a duration"),
        ("-5s", "not a duration"),
        ("25h", "longer than 24h"),
        (" ".join(["1s"] * 21), "at most 20"),
        (" ".join(["24h"] * 8), "7 days"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_schedule(bad)


def test_secrets() -> None:
    good = generate_secret()
    assert len(parse_secrets(good, production=True)[0]) == 32
    assert len(parse_secrets(f"{good} {generate_secret()}", production=True)) == 2
    assert parse_secrets(whsec(b"short"), production=False) == [b"short"]  # development
    for bad, msg in [
        ("", "empty"),
        ("changeme", "whsec_"),
        ("whsec_!!!", "not base64"),
        (whsec(b"x" * 16), "16 bytes"),
        (whsec(b"changeme"), "8 bytes"),
        (whsec(b"a" * 40), "not random"),
        (whsec(b"changeme".ljust(32)), "placeholder"),
        (" ".join([good] * 5), "at most 4"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_secrets(bad, production=True)


def test_production_refuses_the_development_default() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        AlertsSettings(environment="production")


def test_a_bad_url_is_one_line_without_what_may_be_a_token() -> None:
    with pytest.raises(ValidationError) as info:
        AlertsSettings(webhook_urls=["https://ok.example.com/a", "http://169.254.169.254/tok3n"])
    line = settings_error(info.value)
    assert (
        "QW_ALERTS_WEBHOOK_URLS[1] 'http://169.254.169.254/***' (path segments that are not "
        "plain words shown as ***: they may hold a token) is a link-local address"
    ) in line
    assert "tok3n" not in line
    assert "\n" not in line


def test_a_refused_url_is_quoted_as_given_so_that_the_operator_sees_which() -> None:
    """From a new user's trial: of several receivers on one host, the refusal named the
    host only (no path), so which URL it was took guessing."""
    urls = ["http://10.0.0.5:8080/alerts/quality", "http://10.0.0.5:8080/alerts/spam"]
    with pytest.raises(ValidationError) as info:
        AlertsSettings(webhook_urls=urls)
    assert settings_error(info.value) == (
        "invalid settings: QW_ALERTS_WEBHOOK_URLS[0] 'http://10.0.0.5:8080/alerts/quality' is "
        "a private or reserved address (QW_ALERTS_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true allows "
        "it) (see docs/configuration.md)"
    )


@pytest.mark.parametrize(
    ("url", "quoted", "secrets"),
    [
        ("http://localhost/hooks/on-call", "'http://localhost/hooks/on-call'", []),
        ("http://ops:hunter2@localhost/hooks/QA", "'http://***@localhost/hooks/QA' (its user "
         "information shown as ***: they may hold a token)", ["ops", "hunter2"]),
        ("http://localhost/hooks?token=s3cr3t&x=1#k3y9", "'http://localhost/hooks?***#***' "
         "(its query, its fragment shown as ***: they may hold a token)", ["s3cr3t", "k3y9"]),
        # Slack's, Discord's and Teams' receivers carry their secret in the path
        ("ftp://hooks.slack.com/services/T0AB12CD3/B0AB12CD3/abcdEFGHijklMNOPqrstUVwx",
         "'ftp://hooks.slack.com/services/***/***/***' (path segments that are not plain words "
         "shown as ***: they may hold a token)", ["T0AB12CD3", "abcdEFGHijklMNOPqrstUVwx"]),
        ("ftp://x.example/api/webhooks/123456789012345678/abcdefghijklmnopqrstuvwxyz",
         "'ftp://x.example/api/webhooks/***/***' (path segments that are not plain words "
         "shown as ***: they may hold a token)", ["123456789012345678", "abcdefghijklmn"]),
        ("http://127.0.0.1/a\x07b", "'http://127.0.0.1/***' (path segments that are not plain "
         "words shown as ***: they may hold a token)", ["\x07"]),
    ],
)  # fmt: skip
def test_quote_url_redacts_what_may_hold_a_token_and_says_so(
    url: str, quoted: str, secrets: list[str]
) -> None:
    assert quote_url(url) == quoted
    why = check_url(url, allow_private=False)
    assert why is not None
    with pytest.raises(ValidationError) as info:
        AlertsSettings(webhook_urls=[url])
    line = settings_error(info.value)
    assert f"QW_ALERTS_WEBHOOK_URLS[0] {quoted} {why}" in line
    for secret in secrets:
        assert secret not in line


def test_quote_url_is_bounded() -> None:
    quoted = quote_url("http://" + "a" * 300 + ".example/x")
    assert len(quoted) <= MAX_QUOTED + 5
    assert quoted.endswith("...'")


def test_an_alertmanager_url_refused_never_shows_its_credentials_or_query() -> None:
    for url, secret in [
        ("http://am:pw0rd@am1:9093", "pw0rd"),
        ("http://am1:9093/?t=tok3n", "tok3n"),
    ]:
        with pytest.raises(ValidationError) as info:
            AlertsSettings(alertmanager_urls=[url])
        line = settings_error(info.value)
        assert line.startswith("invalid settings: QW_ALERTS_ALERTMANAGER_URLS: 'http://")
        assert secret not in line


def test_a_secret_never_shows() -> None:
    secret = generate_secret()
    weak = whsec(b"password".ljust(40, b"!"))
    s = AlertsSettings(webhook_secret=secret, environment="production")
    assert secret not in repr(s)
    assert secret not in str(s.model_dump())
    with pytest.raises(ValidationError) as info:
        AlertsSettings(webhook_secret=weak, environment="production")
    assert weak not in settings_error(info.value)
    assert weak not in str(info.value)
    env = {**os.environ, "QW_ALERTS_WEBHOOK_SECRET": secret, "QW_ENV": "production"}
    out = subprocess.run([sys.executable, "-m", "services.cli", "config"], env=env,
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert "QW_ALERTS_WEBHOOK_SECRET" in out.stdout
    assert secret not in out.stdout


def test_the_service_refuses_a_weak_secret_with_one_line() -> None:
    weak = whsec(b"changeme")
    env = {**os.environ, "QW_ALERTS_WEBHOOK_SECRET": weak, "QW_ENV": "production"}
    run = subprocess.run([sys.executable, "-m", "services.cli", "alerts"], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1, run.stderr
    assert "QW_ALERTS_WEBHOOK_SECRET secret #1 is 8 bytes" in run.stderr
    assert weak not in run.stderr
    assert "changeme" not in run.stderr
