"""Redis connection settings shared by the publisher and the gateway (DESIGN §4, §7).

Read once, at the edge, from a URL or the environment: ``REDIS_URL``, else
``REDIS_HOST``/``REDIS_PORT``/``REDIS_PASSWORD``/``REDIS_DB`` (the original's names);
``STREAM_KEY``; ``STREAM_MAXLEN``; ``PUBLISH_TIMEOUT``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

__all__ = [
    "DEFAULT_MAXLEN",
    "DEFAULT_STREAM_KEY",
    "RedisSettings",
    "SettingError",
    "parse_duration",
    "parse_int",
    "redis_url_from_env",
]

DEFAULT_STREAM_KEY: Final = "ws:events"
DEFAULT_MAXLEN: Final = 1_000_000
DEFAULT_PUBLISH_TIMEOUT: Final = 2.0
DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"


class SettingError(ValueError):
    """A setting has an invalid value; the message names the setting."""

    def __init__(self, name: str, value: str, expected: str) -> None:
        super().__init__(f"{name}={value!r} is invalid: expected {expected}")
        self.name = name


_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(name: str, value: str) -> float:
    """``"15s"``, ``"500ms"``, ``"2m"``, ``"1h"`` or a bare number of seconds."""
    text = value.strip().lower()
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            number, scale = text[: -len(unit)], _UNITS[unit]
            break
    else:
        number, scale = text, 1.0
    try:
        seconds = float(number) * scale
    except ValueError:
        raise SettingError(name, value, "a duration such as 15s, 500ms or 2m") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise SettingError(name, value, "a non-negative, finite duration")
    return seconds


def parse_int(name: str, raw: str, minimum: int = 0) -> int:
    """An integer setting, at least ``minimum``; the error names the setting."""
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(name, raw, "an integer") from None
    if value < minimum:
        raise SettingError(name, raw, f"an integer >= {minimum}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    return default if raw is None or raw == "" else parse_int(name, raw, minimum)


def redis_url_from_env(env: Mapping[str, str]) -> str | None:
    """``REDIS_URL``, else one built from ``REDIS_HOST``/``PORT``/``PASSWORD``/``DB``;
    ``None`` when neither is set (the gateway then runs on its embedded log)."""
    url = env.get("REDIS_URL", "").strip()
    if url:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingError("REDIS_URL", url, "a redis://, rediss:// or unix:// URL")
        return url
    host = env.get("REDIS_HOST", "").strip()
    if not host:
        return None
    port = _int(env, "REDIS_PORT", 6379, minimum=1)
    if port > 65535:
        raise SettingError("REDIS_PORT", str(port), "a port number 1-65535")
    db = _int(env, "REDIS_DB", 0)
    password = env.get("REDIS_PASSWORD", "")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/{db}"


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where and how to append events."""

    url: str = DEFAULT_URL
    stream_key: str = DEFAULT_STREAM_KEY
    maxlen: int = DEFAULT_MAXLEN
    #: The longest a publish may block its caller, retries included (seconds).
    timeout: float = DEFAULT_PUBLISH_TIMEOUT

    def __post_init__(self) -> None:
        if not self.stream_key:
            raise SettingError("STREAM_KEY", self.stream_key, "a non-empty key")
        if self.maxlen < 0:
            raise SettingError("STREAM_MAXLEN", str(self.maxlen), "an integer >= 0")
        if not 0 < self.timeout < 3600:
            raise SettingError("PUBLISH_TIMEOUT", str(self.timeout), "a duration in (0, 1h)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RedisSettings:
        env = os.environ if env is None else env
        url = redis_url_from_env(env) or DEFAULT_URL
        timeout_raw = env.get("PUBLISH_TIMEOUT")
        return cls(
            url=url,
            stream_key=env.get("STREAM_KEY") or DEFAULT_STREAM_KEY,
            maxlen=_int(env, "STREAM_MAXLEN", DEFAULT_MAXLEN),
            timeout=(
                parse_duration("PUBLISH_TIMEOUT", timeout_raw) if timeout_raw else DEFAULT_PUBLISH_TIMEOUT
            ),
        )
