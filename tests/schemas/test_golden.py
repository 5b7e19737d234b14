"""Compatibility with the original Go server and clients (issue 2, item 3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from schemas.codec import is_rfc3339
from schemas.control import Ping, Subscribe, Unsubscribe, decode_client
from schemas.envelope import EVENT_MESSAGES, event_frame, server_decoder
from schemas.events import make_event
from schemas.stream import decode_entry, encode_entry

GOLDEN = Path(__file__).parent / "golden"


def _lines(name: str) -> list[str]:
    return [line for line in (GOLDEN / name).read_text().splitlines() if line.strip()]


GO_SERVER = _lines("go_server_frames.jsonl")
GO_CLIENT = _lines("go_client_frames.jsonl")


def test_golden_covers_every_event_type() -> None:
    seen = {json.loads(line)["type"] for line in GO_SERVER}
    assert set(EVENT_MESSAGES) <= seen


@pytest.mark.parametrize("frame", GO_SERVER)
def test_original_server_frames_decode(frame: str) -> None:
    msg = server_decoder.decode(frame)
    original = json.loads(frame)
    assert msgspec.to_builtins(msg)["type"] == original["type"]
    assert is_rfc3339(original["timestamp"])


@pytest.mark.parametrize("frame", [f for f in GO_SERVER if "." in json.loads(f)["type"]])
def test_flowwire_frames_carry_the_originals_fields(frame: str) -> None:
    original: dict[str, Any] = json.loads(frame)
    event = make_event(original["type"], original["data"])
    fields = encode_entry(event, org="org-1")
    entry = decode_entry(b"1705314600123-0", {k.encode(): v for k, v in fields.items()})
    ours = json.loads(event_frame(entry.type.encode(), entry.timestamp, entry.id, entry.data))
    # Same type, same payload fields and values (empty optionals omitted alike); plus id.
    assert ours["type"] == original["type"]
    assert ours["data"] == original["data"]
    assert ours["id"] == "1705314600123-0"
    assert set(ours) == {"type", "timestamp", "data", "id"}
    assert is_rfc3339(ours["timestamp"])


@pytest.mark.parametrize("frame", GO_CLIENT)
def test_original_client_frames_are_accepted(frame: str) -> None:
    assert isinstance(decode_client(frame), Ping | Subscribe | Unsubscribe)


def test_nanosecond_timestamps_are_rfc3339() -> None:
    assert is_rfc3339("2024-01-15T10:30:00.123456789Z")
    assert not is_rfc3339("2024-01-15T10:30:00.1234567891Z")
    assert not is_rfc3339("2024-01-15 10:30:00Z")
