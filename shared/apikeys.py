"""API keys: scoped, hashed at rest, created and revoked with ``qwatch keys``.

A key is ``qw_<id>_<secret>``: ``id`` names it (8 hex digits, safe to log), ``secret`` is 32
random bytes (base64url). The key file keeps only the SHA-256 of the whole key, its name,
scopes and dates; a random 256-bit secret needs no slow hash (nothing to guess), so a
lookup costs one hash and one constant-time comparison. Both services read the same file
(``QW_API_KEYS_FILE``; in Kubernetes a mounted Secret) and reload it when it changes, so a
revocation takes effect within a second without a restart.

Scopes: ``ingest`` (POST events), ``read`` (the health API, when reads are protected),
``ack`` (acknowledge alerts; implies ``read``), ``admin`` (everything).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, get_args

Scope = Literal["ingest", "read", "ack", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
log = logging.getLogger(__name__)

KEY_RE = re.compile(r"qw_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")
MAX_KEYS = 10_000  # a file past this is refused: keys are for services and people, not rows
RELOAD_CHECK_S = 1.0


class KeyFileError(ValueError):
    """The key file cannot be read or does not follow its grammar."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[Scope, ...]
    sha256: str
    created_at: str
    revoked_at: str | None = None

    def allows(self, scope: Scope) -> bool:
        """``admin`` allows everything; ``ack`` allows ``read`` too (acknowledging needs
        seeing)."""
        if self.revoked_at is not None:
            return False
        implied = {"admin", "ack"} if scope == "read" else {"admin"}
        return scope in self.scopes or bool(implied & set(self.scopes))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _parse(raw: object, path: Path) -> dict[str, ApiKey]:
    if not isinstance(raw, dict) or not isinstance(raw.get("keys"), list):
        raise KeyFileError(f"{path}: expected an object with a 'keys' list")
    if len(raw["keys"]) > MAX_KEYS:
        raise KeyFileError(f"{path}: {len(raw['keys'])} keys, more than {MAX_KEYS}")
    out: dict[str, ApiKey] = {}
    for i, k in enumerate(raw["keys"]):
        try:
            key = ApiKey(
                id=str(k["id"]), name=str(k["name"]), scopes=tuple(k["scopes"]),
                sha256=str(k["sha256"]), created_at=str(k["created_at"]),
                revoked_at=None if k.get("revoked_at") is None else str(k["revoked_at"]),
            )  # fmt: skip
        except (KeyError, TypeError) as exc:
            raise KeyFileError(f"{path}: key {i}: missing or wrong field {exc}") from None
        if not re.fullmatch(r"[0-9a-f]{8}", key.id) or not re.fullmatch(
            r"[0-9a-f]{64}", key.sha256
        ):
            raise KeyFileError(f"{path}: key {i}: bad id or sha256")
        if not key.scopes or any(s not in SCOPES for s in key.scopes):
            raise KeyFileError(f"{path}: key {key.id}: scopes must be some of {', '.join(SCOPES)}")
        if key.id in out:
            raise KeyFileError(f"{path}: key id {key.id} appears twice")
        out[key.id] = key
    return out


class KeyStore:
    """The key file, reloaded when it changes (checked at most once a second)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[str, ApiKey] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._load()

    # -- reading ------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._keys, self._stamp = {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            raw = json.loads(self.path.read_bytes())
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"{self.path}: not readable JSON: {exc}") from None
        self._keys, self._stamp = _parse(raw, self.path), stamp

    def _fresh(self) -> None:
        now = time.monotonic()
        if now - self._checked >= RELOAD_CHECK_S:
            self._checked = now
            with self._lock:
                try:
                    self._load()
                except KeyFileError as exc:  # a half-edited file must not open the door
                    log.warning("%s; keeping the keys loaded before", exc)

    def all(self) -> list[ApiKey]:
        self._fresh()
        return sorted(self._keys.values(), key=lambda k: k.created_at)

    def active(self) -> bool:
        """Is there any key that is not revoked?"""
        return any(k.revoked_at is None for k in self.all())

    def verify(self, token: str) -> ApiKey | None:
        """The key this token is, if it is a valid, unrevoked one."""
        m = KEY_RE.fullmatch(token)
        if m is None:
            return None
        self._fresh()
        key = self._keys.get(m.group(1))
        if key is None or key.revoked_at is not None:
            return None
        return key if hmac.compare_digest(key.sha256, _digest(token)) else None

    # -- writing (the CLI) ----------------------------------------------------------------
    def _write(self, keys: dict[str, ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"keys": [asdict(k) for k in keys.values()]}, indent=2).encode()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".apikeys.")
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._stamp = None
        self._load()

    def create(self, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
        """A new key; returns it and the token, which is shown once and stored nowhere."""
        if not NAME_RE.fullmatch(name):
            raise KeyFileError("name: 1-64 characters, letters, digits, space and ._@- (not first)")
        bad = [s for s in scopes if s not in SCOPES]
        if not scopes or bad:
            raise KeyFileError(f"scopes must be some of {', '.join(SCOPES)} (got {scopes})")
        with self._lock:
            self._load()
            if len(self._keys) >= MAX_KEYS:
                raise KeyFileError(f"{MAX_KEYS} keys already: revoke and prune some first")
            key_id = secrets.token_hex(4)
            while key_id in self._keys:
                key_id = secrets.token_hex(4)
            token = f"qw_{key_id}_{secrets.token_urlsafe(32)}"
            key = ApiKey(
                id=key_id, name=name, scopes=tuple(dict.fromkeys(scopes)),  # type: ignore[arg-type]
                sha256=_digest(token), created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )  # fmt: skip
            self._write({**self._keys, key_id: key})
        return key, token

    def revoke(self, key_id: str) -> ApiKey:
        with self._lock:
            self._load()
            key = self._keys.get(key_id)
            if key is None:
                raise KeyFileError(f"no key with id {key_id!r}")
            if key.revoked_at is None:
                revoked = ApiKey(
                    **{**asdict(key), "revoked_at": datetime.now(UTC).isoformat(timespec="seconds")}
                )
                self._write({**self._keys, key_id: revoked})
                key = revoked
        return key


# -- HTTP --------------------------------------------------------------------------------
class AuthPolicy:
    """Who may call what. Keys are required on every mutating endpoint outside development;
    in development only once a key exists (so a laptop demo runs without one), and reads
    only when ``protect_reads`` is set."""

    def __init__(self, store: KeyStore, environment: str, protect_reads: bool) -> None:
        self.store = store
        self.environment = environment
        self.protect_reads = protect_reads

    def keys_on(self) -> bool:
        """Are keys checked at all: outside development, or once a key exists."""
        return self.environment != "development" or self.store.active()

    def enforced(self, scope: Scope) -> bool:
        if scope == "read" and not self.protect_reads:
            return False
        return self.keys_on()

    def describe(self) -> str:
        if self.environment != "development":
            state = "required on every mutating endpoint"
        elif self.store.active():
            state = "required (development, but keys exist)"
        else:
            state = f"OFF (development and no key in {self.store.path}: `qwatch keys create`)"
        reads = "reads too" if self.protect_reads else "reads open"
        return f"API keys {state}; {reads}"


def token_from(authorization: str | None, x_api_key: str | None) -> str | None:
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        kind, _, value = authorization.partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip()
    return None


class AuthError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def authorize(policy: AuthPolicy, scope: Scope, token: str | None) -> ApiKey | None:
    """The caller's key when the scope is enforced; raises ``AuthError`` (401: no or an
    unknown key, 403: a key without the scope)."""
    if not policy.enforced(scope):
        return None
    if token is None:
        raise AuthError(
            401, f"an API key with scope '{scope}' is required (Authorization: Bearer qw_...)"
        )
    key = policy.store.verify(token)
    if key is None:
        raise AuthError(401, "the API key is not valid (unknown, malformed or revoked)")
    if not key.allows(scope):
        raise AuthError(403, f"API key {key.id} ({key.name}) lacks the scope '{scope}'")
    return key
