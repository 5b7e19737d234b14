from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.envelope import EVENT_MESSAGES, server_decoder
from schemas.events import (
    EVENT_TYPES,
    ExecutionPayload,
    StepPayload,
    approval_event_type,
    execution_event_type,
    make_event,
    payload_type_for,
    step_event_type,
)


def test_sixteen_event_types() -> None:
    assert len(EVENT_TYPES) == 16
    assert set(EVENT_MESSAGES) == EVENT_TYPES


def test_make_event_validates_status() -> None:
    with pytest.raises(ValueError, match="status"):
        make_event("execution.started", {"execution_id": "e", "workflow_id": "w", "status": "ok"})


def test_make_event_rejects_wrong_category() -> None:
    step = StepPayload(execution_id="e", step_id="s", step_type="http", status="running")
    with pytest.raises(ValueError, match="ExecutionPayload"):
        make_event("execution.started", step)


def test_make_event_revalidates_structs() -> None:
    bad = ExecutionPayload(execution_id="e", workflow_id="w", status="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid"):
        make_event("execution.failed", bad)


def test_unknown_type() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        make_event("execution.exploded", {})


def test_step_payload_workflow_id_is_optional() -> None:
    event = make_event(
        "step.started", {"execution_id": "e", "step_id": "s", "step_type": "t", "status": "running"}
    )
    assert b"workflow_id" not in msgspec.json.encode(event.data)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("running", "execution.started"),
        ("completed", "execution.completed"),
        ("failed", "execution.failed"),
        ("paused", "execution.paused"),
        ("waiting", "execution.paused"),
        ("cancelled", "execution.cancelled"),
        ("blocked", "execution.blocked"),
        ("pending", "execution.created"),
    ],
)
def test_execution_status_mapping_as_the_original(status: str, expected: str) -> None:
    assert execution_event_type(status) == expected


def test_resumed_and_other_mappings() -> None:
    assert execution_event_type("running", resumed=True) == "execution.resumed"
    assert step_event_type("skipped") == "step.skipped"
    assert approval_event_type("rejected") == "approval.denied"
    assert approval_event_type("pending") == "approval.required"
    with pytest.raises(ValueError, match="no step event"):
        step_event_type("pending")
    with pytest.raises(ValueError, match="no execution event"):
        execution_event_type("exploded")
    with pytest.raises(ValueError, match="no approval event"):
        approval_event_type("maybe")


_text = st.text(min_size=1, max_size=12)


@st.composite
def events(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES)))
    cls = payload_type_for(event_type)
    base: dict[str, object] = {"execution_id": draw(_text)}
    if cls is ExecutionPayload:
        base |= {"workflow_id": draw(_text), "status": draw(st.sampled_from(["running", "failed"]))}
        if draw(st.booleans()):
            base["duration_ms"] = draw(st.integers(0, 10**9))
        if draw(st.booleans()):
            base["context"] = {"k": draw(_text)}
    elif cls is StepPayload:
        base |= {"step_id": draw(_text), "step_type": draw(_text), "status": "completed"}
        if draw(st.booleans()):
            base["workflow_id"] = draw(_text)
    else:
        base |= {"approval_id": draw(_text), "workflow_id": draw(_text), "status": "pending"}
    return event_type, base


@given(events(), st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123456789Z"]))
def test_every_event_message_round_trips(ev: tuple[str, dict[str, object]], ts: str) -> None:
    event_type, data = ev
    event = make_event(event_type, data)
    message = EVENT_MESSAGES[event_type](timestamp=ts, data=event.data, id="1-0")
    encoded = msgspec.json.encode(message)
    assert server_decoder.decode(encoded) == message
    assert msgspec.json.decode(encoded)["data"] == data
