"""Every setting of ``flowwire serve``: its name, default and meaning, in one table.

The table is what ``flowwire serve --help`` prints, what ``docs/operations.md``
documents (a test compares them), and where :class:`gateway.config.Config` takes its
defaults from: each default is written once, here.
"""

from __future__ import annotations

from typing import Final

from publisher.settings import DEFAULT_MAXLEN, DEFAULT_STREAM_KEY

__all__ = ["SETTINGS", "settings_help"]

#: name -> (default, meaning). The source of truth for --help and the docs.
SETTINGS: Final[dict[str, tuple[str, str]]] = {
    "REDIS_URL": (
        "",
        "Redis URL (redis://, rediss://, unix://; redis+sentinel://, redis+cluster://: see High "
        "availability). Unset (and no REDIS_HOST, REDIS_SENTINELS, REDIS_CLUSTER_NODES): the embedded "
        "single-node log",
    ),
    "REDIS_HOST": ("", "the original's Redis host, used when REDIS_URL is unset"),
    "REDIS_PORT": ("6379", "the original's Redis port"),
    "REDIS_PASSWORD": ("", "Redis password (with REDIS_HOST, REDIS_SENTINELS or REDIS_CLUSTER_NODES)"),
    "REDIS_DB": ("0", "Redis database number (with REDIS_HOST)"),
    "REDIS_SENTINELS": (
        "",
        "comma-separated host:port of Redis Sentinels: follow the primary they name across failovers "
        "(with REDIS_SENTINEL_MASTER; not with REDIS_URL/REDIS_HOST/REDIS_CLUSTER_NODES)",
    ),
    "REDIS_SENTINEL_MASTER": ("", "the name the sentinels monitor the primary under (with REDIS_SENTINELS)"),
    "REDIS_SENTINEL_PASSWORD": (
        "",
        "the sentinels' own password (REDIS_PASSWORD is the data nodes')",
    ),
    "REDIS_CLUSTER_NODES": (
        "",
        "comma-separated host:port seeds of a Redis Cluster (not with REDIS_URL/REDIS_HOST/REDIS_SENTINELS)",
    ),
    "STREAM_KEY": (DEFAULT_STREAM_KEY, "the stream the gateway reads"),
    "STREAM_PARTITIONS": (
        "1",
        "partitioned streams: events spread over this many streams by execution id (1..64; the "
        "publishers' value; above 1 needs Redis, and frames carry a `cursor`): see Partitioned streams",
    ),
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
    "JWT_LEEWAY": (
        "5s",
        "clock skew allowed on exp/nbf: a token is valid until exp + this, when its connection closes (4001)",
    ),
    "TOKEN_REFRESH_NOTICE": (
        "60s",
        "protocol version 2: a connection granted token_refresh is sent token_expiring this long "
        "before its token expires (exp + JWT_LEEWAY), and may send a fresh token (refresh)",
    ),
    "API_KEY_RECHECK": (
        "30s",
        "open API-key connections are re-checked this often; a revoked key's are closed (4001)",
    ),
    "ALLOWED_ORIGINS": (
        "",
        "comma-separated origins allowed to open /ws; unset: no Origin or same host only; * allows any",
    ),
    "SERVER_READ_TIMEOUT": (
        "15s",
        "HTTP keep-alive idle timeout, and the time a client has to send a complete request head "
        "(the upgrade request included), counted from the accept: 408 and closed after it",
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
    "CLIENT_SEND_BUFFER_BYTES": (
        "4194304",
        "bytes queued per connection (events and control replies) before it is closed as a "
        "slow consumer (4008)",
    ),
    "REPLAY_BATCH": (
        "100",
        "stream entries per replay read (shared by every connection it serves); a larger read blocks "
        "live delivery longer while it is parsed",
    ),
    "REPLAY_RATE": (
        "100000",
        "stream entries per second all replays of this process may scan (live delivery keeps "
        "its latency); 0: unlimited",
    ),
    "REPLAY_CONNECTION_RATE": (
        "20000",
        "stream entries per second one connection's replay may make this process read; past it "
        "the replay goes on at that rate; 0: unlimited",
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
    "LISTEN_BACKLOG": (
        "4096",
        "the listening socket's accept queue: connections waiting to be accepted (a reconnect "
        "storm after a pod died); the kernel caps it at net.core.somaxconn",
    ),
    "MAX_EVENT_SIZE": (
        "1048576",
        "largest stream entry `data` in bytes the gateway forwards; larger entries are skipped, "
        "counted (entries_skipped) and logged with their id",
    ),
    "MAX_SUBSCRIPTIONS": ("100", "channels per connection (TOO_MANY_SUBSCRIPTIONS above)"),
    "MAX_CONNECTIONS": ("50000", "connections per process (close 1013 above); 0: unlimited"),
    "MAX_CONNECTIONS_PER_USER": (
        "100",
        "connections per user per process (HTTP 429 above); 0: unlimited",
    ),
    "MAX_FILTER_VALUES": (
        "1000",
        "filter values per connection, all its subscriptions together (TOO_MANY_FILTER_VALUES above); "
        "0: unlimited",
    ),
    "CLIENT_RATE_LIMIT": (
        "20",
        "inbound messages per second per connection, bursts of twice that "
        "(subscribes: bursts of MAX_SUBSCRIPTIONS plus that); 0: unlimited",
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
    "MAX_PENDING_SOCKETS": (
        "2000",
        "sockets accepted whose request head is not complete yet (slow or silent clients); "
        "past it a new socket gets 503 and is closed at once; 0: unlimited",
    ),
    "DRAIN_WINDOW": (
        "10s",
        "on SIGTERM, clients are closed with 1012 in batches spread over this window",
    ),
    # -- presence (docs/operations.md, "Presence") --
    "PRESENCE": ("on", "answer `presence` messages: who is connected, who watches a channel (on/off)"),
    "PRESENCE_INTERVAL": (
        "250ms",
        "presence changes are coalesced over this interval: one Redis write batch and one "
        "presence.diff per changed scope per interval",
    ),
    "PRESENCE_HEARTBEAT": (
        "5s",
        "each instance renews its presence this often; one silent for 3 heartbeats is dead and its "
        "users leave everywhere within 4 heartbeats plus PRESENCE_INTERVAL of its death",
    ),
    "PRESENCE_MAX_MEMBERS": (
        "1000",
        "members listed in a presence.state reply (count says how many there are), and changes in "
        "one presence.diff (past it: resync)",
    ),
}


def settings_help() -> str:
    width = max(map(len, SETTINGS))
    lines = ["settings (environment variables):"]
    for name, (default, meaning) in SETTINGS.items():
        shown = f" [default: {default}]" if default else ""
        lines.append(f"  {name:<{width}}  {meaning}{shown}")
    return "\n".join(lines)
