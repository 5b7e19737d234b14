"""The Origin check of an upgrade (docs/protocol.md, "Connecting"): cross-site
WebSocket hijacking is refused before the upgrade (HTTP 403). Pure: no I/O.

With ``ALLOWED_ORIGINS``, the ``Origin``'s scheme, host and port must equal one of its
entries, both normalized (RFC 6454 §4: lower case, the scheme's default port made
explicit); without it, the host and port must be the request's own ``Host``. A request
without ``Origin`` is not a browser's and passes.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

__all__ = ["Origin", "origin_allowed"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

Origin = tuple[str, str, int | None]


def _origin_key(origin: str, *, default_scheme: str = "") -> Origin | None:
    """``(scheme, host, port)``, lower-case, the scheme's default port made explicit
    (RFC 6454 §4); ``None`` for what is not a ``scheme://host[:port]`` origin."""
    try:
        parts = urlsplit(origin.strip() if "//" in origin else f"{default_scheme}://{origin.strip()}")
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if not scheme or not host or parts.path not in ("", "/") or parts.query or parts.username is not None:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS.get(scheme)


@functools.lru_cache(maxsize=8)
def _allowed_keys(allowed: tuple[str, ...]) -> frozenset[Origin]:
    return frozenset(key for entry in allowed if (key := _origin_key(entry)) is not None)


def origin_allowed(allowed_origins: tuple[str, ...], headers: dict[str, str]) -> bool:
    """May an upgrade with these ``headers`` (lower-case names) go ahead?"""
    origin = headers.get("origin")
    if not origin:
        return True  # not a browser: no cross-site hijacking to prevent
    if "*" in allowed_origins:
        return True
    key = _origin_key(origin)
    if key is None:
        return False  # "null" (a sandboxed or file: page), or malformed
    if allowed_origins:
        return key in _allowed_keys(allowed_origins)
    own = _origin_key(headers.get("host", ""), default_scheme=key[0])
    return own is not None and own[1:] == key[1:]
