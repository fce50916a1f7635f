"""What a webhook may be: its secrets, its retry schedule and its target address.

Pure functions with one-line refusals, used when the settings load and again when a
delivery connects (the address a host name resolves to then, against DNS rebinding).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import secrets
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 32  # outside development
MAX_SECRET_BYTES = 64
MAX_SECRETS = 4  # a rotation overlaps two; a few more are a mistake, not a plan

# The development-only default: 32 bytes anybody can read here, refused elsewhere.
DEVELOPMENT_SECRET = SECRET_PREFIX + base64.b64encode(b"qualitywatch-development-only!!!").decode()

# Lower-cased, stripped of the prefix: a secret that decodes to, or is written as, one of
# these is refused outside development whatever its length.
WEAK_SECRETS = frozenset(
    {
        "", "x", "changeme", "change-me", "change_me", "changeit", "secret", "password",
        "passw0rd", "test", "testing", "default", "example", "webhook", "qualitywatch",
        "admin", "letmein", "123456", "12345678", "replace_me", "replace-me", "todo",
        "qualitywatch-development-only!!!",
    }
)  # fmt: skip


def generate_secret() -> str:
    """A new random signing secret in Standard Webhooks' form (32 bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def parse_secrets(value: str, *, production: bool) -> list[bytes]:
    """The HMAC keys of ``value``: one or more ``whsec_<base64>`` secrets separated by spaces,
    the first the newest (every one signs, so receivers verify during a rotation). Raises
    ValueError naming the position of a bad one, never its text."""
    tokens = value.split()
    if not tokens:
        raise ValueError("QW_ALERTS_WEBHOOK_SECRET is empty: set one whsec_<base64> secret")
    if len(tokens) > MAX_SECRETS:
        raise ValueError(f"QW_ALERTS_WEBHOOK_SECRET holds {len(tokens)} secrets; at most "
                         f"{MAX_SECRETS} (the new one and the ones being retired)")  # fmt: skip
    keys: list[bytes] = []
    for i, token in enumerate(tokens, 1):
        where = f"QW_ALERTS_WEBHOOK_SECRET secret #{i}"
        if not token.startswith(SECRET_PREFIX):
            raise ValueError(
                f"{where} is not of the form whsec_<base64>; make one with "
                '`echo "whsec_$(openssl rand -base64 32)"`'
            )
        body = token.removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{where}: the part after whsec_ is not base64") from None
        if not key or len(key) > MAX_SECRET_BYTES:
            raise ValueError(f"{where} decodes to {len(key)} bytes; 1 to {MAX_SECRET_BYTES}")
        if production:
            if len(key) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"{where} is {len(key)} bytes; outside development (QW_ENV) at least "
                    f"{MIN_SECRET_BYTES} random bytes are required"
                )
            text = key.decode("latin-1").lower()
            weak = {body.lower(), text.strip(), re.sub(r"[^a-z0-9]", "", text)}
            # 32 random bytes hold about 30 distinct values; fewer than 12 is a word or a
            # pattern (the chance for random bytes is below 1e-12)
            if weak & WEAK_SECRETS or len(set(key)) < 12:
                raise ValueError(
                    f"{where} is a known placeholder or not random; outside development "
                    "(QW_ENV) set a random one"
                )
        keys.append(key)
    return keys


# -- retry schedule ---------------------------------------------------------------------------

MAX_RETRIES = 20
MAX_RETRY_DELAY_S = 24 * 3600.0
MAX_SCHEDULE_S = 7 * 24 * 3600.0
DEFAULT_SCHEDULE = "5s 5m 30m 2h 5h 10h 10h"  # Standard Webhooks' (after the first attempt)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DELAY = re.compile(r"(\d{1,6}(?:\.\d{1,3})?)(ms|s|m|h)")


def parse_schedule(value: str) -> tuple[float, ...]:
    """The delays before each retry, in seconds: ``value`` is durations separated by spaces or
    commas, each a number and a unit (ms, s, m, h), e.g. ``5s 5m 30m 2h``. At most
    MAX_RETRIES, each at most 24 h, all together at most 7 days."""
    tokens = [t for t in re.split(r"[\s,]+", value.strip()) if t]
    if not tokens:
        raise ValueError("QW_ALERTS_WEBHOOK_RETRY_SCHEDULE is empty: give at least one delay")
    if len(tokens) > MAX_RETRIES:
        raise ValueError(
            f"QW_ALERTS_WEBHOOK_RETRY_SCHEDULE has {len(tokens)} delays; at most {MAX_RETRIES}"
        )
    delays = []
    for token in tokens:
        m = _DELAY.fullmatch(token)
        if m is None:
            raise ValueError(f"QW_ALERTS_WEBHOOK_RETRY_SCHEDULE: {token[:20]!r} is not a "
                             "duration like 500ms, 5s, 30m or 2h")  # fmt: skip
        delay = float(m.group(1)) * _UNITS[m.group(2)]
        if delay > MAX_RETRY_DELAY_S:
            raise ValueError(f"QW_ALERTS_WEBHOOK_RETRY_SCHEDULE: {token} is longer than 24h")
        delays.append(delay)
    if sum(delays) > MAX_SCHEDULE_S:
        raise ValueError("QW_ALERTS_WEBHOOK_RETRY_SCHEDULE adds up to more than 7 days")
    return tuple(delays)


# -- target addresses -------------------------------------------------------------------------

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def refused_address(ip: _IPAddress) -> str | None:
    """Why a webhook may not connect to ``ip`` (unless private networks are allowed), or None."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private or ip.is_reserved or not ip.is_global:
        return "a private or reserved address"
    return None


def check_url(url: str, *, allow_private: bool) -> str | None:
    """Why ``url`` may not be a webhook target, or None. Host names are checked by name here
    (``localhost``) and by address when a delivery connects (``check_addresses``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return f"has scheme {parts.scheme[:10]!r}; only http and https are delivered"
    host = parts.hostname
    if not host:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "carries credentials before the host; put a token in the path or query"
    if port == 0:
        return "has port 0"
    if allow_private:
        return None
    host = host.rstrip(".")  # "localhost." is localhost, the root's trailing dot
    if host == "localhost" or host.endswith(".localhost"):
        return f"names localhost, a loopback address ({ALLOW_HINT})"
    ip = _numeric_host(host)
    if ip is None:
        return None  # a name: its addresses are checked when connecting
    why = refused_address(ip)
    return None if why is None else f"is {why} ({ALLOW_HINT})"


_INET_ATON = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}")


def _numeric_host(host: str) -> _IPAddress | None:
    """The address a host written as numbers means, or None for a name. Besides the usual
    forms, the spellings C's inet_aton (and so the resolver) accepts: ``2130706433``,
    ``0x7f.1``, ``0177.0.0.1``, ``127.1`` are all 127.0.0.1."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _INET_ATON.fullmatch(host) is None:
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None  # numbers no resolver takes as an address either: refused when connecting


ALLOW_HINT = "QW_ALERTS_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true allows it"


def check_addresses(addresses: Sequence[str]) -> str | None:
    """Why a host that resolved to ``addresses`` may not be connected to, or None."""
    for a in addresses:
        why = refused_address(ipaddress.ip_address(a.split("%", 1)[0]))
        if why is not None:
            return f"resolves to {why}, {a} ({ALLOW_HINT})"
    return None


# A path segment shown as it is in a refusal: plain words (letters only, each word at most
# 12 letters in one case or capitalised, joined by . _ -), the like of /alerts/quality or
# /hooks/on-call. Anything else (digits, long runs, mixed case, escapes) may be a token, as
# Slack's, Discord's and Teams' webhook paths are, and is shown as ***.
_WORD = r"(?:[A-Za-z][a-z]{0,11}|[A-Z]{2,12})"
_PLAIN_SEGMENT = re.compile(rf"{_WORD}(?:[._-]{_WORD})*")
MAX_QUOTED = 200


def quote_url(url: str) -> str:
    """``url`` as given, for a refusal that must say which of several URLs it is: quoted
    (escapes for control characters), at most MAX_QUOTED characters, with the parts that
    may hold a secret shown as ``***`` and said to be: the user information
    (``user:password@``), the query, the fragment and each path segment that is not plain
    words. Never a secret, and never a part of one."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(not shown: not a URL that can be split into parts, and it may hold a token)"
    hidden = []
    _, at, hostport = parts.netloc.rpartition("@")
    netloc = f"***@{hostport}" if at else parts.netloc
    if at:
        hidden.append("its user information")
    segments = [
        seg if not seg or _PLAIN_SEGMENT.fullmatch(seg) else "***" for seg in parts.path.split("/")
    ]
    if "***" in segments:
        hidden.append("path segments that are not plain words")
    if parts.query:
        hidden.append("its query")
    if parts.fragment:
        hidden.append("its fragment")
    text = urlunsplit((
        parts.scheme, netloc, "/".join(segments), "***" if parts.query else "",
        "***" if parts.fragment else "",
    ))  # fmt: skip
    if len(text) > MAX_QUOTED:
        text = text[:MAX_QUOTED] + "..."
    if not hidden:
        return repr(text)
    return f"{text!r} ({', '.join(hidden)} shown as ***: they may hold a token)"


def describe(url: str) -> str:
    """A URL for logs and errors without its path and query, which may hold a token."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    except ValueError:
        return "<unparsable URL>"
