"""Authentication of ``/ws`` and ``/ws/stats`` (docs/operations.md, "Credentials").

Credentials, in order: ``Authorization: Bearer <jwt>``, ``X-API-Key: <key>``,
``?token=<jwt>`` (browsers cannot set headers; defect 2). JWTs as the platform issues
them: an algorithm allow-list, ``exp`` required, ``nbf`` and ``iss`` checked, the user
from ``user_id`` (else ``sub``) as a string (defect 1: the original compared a UUID
with a string and refused everyone), the tenant from ``organization_id``.

API keys are stored only as SHA-256 digests, in the Redis hash ``ws:api_keys``
(``flowwire api-key``). Neither tokens nor keys are ever logged.

Expiry is one rule (``JWT_LEEWAY``, 5 s by default, for clock skew between the issuer and
the gateway): a token is valid until ``exp + JWT_LEEWAY``. The door refuses it after that
instant and the connection's timer closes it (4001) at that instant, so a token accepted
is never closed at once, and a reconnect with the same token after its 4001 is refused
with 401 instead of being accepted and closed again.

Revocation: a key deleted from ``ws:api_keys`` is refused at the door at once, and its
open connections are closed (4001, ``API key revoked``) by the gateway's periodic
re-check (``API_KEY_RECHECK``), one ``HMGET`` for all of them (:meth:`ApiKeyStore.revoked`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from gateway.config import Config

__all__ = [
    "API_KEYS_KEY",
    "Admission",
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
    #: epoch seconds (the token's ``exp`` plus ``JWT_LEEWAY``): the connection closes
    #: with 4001 then
    expires_at: float | None = None
    method: str = "jwt"
    #: the SHA-256 digest of the API key (``method == "api_key"``), for the re-check
    key_digest: str | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """An upgrade admitted: who, and the subprotocol selected (``None``: version 1)."""

    identity: Identity
    protocol: str | None = None


@dataclass(frozen=True, slots=True)
class Denial:
    """An upgrade refused before it happens: HTTP ``status`` with a JSON body
    ``{"error": message, "code": code}`` (and ``"supported"``: the subprotocols, when an
    offered one is refused)."""

    status: int
    message: str
    code: str
    supported: tuple[str, ...] | None = None

    def body(self) -> bytes:
        body: dict[str, object] = {"error": self.message, "code": self.code}
        if self.supported is not None:
            body["supported"] = list(self.supported)
        return json.dumps(body).encode()


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return "fwk_" + secrets.token_urlsafe(32)


class ApiKeyStore(Protocol):
    async def lookup(self, key_digest: str) -> dict[str, Any] | None: ...

    async def revoked(self, digests: Iterable[str]) -> set[str]:
        """Which of ``digests`` no longer name a usable key (one round trip)."""


def _usable(raw: Any) -> bool:
    if raw is None:
        return False
    try:
        record = json.loads(raw)
    except ValueError:
        return False
    return isinstance(record, dict) and not record.get("revoked")


class RedisApiKeys:
    """``ws:api_keys``: digest -> JSON ``{"user", "org", "label", "created"}``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def lookup(self, key_digest: str) -> dict[str, Any] | None:
        raw = await self.client.hget(API_KEYS_KEY, key_digest)
        return None if raw is None else dict(json.loads(raw))

    async def revoked(self, digests: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(digests))
        if not wanted:
            return set()
        raws = await self.client.hmget(API_KEYS_KEY, wanted)
        return {d for d, raw in zip(wanted, raws, strict=True) if not _usable(raw)}


class MemoryApiKeys:
    def __init__(self, records: Mapping[str, dict[str, Any]] | None = None) -> None:
        self.records = dict(records or {})

    async def lookup(self, key_digest: str) -> dict[str, Any] | None:
        return self.records.get(key_digest)

    async def revoked(self, digests: Iterable[str]) -> set[str]:
        return {d for d in digests if d not in self.records or self.records[d].get("revoked")}


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return ()


class Authenticator:
    def __init__(self, config: Config, api_keys: ApiKeyStore | None) -> None:
        self.algorithms = list(config.jwt_algorithms)
        self.issuer = config.jwt_issuer
        self.key = config.jwt_public_key or config.jwt_secret
        self.leeway = config.jwt_leeway
        self.api_keys = api_keys

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

    async def revoked(self, digests: Iterable[str]) -> set[str]:
        """Which API-key digests are no longer usable (:meth:`ApiKeyStore.revoked`)."""
        return set() if self.api_keys is None else await self.api_keys.revoked(digests)

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
                leeway=self.leeway,
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
            expires_at=float(claims["exp"]) + self.leeway,
            method="jwt",
        )

    async def _verify_api_key(self, key: str) -> Identity:
        if self.api_keys is None:
            raise AuthError("API keys need Redis; this gateway runs on the embedded log")
        key_digest = digest(key)
        record = await self.api_keys.lookup(key_digest)
        if record is None or record.get("revoked"):
            raise AuthError("unknown API key")
        return Identity(
            user_id=str(record["user"]),
            org_id=record.get("org") or None,
            method="api_key",
            key_digest=key_digest,
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
