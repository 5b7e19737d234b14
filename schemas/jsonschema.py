"""JSON Schemas of every message, generated from the Structs (``docs/schema/``).

``flowwire schema`` writes them; ``flowwire schema --check`` (and a test) fails when the
checked-in files differ from what the Structs say, so the published contract cannot
drift from the code.

The files must not depend on which msgspec renders them: descriptions come from
docstrings, and msgspec 0.22 kept their continuation lines' indentation where 0.23
removes it. :func:`normalize` cleans every description the way :func:`inspect.cleandoc`
does, so any version gives the same bytes.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import msgspec

from schemas.control import (
    ErrorMessage,
    Hello,
    Ping,
    Pong,
    Presence,
    PresenceDiff,
    PresenceState,
    Refresh,
    Refreshed,
    Subscribe,
    Subscribed,
    TokenExpiring,
    Unsubscribe,
    Unsubscribed,
    Welcome,
)
from schemas.envelope import EVENT_MESSAGES

__all__ = ["MESSAGES", "check", "normalize", "render", "write"]

_DIRECTION = {"client": "client -> server", "server": "server -> client"}

#: message type -> (Struct, direction)
MESSAGES: dict[str, tuple[Any, str]] = {
    "ping": (Ping, "client"),
    "subscribe": (Subscribe, "client"),
    "unsubscribe": (Unsubscribe, "client"),
    "pong": (Pong, "server"),
    "subscribed": (Subscribed, "server"),
    "unsubscribed": (Unsubscribed, "server"),
    "error": (ErrorMessage, "server"),
    "presence": (Presence, "client"),
    "presence.state": (PresenceState, "server"),
    "presence.diff": (PresenceDiff, "server"),
    # protocol version 2 (flowwire.v2.json, flowwire.v2.msgpack)
    "hello": (Hello, "client"),
    "refresh": (Refresh, "client"),
    "welcome": (Welcome, "server"),
    "token_expiring": (TokenExpiring, "server"),
    "refreshed": (Refreshed, "server"),
    **{name: (cls, "server") for name, cls in EVENT_MESSAGES.items()},
}


#: keywords whose values are instance data, not schemas: left as they are
_DATA_KEYWORDS = frozenset({"const", "default", "enum", "examples"})


def normalize(schema: Any) -> Any:
    """``schema`` with every ``description`` cleaned like :func:`inspect.cleandoc`
    (continuation lines dedented, tabs expanded, blank lines at either end dropped),
    whatever msgspec version rendered it."""
    if isinstance(schema, list):
        return [normalize(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description" and isinstance(value, str):
            out[key] = inspect.cleandoc(value)
        elif key in _DATA_KEYWORDS:
            out[key] = value
        else:
            out[key] = normalize(value)
    return out


def render() -> dict[str, str]:
    """File name -> file text, for every message."""
    files: dict[str, str] = {}
    for name, (cls, direction) in MESSAGES.items():
        schema = normalize(msgspec.json.schema(cls))
        document = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": name,
            "description": f"flowwire `{name}` frame ({_DIRECTION[direction]})",
            **schema,
        }
        files[f"{name}.json"] = json.dumps(document, indent=2, sort_keys=True) + "\n"
    return files


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check(directory: Path) -> list[str]:
    """Names of the files that are missing, stale or extra in ``directory``."""
    expected = render()
    problems = []
    for name, text in expected.items():
        path = directory / name
        if not path.exists():
            problems.append(f"missing {name}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"stale {name}")
    for path in directory.glob("*.json"):
        if path.name not in expected:
            problems.append(f"extra {path.name}")
    return sorted(problems)
