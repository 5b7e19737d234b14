"""Gateway settings, read once from the environment (DESIGN §7, STYLE habit 8).

Every setting is listed in :data:`SETTINGS` with its default and meaning; that table is
what ``flowwire serve --help`` prints and what ``docs/operations.md`` documents. An
invalid value raises :class:`SettingError` naming the setting; the CLI exits 2.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from publisher.settings import (
    DEFAULT_MAXLEN,
    DEFAULT_STREAM_KEY,
    SettingError,
    parse_duration,
    parse_int,
    redis_url_from_env,
)

__all__ = ["SETTINGS", "Config", "SettingError", "settings_help"]

#: name -> (default, meaning). The source of truth for --help and the docs.
SETTINGS: Final[dict[str, tuple[str, str]]] = {
    "REDIS_URL": (
        "",
        "Redis URL (redis://, rediss://, unix://). Unset (and no REDIS_HOST): the embedded single-node log",
    ),
    "REDIS_HOST": ("", "the original's Redis host, used when REDIS_URL is unset"),
    "REDIS_PORT": ("6379", "the original's Redis port"),
    "REDIS_PASSWORD": ("", "Redis password (with REDIS_HOST)"),
    "REDIS_DB": ("0", "Redis database number (with REDIS_HOST)"),
    "STREAM_KEY": (DEFAULT_STREAM_KEY, "the stream the gateway reads"),
    "STREAM_MAXLEN": (
        str(DEFAULT_MAXLEN),
        "retention of the embedded log (publishers trim the Redis stream)",
    ),
    "JWT_SECRET": ("", "HS256 shared secret of the platform's tokens"),
    "JWT_ALGORITHMS": (
        "HS256",
        "comma-separated allow-list: HS256, HS384, HS512, RS256, ES256, ...",
    ),
    "JWT_PUBLIC_KEY_FILE": ("", "PEM public key for RS*/ES* tokens"),
    "JWT_ISSUER": ("intelligent-workflows", "required `iss` claim"),
    "ALLOWED_ORIGINS": (
        "",
        "comma-separated origins allowed to open /ws; unset: no Origin or same host only; * allows any",
    ),
    "SERVER_READ_TIMEOUT": (
        "15s",
        "HTTP keep-alive idle timeout, and the time a client has to finish the upgrade",
    ),
    "SERVER_WRITE_TIMEOUT": (
        "15s",
        "a connection whose socket accepts no data for this long is closed (4008); "
        "also how long a close waits for the client's close frame",
    ),
    "LOG_LEVEL": ("info", "debug, info, warning, error"),
    "LOG_FORMAT": ("text", "text or json"),
    "CLIENT_SEND_BUFFER": (
        "256",
        "events queued per connection before it is closed as a slow consumer (4008)",
    ),
    "WS_PING_INTERVAL": ("54s", "protocol ping interval"),
    "WS_PONG_TIMEOUT": (
        "60s",
        "close a connection with no pong this long after the previous ping (must exceed WS_PING_INTERVAL)",
    ),
    "WS_COMPRESSION": (
        "off",
        "permessage-deflate: on or off (per-client compression costs CPU per frame)",
    ),
    "MAX_MESSAGE_SIZE": ("524288", "largest inbound message in bytes (close 1009 above)"),
    "MAX_SUBSCRIPTIONS": ("100", "channels per connection (TOO_MANY_SUBSCRIPTIONS above)"),
    "MAX_CONNECTIONS": ("50000", "connections per process (close 1013 above); 0: unlimited"),
    "CLIENT_RATE_LIMIT": (
        "20",
        "inbound messages per second per connection, bursts of twice that; 0: unlimited",
    ),
    "READER_BATCH": ("500", "stream entries per XREAD"),
    "READER_STALL_TIMEOUT": (
        "30s",
        "/readyz fails when the reader has not completed a read for this long",
    ),
    "MIRROR_ENABLED": (
        "on",
        "mirror every entry to ws:broadcast:all in the legacy format (on/off)",
    ),
    "MIRROR_CLAIM_IDLE": (
        "30s",
        "a dead pod's pending mirror entries are claimed after this idle time",
    ),
    "DRAIN_WINDOW": (
        "10s",
        "on SIGTERM, clients are closed with 1012 in batches spread over this window",
    ),
}

_LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")


def settings_help() -> str:
    width = max(map(len, SETTINGS))
    lines = ["settings (environment variables):"]
    for name, (default, meaning) in SETTINGS.items():
        shown = f" [default: {default}]" if default else ""
        lines.append(f"  {name:<{width}}  {meaning}{shown}")
    return "\n".join(lines)


class _Env:
    """Typed access to the environment; each error names its setting."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def raw(self, name: str) -> str:
        value = self.env.get(name, "").strip()
        return value if value else SETTINGS[name][0]

    def int(self, name: str, minimum: int = 0) -> int:
        return parse_int(name, self.raw(name), minimum)

    def number(self, name: str) -> float:
        raw = self.raw(name)
        try:
            value = float(raw)
        except ValueError:
            raise SettingError(name, raw, "a number") from None
        if not 0 <= value < float("inf"):
            raise SettingError(name, raw, "a non-negative number")
        return value

    def duration(self, name: str, *, positive: bool = True) -> float:
        value = parse_duration(name, self.raw(name))
        if positive and value <= 0:
            raise SettingError(name, self.raw(name), "a positive duration")
        return value

    def bool(self, name: str) -> bool:
        raw = self.raw(name).lower()
        if raw in ("1", "on", "true", "yes"):
            return True
        if raw in ("0", "off", "false", "no"):
            return False
        raise SettingError(name, raw, "on or off")

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        raw = self.raw(name).lower()
        if raw not in choices:
            raise SettingError(name, raw, " or ".join(choices))
        return raw

    def list(self, name: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in self.raw(name).split(",") if item.strip())


@dataclass(frozen=True, slots=True)
class Config:
    redis_url: str | None = None
    stream_key: str = DEFAULT_STREAM_KEY
    stream_maxlen: int = DEFAULT_MAXLEN
    jwt_secret: str = ""
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_public_key: str = ""
    jwt_issuer: str = "intelligent-workflows"
    allowed_origins: tuple[str, ...] = ()
    read_timeout: float = 15.0
    write_timeout: float = 15.0
    log_level: str = "info"
    log_format: str = "text"
    send_buffer: int = 256
    ping_interval: float = 54.0
    pong_timeout: float = 60.0
    compression: bool = False
    max_message_size: int = 512 * 1024
    max_subscriptions: int = 100
    max_connections: int = 50_000
    rate_limit: float = 20.0
    reader_batch: int = 500
    reader_stall_timeout: float = 30.0
    mirror_enabled: bool = True
    mirror_claim_idle: float = 30.0
    drain_window: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = _Env(os.environ if environ is None else environ)
        algorithms = env.list("JWT_ALGORITHMS")
        known = {
            "HS256",
            "HS384",
            "HS512",
            "RS256",
            "RS384",
            "RS512",
            "ES256",
            "ES384",
            "ES512",
            "PS256",
            "EdDSA",
        }
        bad = [a for a in algorithms if a not in known]
        if bad or not algorithms:
            raise SettingError("JWT_ALGORITHMS", env.raw("JWT_ALGORITHMS"), f"a list of {sorted(known)}")
        public_key = ""
        if key_file := env.raw("JWT_PUBLIC_KEY_FILE"):
            try:
                public_key = Path(key_file).read_text()
            except OSError as exc:
                raise SettingError(
                    "JWT_PUBLIC_KEY_FILE", key_file, f"a readable PEM file ({exc.strerror})"
                ) from None
            if "BEGIN" not in public_key:
                raise SettingError("JWT_PUBLIC_KEY_FILE", key_file, "a PEM public key")
        config = cls(
            redis_url=redis_url_from_env(env.env),
            stream_key=env.raw("STREAM_KEY"),
            stream_maxlen=env.int("STREAM_MAXLEN", minimum=1),
            jwt_secret=env.env.get("JWT_SECRET", ""),
            jwt_algorithms=algorithms,
            jwt_public_key=public_key,
            jwt_issuer=env.raw("JWT_ISSUER"),
            allowed_origins=env.list("ALLOWED_ORIGINS"),
            read_timeout=env.duration("SERVER_READ_TIMEOUT"),
            write_timeout=env.duration("SERVER_WRITE_TIMEOUT"),
            log_level=env.choice("LOG_LEVEL", _LOG_LEVELS),
            log_format=env.choice("LOG_FORMAT", ("text", "json")),
            send_buffer=env.int("CLIENT_SEND_BUFFER", minimum=1),
            ping_interval=env.duration("WS_PING_INTERVAL"),
            pong_timeout=env.duration("WS_PONG_TIMEOUT"),
            compression=env.bool("WS_COMPRESSION"),
            max_message_size=env.int("MAX_MESSAGE_SIZE", minimum=1024),
            max_subscriptions=env.int("MAX_SUBSCRIPTIONS", minimum=1),
            max_connections=env.int("MAX_CONNECTIONS"),
            rate_limit=env.number("CLIENT_RATE_LIMIT"),
            reader_batch=env.int("READER_BATCH", minimum=1),
            reader_stall_timeout=env.duration("READER_STALL_TIMEOUT"),
            mirror_enabled=env.bool("MIRROR_ENABLED"),
            mirror_claim_idle=env.duration("MIRROR_CLAIM_IDLE"),
            drain_window=env.duration("DRAIN_WINDOW", positive=False),
        )
        config.validate()
        return config

    def validate(self) -> None:
        """Checks across settings."""
        if self.pong_timeout <= self.ping_interval:
            raise SettingError(
                "WS_PONG_TIMEOUT",
                f"{self.pong_timeout:g}s",
                f"more than WS_PING_INTERVAL ({self.ping_interval:g}s)",
            )
        uses_hmac = any(a.startswith("HS") for a in self.jwt_algorithms)
        uses_keys = any(not a.startswith("HS") for a in self.jwt_algorithms)
        if uses_keys and not self.jwt_public_key:
            raise SettingError(
                "JWT_PUBLIC_KEY_FILE", "", "a PEM file, since JWT_ALGORITHMS has RS*/ES* algorithms"
            )
        if uses_hmac and uses_keys:
            raise SettingError(
                "JWT_ALGORITHMS",
                ",".join(self.jwt_algorithms),
                "HMAC or public-key algorithms, not both",
            )
        if uses_hmac and self.jwt_secret and len(self.jwt_secret.encode()) < 32:
            raise SettingError("JWT_SECRET", "<hidden>", "at least 32 bytes (RFC 7518 §3.2)")

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level.upper()]

    @property
    def pong_wait(self) -> float:
        """Seconds to wait for a pong after a ping: the original's 60 s read deadline
        less the 54 s ping interval."""
        return self.pong_timeout - self.ping_interval
