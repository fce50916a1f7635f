"""API keys: hashed at rest, scoped, revocable, reloaded; the policy by environment."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared import apikeys
from shared.apikeys import AuthError, AuthPolicy, KeyFileError, KeyStore, authorize, token_from


def test_create_stores_only_a_hash_and_verifies(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = KeyStore(path)
    key, token = store.create("routing-service", ["read", "ack"])
    assert apikeys.KEY_RE.fullmatch(token)
    text = path.read_text()
    assert token not in text
    assert token.split("_", 2)[2] not in text  # the secret (base64url: it may hold "_")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.verify(token) == key
    assert KeyStore(path).verify(token) == key  # another process reading the file
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert store.verify(forged) is None
    assert store.verify("qw_00000000_" + "x" * 43) is None
    assert store.verify("not a key") is None


def test_scopes_and_admin(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "k.json")
    reader, _ = store.create("r", ["read"])
    admin, _ = store.create("a", ["admin"])
    assert reader.allows("read")
    assert not reader.allows("ack")
    assert all(admin.allows(s) for s in apikeys.SCOPES)


def test_revocation_reaches_another_reader_within_a_second(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    writer, reader = KeyStore(path), KeyStore(path)
    key, token = writer.create("svc", ["ingest"])
    time.sleep(apikeys.RELOAD_CHECK_S + 0.05)
    assert reader.verify(token) is not None
    writer.revoke(key.id)
    time.sleep(apikeys.RELOAD_CHECK_S + 0.05)
    assert reader.verify(token) is None
    with pytest.raises(KeyFileError, match="no key"):
        writer.revoke("deadbeef")


@pytest.mark.parametrize(
    ("name", "scopes"),
    [("", ["read"]), ("x" * 65, ["read"]), ("ok", []), ("ok", ["root"]), ("-bad", ["read"])],
)
def test_create_refuses_bad_input(tmp_path: Path, name: str, scopes: list[str]) -> None:
    with pytest.raises(KeyFileError):
        KeyStore(tmp_path / "k.json").create(name, scopes)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"keys": [{"id": "zz"}]}',
        json.dumps({"keys": [{"id": "0123abcd", "name": "n", "scopes": ["god"],
                              "sha256": "0" * 64, "created_at": "t"}]}).encode(),
    ],
)  # fmt: skip
def test_a_bad_key_file_is_refused_with_its_reason(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "k.json"
    path.write_bytes(body)
    with pytest.raises(KeyFileError, match=str(path)):
        KeyStore(path)


def test_a_broken_file_later_keeps_the_last_good_keys(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    store = KeyStore(path)
    _, token = store.create("svc", ["ingest"])
    path.write_text("{half")
    os.utime(path, (time.time() + 5, time.time() + 5))
    time.sleep(apikeys.RELOAD_CHECK_S + 0.05)
    assert store.verify(token) is not None


def test_policy_by_environment(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "k.json")
    dev = AuthPolicy(store, "development", protect_reads=False)
    prod = AuthPolicy(store, "production", protect_reads=False)
    assert not dev.enforced("ingest")  # a laptop demo: no key yet
    assert prod.enforced("ingest")
    assert not prod.enforced("read")
    assert AuthPolicy(store, "production", protect_reads=True).enforced("read")
    with pytest.raises(AuthError) as exc:
        authorize(prod, "ack", None)
    assert exc.value.status == 401
    _, token = store.create("ops", ["read"])
    assert dev.enforced("ingest")  # a key exists: development enforces too
    with pytest.raises(AuthError) as exc:
        authorize(dev, "ack", token)
    assert exc.value.status == 403
    assert "lacks the scope 'ack'" in exc.value.detail
    assert authorize(prod, "ack", store.create("a", ["ack"])[1]) is not None
    assert authorize(dev, "read", None) is None  # reads open


def test_token_from_headers() -> None:
    assert token_from("Bearer qw_x", None) == "qw_x"
    assert token_from("bearer  qw_x ", None) == "qw_x"
    assert token_from("Basic abc", None) is None
    assert token_from(None, "qw_y") == "qw_y"
    assert token_from(None, None) is None


def test_cli_create_list_revoke(tmp_path: Path) -> None:
    env = {**os.environ, "QW_API_KEYS_FILE": str(tmp_path / "k.json")}
    qwatch = [sys.executable, "-m", "services.cli", "keys"]
    made = subprocess.run(
        [*qwatch, "create", "--name", "routing", "--scope", "read", "--scope", "ack"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    token = made.stdout.strip()
    assert apikeys.KEY_RE.fullmatch(token)
    assert "shown once" in made.stderr
    listed = subprocess.run([*qwatch, "list"], capture_output=True, text=True, env=env, check=True)
    assert "routing" in listed.stdout
    assert token not in listed.stdout
    key_id = token.split("_")[1]
    subprocess.run([*qwatch, "revoke", key_id], capture_output=True, env=env, check=True)
    assert KeyStore(tmp_path / "k.json").verify(token) is None
    bad = subprocess.run(
        [*qwatch, "create", "--name", "x", "--scope", "root"], capture_output=True, text=True, env=env
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.startswith("qwatch: scopes must be")
    assert "Traceback" not in bad.stderr
