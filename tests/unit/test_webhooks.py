from __future__ import annotations

import pytest

from services.alerts.webhooks import SignatureError, backoff, sign, verify


def test_sign_verify_round_trip() -> None:
    header = sign("s3cret", b'{"a":1}', 1_700_000_000)
    verify("s3cret", header, b'{"a":1}', now=1_700_000_010)


@pytest.mark.parametrize(
    ("secret", "body", "now", "msg"),
    [
        ("other", b'{"a":1}', 1_700_000_000, "mismatch"),
        ("s3cret", b'{"a":2}', 1_700_000_000, "mismatch"),
        ("s3cret", b'{"a":1}', 1_700_001_000, "tolerance"),
    ],
)
def test_verify_rejects(secret: str, body: bytes, now: float, msg: str) -> None:
    header = sign("s3cret", b'{"a":1}', 1_700_000_000)
    with pytest.raises(SignatureError, match=msg):
        verify(secret, header, body, now=now)


@pytest.mark.parametrize("header", [None, "", "garbage", "t=abc,v1=00"])
def test_verify_rejects_malformed_headers(header: str | None) -> None:
    with pytest.raises(SignatureError):
        verify("s", header, b"x", now=0)


def test_backoff_grows_and_is_capped() -> None:
    for attempt in range(1, 20):
        d = backoff(attempt, 1.0, 60.0)
        ceiling = min(60.0, 2 ** (attempt - 1))
        assert ceiling / 2 <= d <= ceiling
