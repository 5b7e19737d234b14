"""Redis connection settings shared by the publisher and the gateway (docs/operations.md, "Settings").

Read once, at the edge, from a URL or the environment: ``REDIS_URL``, else
``REDIS_HOST``/``REDIS_PORT``/``REDIS_PASSWORD``/``REDIS_DB`` (the original's names),
else ``REDIS_SENTINELS``/``REDIS_SENTINEL_MASTER``/``REDIS_SENTINEL_PASSWORD`` (Sentinel),
else ``REDIS_CLUSTER_NODES`` (Cluster): one of the three, never two (docs/operations.md, "High availability");
``STREAM_KEY``; ``STREAM_PARTITIONS``; ``STREAM_MAXLEN``; ``PUBLISH_TIMEOUT``; ``PUBLISH_WAIT_REPLICAS`` and
``PUBLISH_DEDUPE_WINDOW`` (the strict publish, see ``publisher.client``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from schemas.partition import MAX_PARTITIONS, partition_keys

__all__ = [
    "DEFAULT_DEDUPE_WINDOW",
    "DEFAULT_MAXLEN",
    "DEFAULT_STREAM_KEY",
    "MissingSetting",
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
#: how long a publish's idempotency key is remembered when PUBLISH_WAIT_REPLICAS is set
DEFAULT_DEDUPE_WINDOW: Final = 300.0


class SettingError(ValueError):
    """A setting has an invalid value; the message names the setting."""

    def __init__(self, name: str, value: str, expected: str) -> None:
        super().__init__(f"{name}={value!r} is invalid: expected {expected}")
        self.name = name


class MissingSetting(SettingError):
    """A required setting is not set; the message names it and how to set it."""

    def __init__(self, name: str, hint: str) -> None:
        ValueError.__init__(self, f"{name} is not set: {hint}")
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
    """The Redis target (a URL, see ``publisher.connect``): ``REDIS_URL``, else one built
    from ``REDIS_HOST``/``PORT``/``PASSWORD``/``DB``, from ``REDIS_SENTINELS`` (with
    ``REDIS_SENTINEL_MASTER``), or from ``REDIS_CLUSTER_NODES``; ``None`` when none is
    set (the gateway then runs on its embedded log). Two of them set is an error that
    names both: which Redis is meant cannot be guessed."""
    from publisher.connect import cluster_url, parse_hostports, parse_target, sentinel_url

    url = env.get("REDIS_URL", "").strip()
    host = env.get("REDIS_HOST", "").strip()
    sentinels = env.get("REDIS_SENTINELS", "").strip()
    cluster = env.get("REDIS_CLUSTER_NODES", "").strip()
    chosen = [name for name, value in (("REDIS_URL", url), ("REDIS_HOST", host),
              ("REDIS_SENTINELS", sentinels), ("REDIS_CLUSTER_NODES", cluster)) if value]  # fmt: skip
    if (chosen[:2] != ["REDIS_URL", "REDIS_HOST"] and len(chosen) > 1) or len(chosen) > 2:
        raise ConflictingSettings(chosen)
    if env.get("REDIS_SENTINEL_MASTER", "").strip() and not sentinels:
        raise MissingSetting(
            "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER is set: list the sentinels (host:port,...)"
        )
    password = env.get("REDIS_PASSWORD", "") or None
    if sentinels:
        master = env.get("REDIS_SENTINEL_MASTER", "").strip()
        if not master:
            raise MissingSetting("REDIS_SENTINEL_MASTER", "the name the sentinels monitor the primary under")
        return sentinel_url(
            parse_hostports("REDIS_SENTINELS", sentinels),
            master,
            password=password,
            sentinel_password=env.get("REDIS_SENTINEL_PASSWORD", "") or None,
            db=_int(env, "REDIS_DB", 0),
        )
    if cluster:
        if _int(env, "REDIS_DB", 0):
            raise SettingError(
                "REDIS_DB", env["REDIS_DB"], "0 with REDIS_CLUSTER_NODES (Cluster has database 0 only)"
            )
        return cluster_url(parse_hostports("REDIS_CLUSTER_NODES", cluster), password=password)
    if url:
        if not url.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://")):
            raise SettingError(
                "REDIS_URL", url, "a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL"
            )
        parse_target(url)
        return url
    if not host:
        return None
    port = _int(env, "REDIS_PORT", 6379, minimum=1)
    if port > 65535:
        raise SettingError("REDIS_PORT", str(port), "a port number 1-65535")
    db = _int(env, "REDIS_DB", 0)
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/{db}"


class ConflictingSettings(SettingError):
    """Two settings name different Redis deployments; the message names both."""

    def __init__(self, names: list[str]) -> None:
        ValueError.__init__(
            self,
            f"{' and '.join(names)} are set together: set only one of REDIS_URL (or REDIS_HOST), "
            "REDIS_SENTINELS (with REDIS_SENTINEL_MASTER) and REDIS_CLUSTER_NODES",
        )
        self.name = names[-1]


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where and how to append events."""

    url: str = DEFAULT_URL
    stream_key: str = DEFAULT_STREAM_KEY
    maxlen: int = DEFAULT_MAXLEN
    #: The longest a publish may block its caller, retries included (seconds).
    timeout: float = DEFAULT_PUBLISH_TIMEOUT
    #: ``PUBLISH_WAIT_REPLICAS``: a publish returns only once this many replicas hold
    #: its entries (``WAIT``); 0: once the primary does.
    wait_replicas: int = 0
    #: ``STREAM_PARTITIONS``: events spread over this many streams by execution id
    #: (``schemas.partition``); the gateways' value
    partitions: int = 1
    #: ``PUBLISH_DEDUPE_WINDOW``: how long (seconds) a publish's idempotency key is
    #: remembered, so that a retry returns the first append's id instead of appending
    #: again; 0: no idempotency keys (a retry may append twice). ``None``: off, or
    #: ``DEFAULT_DEDUPE_WINDOW`` when ``wait_replicas`` is set.
    dedupe_window: float | None = None

    @property
    def dedupe(self) -> float:
        """The effective dedupe window in seconds (0: off)."""
        if self.dedupe_window is None:
            return DEFAULT_DEDUPE_WINDOW if self.wait_replicas else 0.0
        return self.dedupe_window

    def __post_init__(self) -> None:
        if not self.stream_key:
            raise SettingError("STREAM_KEY", self.stream_key, "a non-empty key")
        from publisher.connect import companion_key

        try:
            for key in {self.stream_key, partition_keys(self.stream_key, 2)[0]}:
                companion_key(key, "dedupe:")
        except ValueError:
            raise SettingError(
                "STREAM_KEY", self.stream_key, "a key whose Cluster slot a hash tag can name (e.g. no '{}')"
            ) from None
        if self.maxlen < 0:
            raise SettingError("STREAM_MAXLEN", str(self.maxlen), "an integer >= 0")
        if not 1 <= self.partitions <= MAX_PARTITIONS:
            raise SettingError(
                "STREAM_PARTITIONS", str(self.partitions), f"an integer in 1..{MAX_PARTITIONS}"
            )
        if not 0 < self.timeout < 3600:
            raise SettingError("PUBLISH_TIMEOUT", str(self.timeout), "a duration in (0, 1h)")
        if self.wait_replicas < 0:
            raise SettingError("PUBLISH_WAIT_REPLICAS", str(self.wait_replicas), "an integer >= 0")
        if self.dedupe_window is not None and not 0 <= self.dedupe_window <= 86400:
            raise SettingError("PUBLISH_DEDUPE_WINDOW", str(self.dedupe_window), "a duration of at most 24h")
        if self.wait_replicas and self.dedupe_window == 0:
            # A publish that WAIT could not confirm is retried: without its key the retry
            # would append the event a second time.
            raise SettingError(
                "PUBLISH_DEDUPE_WINDOW", "0", "a positive duration when PUBLISH_WAIT_REPLICAS is set"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RedisSettings:
        """The settings from the environment. ``REDIS_URL`` (or ``REDIS_HOST``) is
        required: a publisher never guesses where the stream is (a default of
        localhost would send a newcomer's events to a Redis that is not theirs, while
        the gateway, without these settings, runs on its embedded log). ``RedisSettings()``
        built in code keeps its explicit default, ``DEFAULT_URL``."""
        env = os.environ if env is None else env
        url = redis_url_from_env(env)
        timeout_raw = env.get("PUBLISH_TIMEOUT")
        dedupe_raw = env.get("PUBLISH_DEDUPE_WINDOW", "").strip()
        # Every invalid value is reported before a missing URL (invalid beats missing).
        settings = cls(
            url=url or DEFAULT_URL,
            stream_key=env.get("STREAM_KEY") or DEFAULT_STREAM_KEY,
            maxlen=_int(env, "STREAM_MAXLEN", DEFAULT_MAXLEN),
            partitions=_int(env, "STREAM_PARTITIONS", 1),
            timeout=(
                parse_duration("PUBLISH_TIMEOUT", timeout_raw) if timeout_raw else DEFAULT_PUBLISH_TIMEOUT
            ),
            wait_replicas=_int(env, "PUBLISH_WAIT_REPLICAS", 0),
            dedupe_window=parse_duration("PUBLISH_DEDUPE_WINDOW", dedupe_raw) if dedupe_raw else None,
        )
        if url is None:
            raise MissingSetting(
                "REDIS_URL",
                "set REDIS_URL (e.g. redis://localhost:6379/0), REDIS_HOST, REDIS_SENTINELS or "
                "REDIS_CLUSTER_NODES to the Redis the gateways read; a gateway without them runs on "
                "its embedded log, which only it can see",
            )
        return settings
