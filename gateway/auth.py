"""Authentication of ``/ws`` and ``/ws/stats`` (DESIGN §6).

Credentials, in order: ``Authorization: Bearer <jwt>``, ``X-API-Key: <key>``,
``?token=<jwt>`` (browsers cannot set headers; defect 2). JWTs as the platform issues
them: an algorithm allow-list, ``exp`` required, ``nbf`` and ``iss`` checked, the user
from ``user_id`` (else ``sub``) as a string (defect 1: the original compared a UUID
with a string and refused everyone), the tenant from ``organization_id``.

API keys are stored only as SHA-256 digests, in the Redis hash ``ws:api_keys``
(``flowwire api-key``). Neither tokens nor keys are ever logged.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from gateway.config import Config

__all__ = [
    "API_KEYS_KEY",
    "ApiKeyStore",
    "AuthError",
    "Authenticator",
    "Denial",
    "Identity",
    "MemoryApiKeys",
    "RedisApiKeys",
    "digest",
    "mint_token",
    "new_api_key",
]

API_KEYS_KEY = "ws:api_keys"


class AuthError(Exception):
    """Authentication failed: HTTP 401 before the upgrade. The message is safe to show."""


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    org_id: str | None = None
    permissions: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    expires_at: float | None = None  # epoch seconds; the connection closes with 4001
    method: str = "jwt"


@dataclass(frozen=True, slots=True)
class Denial:
    """An upgrade refused before it happens: HTTP ``status`` with a JSON body
    ``{"error": message, "code": code}``."""

    status: int
    message: str
    code: str

    def body(self) -> bytes:
        return json.dumps({"error": self.message, "code": self.code}).encode()


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return "fwk_" + secrets.token_urlsafe(32)


class ApiKeyStore(Protocol):
    async def lookup(self, key_digest: str) -> dict[str, Any] | None: ...


class RedisApiKeys:
    """``ws:api_keys``: digest -> JSON ``{"user", "org", "label", "created"}``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def lookup(self, key_digest: str) -> dict[str, Any] | None:
        raw = await self.client.hget(API_KEYS_KEY, key_digest)
        return None if raw is None else dict(json.loads(raw))


class MemoryApiKeys:
    def __init__(self, records: Mapping[str, dict[str, Any]] | None = None) -> None:
        self.records = dict(records or {})

    async def lookup(self, key_digest: str) -> dict[str, Any] | None:
        return self.records.get(key_digest)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return ()


class Authenticator:
    def __init__(self, config: Config, api_keys: ApiKeyStore | None) -> None:
        self.algorithms = list(config.jwt_algorithms)
        self.issuer = config.jwt_issuer
        self.key = config.jwt_public_key or config.jwt_secret
        self.api_keys = api_keys

    @property
    def jwt_enabled(self) -> bool:
        return bool(self.key)

    async def authenticate(self, headers: Mapping[str, str], query: Mapping[str, str]) -> Identity:
        """``headers`` with lower-case names. Raises :class:`AuthError`."""
        authorization = headers.get("authorization", "")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("Authorization must be 'Bearer <token>'")
            return self.verify_jwt(token.strip())
        if api_key := headers.get("x-api-key", ""):
            return await self._verify_api_key(api_key)
        if token := query.get("token", ""):
            return self.verify_jwt(token)
        raise AuthError("authentication required: Bearer token, X-API-Key or ?token=")

    def verify_jwt(self, token: str) -> Identity:
        if not self.key:
            raise AuthError("JWT authentication is not configured on this gateway")
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                issuer=self.issuer,
                options={"require": ["exp", "iss"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token not valid yet (nbf)") from None
        except jwt.InvalidIssuerError:
            raise AuthError("token issuer not accepted") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {type(exc).__name__}") from None
        user = claims.get("user_id") or claims.get("sub")
        if not user:
            raise AuthError("token has no user_id or sub")
        org = claims.get("organization_id")
        return Identity(
            user_id=str(user),
            org_id=str(org) if org else None,
            permissions=_strings(claims.get("permissions")),
            roles=_strings(claims.get("roles")),
            expires_at=float(claims["exp"]),
            method="jwt",
        )

    async def _verify_api_key(self, key: str) -> Identity:
        if self.api_keys is None:
            raise AuthError("API keys need Redis; this gateway runs on the embedded log")
        record = await self.api_keys.lookup(digest(key))
        if record is None or record.get("revoked"):
            raise AuthError("unknown API key")
        return Identity(
            user_id=str(record["user"]),
            org_id=record.get("org") or None,
            method="api_key",
        )


def mint_token(
    secret: str,
    user_id: str,
    *,
    org_id: str | None = None,
    ttl: float = 900.0,
    issuer: str = "intelligent-workflows",
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    """A token shaped like the platform's (development and tests)."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "user_id": user_id,
        "sub": user_id,
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl),
        "roles": [],
        "permissions": [],
        **claims,
    }
    if org_id:
        payload["organization_id"] = org_id
    return jwt.encode(payload, secret, algorithm=algorithm)
