"""The AsyncAPI 3 document of flowwire (``docs/asyncapi.json``, ``flowwire asyncapi``),
from the gateway's point of view: the WebSocket API (the ``/ws`` channel, its messages
with payload schemas from the same msgspec Structs as ``docs/schema/``, the operations
and replies, the security schemes, the upgrade refusals and close codes of
:mod:`gateway.contract`), and the stream contract (docs/protocol.md, "Publishing (the stream contract)"):
``ws:events`` entries received from publishers, and the legacy mirror's messages on
``ws:broadcast:all``. ``flowwire asyncapi --check`` (and a test) fails when the
committed document differs; another test validates it with the AsyncAPI parser.
"""

from __future__ import annotations

import inspect
import json
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import msgspec

from gateway.config import SETTINGS
from gateway.contract import CLOSE_CODES, UPGRADE_REFUSALS
from gateway.contract import SUBPROTOCOLS_NOTE as V2_NOTE
from gateway.mirror import BROADCAST_CHANNEL, GROUP, _Legacy
from schemas.control import ErrorCode
from schemas.events import APPROVAL_EVENT_TYPES, EXECUTION_EVENT_TYPES, STEP_EVENT_TYPES
from schemas.jsonschema import MESSAGES

__all__ = ["CLOSE_CODES", "DEFAULT_PATH", "check", "document", "render", "write"]

DEFAULT_PATH: Final = Path("docs/asyncapi.json")
_SCHEMAS: Final = "#/components/schemas/{name}"

_CLIENT_REPLIES: Final = {
    "ping": ["pong"],
    "subscribe": ["subscribed", "error"],
    "unsubscribe": ["unsubscribed", "error"],
    "hello": ["welcome", "error"],
    "refresh": ["refreshed", "error"],
    "presence": ["presence.state", "error"],
}
_EVENT_TYPES: Final = (*EXECUTION_EVENT_TYPES, *STEP_EVENT_TYPES, *APPROVAL_EVENT_TYPES)


def _clean(node: Any) -> Any:
    """Descriptions from docstrings, dedented the same way on every Python version."""
    if isinstance(node, dict):
        return {k: inspect.cleandoc(v) if k == "description" and isinstance(v, str) else _clean(v)
                for k, v in node.items()}  # fmt: skip
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


_SUMMARIES: Final = {
    "ping": "application ping; answered with pong",
    "subscribe": "subscribe to a channel (again: replace its filters); `since` resumes after an event id",
    "unsubscribe": "unsubscribe from a channel (answered also when not subscribed)",
    "pong": "the answer to ping",
    "subscribed": "a subscription is live from `position`; `recovered` answers a `since`",
    "unsubscribed": "the answer to unsubscribe",
    "error": "a client frame refused; changes nothing, never closes the connection by itself",
    "hello": "version 2, the first message (optional): the features asked for",
    "refresh": "version 2: a fresh token (same user, same organization); the connection stays",
    "welcome": "the answer to hello: the protocol selected, the features granted and supported",
    "token_expiring": "version 2, token_refresh granted: the token expires at `expires_at`; refresh",
    "refreshed": "the answer to a valid refresh: the connection now expires at `expires_at`",
    "presence": "who is connected in the organization, or subscribed to a channel; `watch` starts or "
    "stops presence.diff events",
    "presence.state": "the members of the organization or channel asked for (at most "
    "PRESENCE_MAX_MEMBERS, `count` says how many)",
    "presence.diff": "a watched scope's joins and leaves, coalesced over PRESENCE_INTERVAL; ephemeral "
    "(no `id`, not resumed: ask again after a reconnect)",
}


def _summary(name: str) -> str:
    category = name.split(".", 1)[0]
    return _SUMMARIES.get(name, f"a `{name}` event ({category} payload); `id` is the resume cursor")


def _message(name: str, struct: Any, direction: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": name,
        "title": name,
        "summary": _summary(name),
        "contentType": "application/json",
        "payload": {"$ref": _SCHEMAS.format(name=struct.__name__)},
    }
    if name == "error":
        message["description"] = "`data.code` is one of: " + ", ".join(f"`{c.value}`" for c in ErrorCode)
    message["x-direction"] = direction
    return message


def _stream_entry() -> dict[str, Any]:
    payloads = {"execution": "ExecutionPayload", "step": "StepPayload", "approval": "ApprovalPayload"}
    return {
        "name": "streamEntry",
        "title": "stream entry",
        "summary": "one XADD on the stream: the cross-language publishing contract",
        "description": "Any language may publish with a plain `XADD` (fields below). An entry the "
        "gateway cannot use is skipped, counted and logged with its id; it never stops the reader.",
        "payload": {
            "type": "object",
            "required": ["type", "data"],
            "properties": {
                "type": {"type": "string", "enum": list(_EVENT_TYPES), "description": "the event type"},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "description": "a JSON object: the payload exactly as clients will see it ("
                    + "; ".join(f"`{c}.*`: {p}" for c, p in payloads.items())
                    + "); it needs `execution_id`, and `workflow_id` except on step events",
                },
                "ts": {"type": "string", "description": "RFC 3339; default: the entry id's time"},
                "org": {"type": "string", "description": "organization id: only its connections get it"},
                "user": {"type": "string", "description": "target user id: delivered on users:{id} only"},
            },
            "additionalProperties": {"type": "string"},
        },
        "bindings": {"redis": {"bindingVersion": "0.1.0"}},
    }


_LEGACY_NAMES: Final = {"_Legacy": "LegacyBroadcast", "_Message": "LegacyMessage"}


def _renamed(node: Any) -> Any:
    """The mirror's private Struct names -> public schema names, wherever they appear."""
    if isinstance(node, dict):
        return {_LEGACY_NAMES.get(k, k): _renamed(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_renamed(v) for v in node]
    if isinstance(node, str):
        for old, new in _LEGACY_NAMES.items():
            if node == old or node.endswith(f"/{old}"):
                return node[: -len(old)] + new
    return node


def _legacy_schemas() -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components([_Legacy], ref_template=_SCHEMAS)
    renamed: dict[str, Any] = _renamed(schemas)
    renamed["LegacyBroadcast"]["description"] = (
        "the original Go hub's pub/sub message (its field names): one per channel the event belongs to"
    )
    renamed["LegacyMessage"]["properties"]["data"]["description"] = "the event's payload, as published"
    return renamed


def _legacy_message() -> dict[str, Any]:
    return {
        "name": "legacyBroadcast",
        "title": "legacy broadcast",
        "summary": "an event in the original's format, for legacy subscribers (MIRROR_ENABLED)",
        "contentType": "application/json",
        "payload": {"$ref": _SCHEMAS.format(name="LegacyBroadcast")},
        "bindings": {"redis": {"bindingVersion": "0.1.0"}},
    }


def _close_codes_markdown() -> str:
    rows = "\n".join(f"| {code} | {name}: {meaning} | {action} |"
                     for code, (name, meaning, action) in CLOSE_CODES.items())  # fmt: skip
    return "| code | meaning | what a client does |\n|---|---|---|\n" + rows


def document() -> dict[str, Any]:
    """The AsyncAPI document as a JSON-ready dict."""
    structs = [struct for struct, _ in MESSAGES.values()]
    _, schemas = msgspec.json.schema_components(structs, ref_template=_SCHEMAS)
    messages = {name: _message(name, struct, direction) for name, (struct, direction) in MESSAGES.items()}
    messages["streamEntry"] = _stream_entry()
    messages["legacyBroadcast"] = _legacy_message()
    schemas = {**schemas, **_legacy_schemas()}
    ws_messages = {name: {"$ref": f"#/components/messages/{name}"} for name in MESSAGES}

    def refs(channel: str, names: list[str] | tuple[str, ...]) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in names]

    operations: dict[str, Any] = {}
    for name, replies in _CLIENT_REPLIES.items():
        operations[f"receive{name.capitalize()}"] = {
            "action": "receive",
            "channel": {"$ref": "#/channels/ws"},
            "summary": _summary(name),
            "messages": refs("ws", [name]),
            "reply": {"channel": {"$ref": "#/channels/ws"}, "messages": refs("ws", replies)},
        }
    sends = (
        ("sendEvents", "send", "ws", "every event matching one of the connection's subscriptions: once, "
         "in stream order", _EVENT_TYPES),
        ("sendError", "send", "ws", "the answer to a frame that is no valid client message (PARSE_ERROR, "
         "UNKNOWN_TYPE, ...)", ["error"]),
        ("sendTokenExpiring", "send", "ws", _summary("token_expiring"), ["token_expiring"]),
        ("sendPresenceDiff", "send", "ws", _summary("presence.diff"), ["presence.diff"]),
        ("readStream", "receive", "events", "every gateway process reads the whole stream (XREAD); "
         "publishers XADD to it", ["streamEntry"]),
        ("publishLegacy", "send", "legacy", f"each entry mirrored once across all pods (consumer group "
         f"{GROUP}), one message per channel the event belongs to", ["legacyBroadcast"]),
    )  # fmt: skip
    for operation, action, channel, summary, names in sends:
        operations[operation] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": summary,
            "messages": refs(channel, names),
        }
    doc: dict[str, Any] = _clean(
        {
            "asyncapi": "3.0.0",
            "info": {
                "title": "flowwire",
                "version": _version(),
                "description": "Real-time event gateway for the Intelligent Workflows platform: events "
                "appended to a Redis Stream reach every matching WebSocket client once, in order, with "
                "resume by stream id on any instance. Generated by `flowwire asyncapi`; the prose is "
                "docs/protocol.md.",
                "license": {"name": "Apache-2.0"},
            },
            "defaultContentType": "application/json",
            "servers": {
                "gateway": {
                    "host": "localhost:8080",
                    "protocol": "ws",
                    "description": "a flowwire gateway (`flowwire serve`); any instance serves any client",
                    "security": [
                        {"$ref": "#/components/securitySchemes/bearer"},
                        {"$ref": "#/components/securitySchemes/queryToken"},
                        {"$ref": "#/components/securitySchemes/apiKey"},
                    ],
                },
                "redis": {
                    "host": "localhost:6379",
                    "protocol": "redis",
                    "description": "the Redis the executors append to (REDIS_URL)",
                },
            },
            "channels": {
                "ws": {
                    "address": "/ws",
                    "title": "the WebSocket endpoint",
                    "servers": [{"$ref": "#/servers/gateway"}],
                    "description": "One JSON object per text frame: `{type, timestamp, data}`; event frames "
                    "add `id`, the stream entry id, the client's resume cursor.\n\n" + V2_NOTE + "\n\n"
                    "An upgrade may be refused before it happens (JSON body `{error, code}`):\n\n"
                    + "\n".join(f"- HTTP {s} `{c}`: {w}" for c, (s, w) in UPGRADE_REFUSALS.items())
                    + "\n\nClose codes:\n\n"
                    + _close_codes_markdown(),
                    "messages": ws_messages,
                    "bindings": {
                        "ws": {
                            "method": "GET",
                            "query": {
                                "type": "object",
                                "properties": {
                                    "token": {"type": "string", "description": "a JWT (browsers)"}
                                },
                            },
                            "headers": {
                                "type": "object",
                                "properties": {
                                    "Authorization": {"type": "string", "description": "Bearer <jwt>"},
                                    "X-API-Key": {"type": "string", "description": "an API key"},
                                    "Sec-WebSocket-Protocol": {"type": "string", "description": V2_NOTE},
                                },
                            },
                            "bindingVersion": "0.1.0",
                        }
                    },
                    "x-close-codes": {
                        str(code): {"name": name, "meaning": meaning, "client": action}
                        for code, (name, meaning, action) in CLOSE_CODES.items()
                    },
                    "x-upgrade-refusals": {
                        code: {"status": status, "when": when}
                        for code, (status, when) in UPGRADE_REFUSALS.items()
                    },
                },
                "events": {
                    "address": SETTINGS["STREAM_KEY"][0],
                    "title": "the event stream (setting STREAM_KEY)",
                    "servers": [{"$ref": "#/servers/redis"}],
                    "description": "A Redis Stream: the source of truth and the resume window. Publishers "
                    "trim with `MAXLEN ~` (default 1,000,000 entries); a cursor resumes while the stream "
                    "still holds it. With `STREAM_PARTITIONS=P` above 1, P streams `{ws:events:p}`, an "
                    "event in `p = crc32(execution_id) mod P` (docs/protocol.md, the stream contract).",
                    "messages": {"streamEntry": {"$ref": "#/components/messages/streamEntry"}},
                },
                "legacy": {
                    "address": BROADCAST_CHANNEL,
                    "title": "the legacy pub/sub channel (MIRROR_ENABLED=on)",
                    "servers": [{"$ref": "#/servers/redis"}],
                    "description": "Redis pub/sub, as the original Go hub published it: old pods during a "
                    "migration and scripts keep working. Turn MIRROR_ENABLED off when no legacy consumer "
                    "remains.",
                    "messages": {"legacyBroadcast": {"$ref": "#/components/messages/legacyBroadcast"}},
                },
            },
            "operations": operations,
            "components": {
                "schemas": {name: schemas[name] for name in sorted(schemas)},
                "messages": messages,
                "securitySchemes": {
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "bearerFormat": "JWT",
                        "description": "`Authorization: Bearer <jwt>`: the platform's tokens (HS256 with "
                        "JWT_SECRET, or RS*/ES* with JWT_PUBLIC_KEY_FILE); user from `user_id` (else `sub`), "
                        "tenant from `organization_id`; closed with 4001 at exp + JWT_LEEWAY",
                    },
                    "queryToken": {
                        "type": "httpApiKey",
                        "name": "token",
                        "in": "query",
                        "description": "`?token=<jwt>`, for browsers (they cannot set headers); never logged",
                    },
                    "apiKey": {
                        "type": "httpApiKey",
                        "name": "X-API-Key",
                        "in": "header",
                        "description": "an API key from `flowwire api-key create`; a revoked key's "
                        "connections are closed with 4001 within API_KEY_RECHECK",
                    },
                },
            },
        }
    )
    return doc


def _version() -> str:
    try:
        return metadata.version("flowwire")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree not installed
        return "0.0.0"


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def write(path: Path = DEFAULT_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path


def check(path: Path = DEFAULT_PATH) -> list[str]:
    """What is wrong with the committed document: missing or stale (empty: current)."""
    if not path.exists():
        return [f"missing {path}: run `flowwire asyncapi`"]
    if path.read_text(encoding="utf-8") != render():
        return [f"stale {path}: run `flowwire asyncapi` and commit it"]
    return []
