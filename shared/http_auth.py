"""API keys on the HTTP services: a FastAPI dependency per scope (``shared/apikeys.py``).

``Authorization: Bearer qw_...`` or ``X-API-Key: qw_...``; 401 when a key is needed and
missing, unknown or revoked, 403 when the key lacks the scope. Both are in the OpenAPI
documents, with the two security schemes.

An operation declares ``security`` in the published document only while the service
enforces its scope (``publish_security``): in development with no key, or for reads that are
not protected, a call without a key is served, and a document that still asked for a key
would be wrong about it (a generated client would demand one; schemathesis' ignored-auth
check said so). The document is computed per request, so it follows the first key created.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from shared.apikeys import ApiKey, AuthError, AuthPolicy, KeyStore, Scope, authorize
from shared.settings import AuthSettings

_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer qw_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")


class AuthProblem(BaseModel):
    detail: str


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": AuthProblem,
        "description": "an API key is required here and was missing, unknown or revoked "
        "(keys are enforced outside development, or once one exists; docs/operations.md)",
    },
    403: {"model": AuthProblem, "description": "the API key lacks the scope this call needs"},
}


# The same refusals with their content type said outright: for routes whose own answer is
# not JSON (the wall's HTML page), where FastAPI would file a ``model`` under the route's
# media type (``text/html``) although the refusal is JSON (schemathesis: ST105)
AUTH_RESPONSES_JSON: dict[int | str, dict[str, Any]] = {
    status: {
        "description": r["description"],
        "content": {"application/json": {"schema": AuthProblem.model_json_schema()}},
    }
    for status, r in AUTH_RESPONSES.items()
}


def require(scope: Scope) -> Callable[..., Awaitable[ApiKey | None]]:
    """A dependency that lets the call through when ``scope`` is not enforced or the caller's
    key has it; the key (or None) is its value, for audit trails."""

    async def dependency(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
        header: Annotated[str | None, Security(_header)] = None,
    ) -> ApiKey | None:
        policy: AuthPolicy | None = getattr(request.app.state, "auth", None)
        if policy is None:
            return None
        token = header.strip() if header else (bearer.credentials if bearer else None)
        try:
            return authorize(policy, scope, token)
        except AuthError as exc:
            raise HTTPException(
                exc.status, exc.detail, headers={"WWW-Authenticate": "Bearer"}
            ) from None

    return dependency


def publish_security(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document declare ``security`` only while ``app.state.auth``
    checks keys (``AuthPolicy.keys_on``; no policy: never). The operations that declare it
    are those with a ``require`` dependency, which a service adds for reads only when they
    are protected, so every such operation is enforced exactly when keys are on. The 401
    and 403 answers stay documented: they apply as soon as a key exists."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        doc = base()
        policy: AuthPolicy | None = getattr(app.state, "auth", None)
        if policy is not None and policy.keys_on():
            return doc
        doc = copy.copy(doc)
        doc["paths"] = {
            path: {
                method: {k: v for k, v in op.items() if k != "security"}
                if isinstance(op, dict) else op
                for method, op in ops.items()
            }
            for path, ops in doc.get("paths", {}).items()
        }  # fmt: skip
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def needs(scope: Scope) -> Any:
    """``dependencies=[needs("ack")]`` on a route."""
    return Depends(require(scope))


def policy(settings: AuthSettings | None = None) -> AuthPolicy:
    """The policy a service runs with, from ``QW_API_*`` and ``QW_ENV``."""
    s = settings or AuthSettings()
    return AuthPolicy(KeyStore(s.keys_file), s.environment, s.protect_reads)
