"""``qwatch keys``: create, list and revoke API keys (``shared/apikeys.py``)."""

from __future__ import annotations

from typing import Annotated

import typer

from shared.apikeys import SCOPES, KeyFileError, KeyStore
from shared.settings import AuthSettings

keys_app = typer.Typer(name="keys", help="API keys: scoped, hashed at rest.", no_args_is_help=True)


def _store() -> KeyStore:
    try:
        return KeyStore(AuthSettings().keys_file)
    except KeyFileError as exc:
        typer.echo(f"qwatch: {exc}", err=True)
        raise typer.Exit(2) from None


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="who or what uses it, e.g. 'routing-service'")],
    scope: Annotated[list[str], typer.Option(help=f"one or more of: {', '.join(SCOPES)}")],
) -> None:
    """Create a key and print it once (only its hash is kept)."""
    try:
        key, token = _store().create(name, scope)
    except KeyFileError as exc:
        typer.echo(f"qwatch: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(token)
    typer.echo(
        f"key {key.id} ({key.name}, scopes {', '.join(key.scopes)}): shown once, store it now",
        err=True,
    )


@keys_app.command("list")
def list_keys() -> None:
    """The keys: id, name, scopes, created, revoked (never the key itself)."""
    store = _store()
    for k in store.all():
        state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
        typer.echo(f"{k.id}  {k.name:<24} {','.join(k.scopes):<20} created {k.created_at}  {state}")


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="the key's id (8 hex digits)")]) -> None:
    """Revoke a key; both services refuse it within a second."""
    try:
        key = _store().revoke(key_id)
    except KeyFileError as exc:
        typer.echo(f"qwatch: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"key {key.id} ({key.name}) revoked at {key.revoked_at}")
