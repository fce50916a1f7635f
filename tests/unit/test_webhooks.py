"""Our signature against the reference Standard Webhooks implementation, both ways."""

from __future__ import annotations

import time

import pytest
import standardwebhooks

from services.alerts.webhook_policy import generate_secret, parse_secrets
from services.alerts.webhooks import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Attempt,
    SignatureError,
    judge,
    retry_after_s,
    sign,
    verify,
)

SECRET = generate_secret()
KEYS = parse_secrets(SECRET, production=True)


def headers(keys: list[bytes], body: bytes, ts: int, msg_id: str = "msg_1") -> dict[str, str]:
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(keys, msg_id, ts, body),
    }


def test_the_reference_verifier_accepts_our_signature() -> None:
    body = b'{"a":1}'
    h = headers(KEYS, body, int(time.time()))
    assert standardwebhooks.Webhook(SECRET).verify(body, h) == {"a": 1}


def test_our_verifier_accepts_the_reference_signature() -> None:
    wh = standardwebhooks.Webhook(SECRET)
    body = b'{"a":1}'
    ts = int(time.time())
    from datetime import UTC, datetime

    sig = wh.sign("msg_2", datetime.fromtimestamp(ts, UTC), body.decode())
    verify(KEYS, {ID_HEADER: "msg_2", TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sig}, body)


def test_a_rotation_signs_with_every_secret() -> None:
    old, new = generate_secret(), generate_secret()
    body = b"{}"
    h = headers(parse_secrets(f"{new} {old}", production=True), body, int(time.time()))
    assert len(h[SIGNATURE_HEADER].split()) == 2
    for secret in (old, new):
        standardwebhooks.Webhook(secret).verify(body, h)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(generate_secret()).verify(body, h)


@pytest.mark.parametrize(
    ("change", "msg"),
    [
        ({"body": b'{"a":2}'}, "no valid signature"),
        ({"keys": parse_secrets(generate_secret(), production=True)}, "no valid signature"),
        ({"now": 1_700_001_000}, "tolerance"),
        ({"id": "msg_other"}, "no valid signature"),
    ],
)
def test_verify_rejects(change: dict[str, object], msg: str) -> None:
    h = headers(KEYS, b'{"a":1}', 1_700_000_000)
    if "id" in change:
        h[ID_HEADER] = str(change["id"])
    with pytest.raises(SignatureError, match=msg):
        verify(
            change.get("keys", KEYS),  # type: ignore[arg-type]
            h,
            change.get("body", b'{"a":1}'),  # type: ignore[arg-type]
            now=change.get("now", 1_700_000_010),  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    "h",
    [{}, {ID_HEADER: "m", TIMESTAMP_HEADER: "x", SIGNATURE_HEADER: "v1,AA=="},
     {ID_HEADER: "m", TIMESTAMP_HEADER: "0", SIGNATURE_HEADER: "garbage"}],
)  # fmt: skip
def test_verify_rejects_malformed_headers(h: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        verify(KEYS, h, b"x", now=0)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [(200, "delivered"), (204, "delivered"), (301, "final"), (400, "final"), (401, "final"),
     (404, "final"), (410, "final"), (408, "retry"), (429, "retry"), (500, "retry"),
     (503, "retry"), (None, "retry")],
)  # fmt: skip
def test_which_answers_are_retried(status: int | None, verdict: str) -> None:
    ok = status is not None and 200 <= status < 300
    assert judge(Attempt("x", None if ok else "e", status)) == verdict


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_s("120", 0) == 120
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 60) == 60
    assert retry_after_s("soon", 0) is None
    assert retry_after_s(None, 0) is None
    assert retry_after_s("9" * 50, 0) == 999_999_999  # bounded by the caller's cap
