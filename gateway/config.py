"""Gateway settings, read once from the environment (docs/operations.md, "Settings").

Every setting is listed in :data:`gateway.settings.SETTINGS` with its default and
meaning; that table is what ``flowwire serve --help`` prints, what
``docs/operations.md`` documents, and where :class:`Config`'s defaults come from (each
default written once). An invalid value raises :class:`SettingError` naming the
setting; the CLI exits 2.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gateway.settings import SETTINGS, settings_help
from publisher.settings import SettingError, parse_duration, parse_int, redis_url_from_env
from schemas.partition import MAX_PARTITIONS

__all__ = ["SETTINGS", "Config", "SettingError", "settings_help"]

_LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
_JWT_ALGORITHMS: Final = frozenset(
    ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA")
)


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


#: Config field -> (setting, how it is read: an _Env method and its keywords). The
#: settings read otherwise (the Redis target, the JWT secret, algorithms and key) are in
#: :func:`_read`.
_FIELDS: Final[dict[str, tuple[str, str, dict[str, Any]]]] = {
    "stream_key": ("STREAM_KEY", "raw", {}),
    "stream_partitions": ("STREAM_PARTITIONS", "int", {"minimum": 1}),
    "stream_maxlen": ("STREAM_MAXLEN", "int", {"minimum": 1}),
    "jwt_issuer": ("JWT_ISSUER", "raw", {}),
    "jwt_leeway": ("JWT_LEEWAY", "duration", {"positive": False}),
    "api_key_recheck": ("API_KEY_RECHECK", "duration", {}),
    "token_refresh_notice": ("TOKEN_REFRESH_NOTICE", "duration", {"positive": False}),
    "allowed_origins": ("ALLOWED_ORIGINS", "list", {}),
    "read_timeout": ("SERVER_READ_TIMEOUT", "duration", {}),
    "write_timeout": ("SERVER_WRITE_TIMEOUT", "duration", {}),
    "log_level": ("LOG_LEVEL", "choice", {"choices": _LOG_LEVELS}),
    "log_format": ("LOG_FORMAT", "choice", {"choices": ("text", "json")}),
    "send_buffer": ("CLIENT_SEND_BUFFER", "int", {"minimum": 1}),
    "send_buffer_bytes": ("CLIENT_SEND_BUFFER_BYTES", "int", {"minimum": 1024}),
    "replay_batch": ("REPLAY_BATCH", "int", {"minimum": 1}),
    "replay_rate": ("REPLAY_RATE", "number", {}),
    "replay_connection_rate": ("REPLAY_CONNECTION_RATE", "number", {}),
    "ping_interval": ("WS_PING_INTERVAL", "duration", {}),
    "pong_timeout": ("WS_PONG_TIMEOUT", "duration", {}),
    "compression": ("WS_COMPRESSION", "bool", {}),
    "max_message_size": ("MAX_MESSAGE_SIZE", "int", {"minimum": 1024}),
    "max_event_size": ("MAX_EVENT_SIZE", "int", {"minimum": 1024}),
    "listen_backlog": ("LISTEN_BACKLOG", "int", {"minimum": 1}),
    "max_subscriptions": ("MAX_SUBSCRIPTIONS", "int", {"minimum": 1}),
    "max_connections": ("MAX_CONNECTIONS", "int", {}),
    "max_connections_per_user": ("MAX_CONNECTIONS_PER_USER", "int", {}),
    "max_filter_values": ("MAX_FILTER_VALUES", "int", {}),
    "rate_limit": ("CLIENT_RATE_LIMIT", "number", {}),
    "reader_batch": ("READER_BATCH", "int", {"minimum": 1}),
    "reader_stall_timeout": ("READER_STALL_TIMEOUT", "duration", {}),
    "mirror_enabled": ("MIRROR_ENABLED", "bool", {}),
    "mirror_claim_idle": ("MIRROR_CLAIM_IDLE", "duration", {}),
    "drain_window": ("DRAIN_WINDOW", "duration", {"positive": False}),
    "max_pending_sockets": ("MAX_PENDING_SOCKETS", "int", {}),
    "presence_enabled": ("PRESENCE", "bool", {}),
    "presence_interval": ("PRESENCE_INTERVAL", "duration", {}),
    "presence_heartbeat": ("PRESENCE_HEARTBEAT", "duration", {}),
    "presence_max_members": ("PRESENCE_MAX_MEMBERS", "int", {"minimum": 1}),
}


def _read(env: _Env) -> dict[str, Any]:
    """Every Config field, as ``env`` sets it (an empty environment: the defaults)."""
    values = {field: getattr(env, how)(name, **kw) for field, (name, how, kw) in _FIELDS.items()}
    algorithms = env.list("JWT_ALGORITHMS")
    bad = [a for a in algorithms if a not in _JWT_ALGORITHMS]
    if bad or not algorithms:
        raise SettingError(
            "JWT_ALGORITHMS", env.raw("JWT_ALGORITHMS"), f"a list of {sorted(_JWT_ALGORITHMS)}"
        )
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
    return {
        **values,
        "redis_url": redis_url_from_env(env.env),
        "jwt_secret": env.env.get("JWT_SECRET", ""),
        "jwt_algorithms": algorithms,
        "jwt_public_key": public_key,
    }


_D: Final = _read(_Env({}))


@dataclass(frozen=True, slots=True)
class Config:
    """The settings of one gateway process; ``Config()`` has every default."""

    redis_url: str | None = _D["redis_url"]
    stream_key: str = _D["stream_key"]
    stream_partitions: int = _D["stream_partitions"]
    stream_maxlen: int = _D["stream_maxlen"]
    jwt_secret: str = _D["jwt_secret"]
    jwt_algorithms: tuple[str, ...] = _D["jwt_algorithms"]
    jwt_public_key: str = _D["jwt_public_key"]
    jwt_issuer: str = _D["jwt_issuer"]
    jwt_leeway: float = _D["jwt_leeway"]
    api_key_recheck: float = _D["api_key_recheck"]
    token_refresh_notice: float = _D["token_refresh_notice"]
    allowed_origins: tuple[str, ...] = _D["allowed_origins"]
    read_timeout: float = _D["read_timeout"]
    write_timeout: float = _D["write_timeout"]
    log_level: str = _D["log_level"]
    log_format: str = _D["log_format"]
    send_buffer: int = _D["send_buffer"]
    send_buffer_bytes: int = _D["send_buffer_bytes"]
    replay_batch: int = _D["replay_batch"]
    replay_rate: float = _D["replay_rate"]
    replay_connection_rate: float = _D["replay_connection_rate"]
    ping_interval: float = _D["ping_interval"]
    pong_timeout: float = _D["pong_timeout"]
    compression: bool = _D["compression"]
    max_message_size: int = _D["max_message_size"]
    max_event_size: int = _D["max_event_size"]
    listen_backlog: int = _D["listen_backlog"]
    max_subscriptions: int = _D["max_subscriptions"]
    max_connections: int = _D["max_connections"]
    max_connections_per_user: int = _D["max_connections_per_user"]
    max_filter_values: int = _D["max_filter_values"]
    rate_limit: float = _D["rate_limit"]
    reader_batch: int = _D["reader_batch"]
    reader_stall_timeout: float = _D["reader_stall_timeout"]
    mirror_enabled: bool = _D["mirror_enabled"]
    mirror_claim_idle: float = _D["mirror_claim_idle"]
    drain_window: float = _D["drain_window"]
    max_pending_sockets: int = _D["max_pending_sockets"]
    presence_enabled: bool = _D["presence_enabled"]
    presence_interval: float = _D["presence_interval"]
    presence_heartbeat: float = _D["presence_heartbeat"]
    presence_max_members: int = _D["presence_max_members"]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        config = cls(**_read(_Env(os.environ if environ is None else environ)))
        config.validate()
        return config

    def validate(self) -> None:
        """Checks across settings."""
        if self.stream_partitions > MAX_PARTITIONS:
            raise SettingError(
                "STREAM_PARTITIONS", str(self.stream_partitions), f"an integer in 1..{MAX_PARTITIONS}"
            )
        if self.stream_partitions > 1 and not self.redis_url:
            raise SettingError(
                "STREAM_PARTITIONS",
                str(self.stream_partitions),
                "1 with the embedded event log (partitioned streams need Redis: set REDIS_URL)",
            )
        if self.pong_timeout <= self.ping_interval:
            raise SettingError(
                "WS_PONG_TIMEOUT",
                f"{self.pong_timeout:g}s",
                f"more than WS_PING_INTERVAL ({self.ping_interval:g}s)",
            )
        if self.presence_heartbeat < self.presence_interval:
            raise SettingError(
                "PRESENCE_HEARTBEAT",
                f"{self.presence_heartbeat:g}s",
                f"at least PRESENCE_INTERVAL ({self.presence_interval:g}s)",
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
