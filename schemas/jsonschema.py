"""JSON Schemas of every message, generated from the Structs (``docs/schema/``).

``flowwire schema`` writes them; ``flowwire schema --check`` (and a test) fails when the
checked-in files differ from what the Structs say, so the published contract cannot
drift from the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from schemas.control import (
    ErrorMessage,
    Ping,
    Pong,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
)
from schemas.envelope import EVENT_MESSAGES

__all__ = ["MESSAGES", "check", "render", "write"]

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
    **{name: (cls, "server") for name, cls in EVENT_MESSAGES.items()},
}


def render() -> dict[str, str]:
    """File name -> file text, for every message."""
    files: dict[str, str] = {}
    for name, (cls, direction) in MESSAGES.items():
        schema = msgspec.json.schema(cls)
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
