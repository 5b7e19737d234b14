from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import format_id, parse_id, rfc3339_from_ms
from schemas.events import make_event
from schemas.stream import InvalidEntry, decode_entry, encode_entry

EVENT = make_event("execution.started", {"execution_id": "e1", "workflow_id": "w1", "status": "running"})


def _b(fields: dict[str, bytes]) -> dict[bytes, bytes]:
    return {k.encode(): v for k, v in fields.items()}


def test_entry_layout() -> None:
    fields = encode_entry(EVENT, org="acme", user="u1", ts="2026-01-01T00:00:00Z")
    assert set(fields) == {"type", "data", "ts", "org", "user"}
    assert json.loads(fields["data"]) == {
        "execution_id": "e1",
        "workflow_id": "w1",
        "status": "running",
    }
    entry = decode_entry(b"5-1", _b(fields))
    assert (entry.sid, entry.org, entry.user, entry.timestamp) == (
        (5, 1), "acme", "u1", b"2026-01-01T00:00:00Z")  # fmt: skip
    assert (entry.execution_id, entry.workflow_id, entry.status) == ("e1", "w1", "running")


def test_optional_fields_absent_and_ts_defaults_to_id_time() -> None:
    fields = encode_entry(EVENT)
    assert set(fields) == {"type", "data"}
    entry = decode_entry(b"1764152400123-0", _b(fields))
    assert entry.timestamp == b"2025-11-26T10:20:00.123Z"
    assert entry.org is None
    assert entry.user is None


def test_bad_ts_rejected_on_encode() -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        encode_entry(EVENT, ts="yesterday")


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {b"type": b"execution.started"},
        {b"type": b"nope", b"data": b"{}"},
        {b"type": b"execution.started", b"data": b"[1]"},
        {b"type": b"execution.started", b"data": b"{not json"},
        {b"type": b"execution.started", b"data": b'{"workflow_id":"w"}'},
        {b"type": b"execution.started", b"data": b'{"execution_id":"e"}'},
        {b"type": b"execution.started", b"data": b'{"execution_id":5,"workflow_id":"w"}'},
        {b"type": b"\xff", b"data": b"{}"},
    ],
)
def test_unusable_entries_raise_invalid_entry(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(InvalidEntry):
        decode_entry(b"1-0", fields)


def test_step_needs_no_workflow_id() -> None:
    entry = decode_entry(b"1-0", {b"type": b"step.started", b"data": b'{"execution_id":"e"}'})
    assert entry.workflow_id is None


def test_ids_compare_numerically() -> None:
    assert parse_id("9-0") < parse_id("10-0")
    assert parse_id("123") == (123, 0)
    with pytest.raises(ValueError, match="stream id"):
        parse_id("abc")


@given(st.integers(0, 2**63), st.integers(0, 2**63))
def test_id_round_trip(ms: int, seq: int) -> None:
    assert parse_id(format_id((ms, seq))) == (ms, seq)


def test_rfc3339_from_ms() -> None:
    assert rfc3339_from_ms(0) == "1970-01-01T00:00:00.000Z"
