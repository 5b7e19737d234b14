"""Event types and their payloads (docs/protocol.md, "Events and payloads").

Payload field names and omission rules are the original Go server's wire contract:
snake_case JSON, optional fields left out when empty (``omit_defaults``). The one
addition is the optional ``workflow_id`` on step payloads, so that workflow channels
and filters work for steps.

Statuses are ``Literal`` types: msgspec validates them on decode and on
:func:`make_event`, so a publisher cannot emit a status the platform does not know.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypeAlias, get_args

import msgspec

__all__ = [
    "APPROVAL_EVENT_TYPES",
    "EVENT_TYPES",
    "EXECUTION_EVENT_TYPES",
    "STEP_EVENT_TYPES",
    "ApprovalPayload",
    "ApprovalStatus",
    "Event",
    "EventType",
    "ExecutionPayload",
    "ExecutionResult",
    "ExecutionStatus",
    "Payload",
    "StepPayload",
    "StepStatus",
    "approval_event_type",
    "category_of",
    "execution_event_type",
    "make_event",
    "payload_type_for",
    "step_event_type",
]

ExecutionStatus: TypeAlias = Literal[
    "pending", "running", "waiting", "completed", "failed", "blocked", "cancelled", "paused"
]
ExecutionResult: TypeAlias = Literal["allowed", "blocked", "executed", "failed"]
StepStatus: TypeAlias = Literal["pending", "running", "completed", "failed", "skipped"]
ApprovalStatus: TypeAlias = Literal["pending", "approved", "rejected", "expired"]

ExecutionEventType: TypeAlias = Literal[
    "execution.created",
    "execution.started",
    "execution.completed",
    "execution.failed",
    "execution.paused",
    "execution.resumed",
    "execution.cancelled",
    "execution.blocked",
]
StepEventType: TypeAlias = Literal["step.started", "step.completed", "step.failed", "step.skipped"]
ApprovalEventType: TypeAlias = Literal[
    "approval.required", "approval.granted", "approval.denied", "approval.expired"
]
EventType: TypeAlias = ExecutionEventType | StepEventType | ApprovalEventType

EXECUTION_EVENT_TYPES: Final[tuple[str, ...]] = get_args(ExecutionEventType)
STEP_EVENT_TYPES: Final[tuple[str, ...]] = get_args(StepEventType)
APPROVAL_EVENT_TYPES: Final[tuple[str, ...]] = get_args(ApprovalEventType)
EVENT_TYPES: Final[frozenset[str]] = frozenset(
    EXECUTION_EVENT_TYPES + STEP_EVENT_TYPES + APPROVAL_EVENT_TYPES
)


class ExecutionPayload(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``execution.*`` data. ``execution_id`` is the short ``exec_xxxxxxxx`` id (defect 20)."""

    execution_id: str
    workflow_id: str
    status: ExecutionStatus
    result: ExecutionResult | None = None
    trigger_event: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    error_message: str | None = None
    context: dict[str, Any] | None = None
    paused_reason: str | None = None


class StepPayload(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``step.*`` data; ``workflow_id`` is flowwire's optional addition."""

    execution_id: str
    step_id: str
    step_type: str
    status: StepStatus
    workflow_id: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    error_message: str | None = None
    output: dict[str, Any] | None = None


class ApprovalPayload(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``approval.*`` data."""

    approval_id: str
    execution_id: str
    workflow_id: str
    status: ApprovalStatus
    reason: str | None = None
    approved_by: str | None = None
    approved_at: str | None = None
    expires_at: str | None = None


Payload: TypeAlias = ExecutionPayload | StepPayload | ApprovalPayload

_PAYLOAD_BY_CATEGORY: Final[dict[str, type[Payload]]] = {
    "execution": ExecutionPayload,
    "step": StepPayload,
    "approval": ApprovalPayload,
}


def category_of(event_type: str) -> str:
    """``"execution.started"`` -> ``"execution"``."""
    return event_type.partition(".")[0]


def payload_type_for(event_type: str) -> type[Payload]:
    """The payload Struct of an event type; ``KeyError`` for an unknown type."""
    if event_type not in EVENT_TYPES:
        raise KeyError(event_type)
    return _PAYLOAD_BY_CATEGORY[category_of(event_type)]


class Event(msgspec.Struct, frozen=True):
    """A typed event as an executor publishes it: the type and its payload."""

    type: EventType
    data: Payload


def make_event(event_type: str, data: Payload | dict[str, Any]) -> Event:
    """Build and validate an event; raises ``ValueError`` naming what is wrong.

    A dict is converted (and validated) into the payload Struct of the type; a Struct
    is checked to be of the type's category and re-validated field by field, since
    msgspec does not validate at construction.
    """
    try:
        payload_cls = payload_type_for(event_type)
    except KeyError:
        raise ValueError(f"unknown event type {event_type!r}") from None
    if isinstance(data, dict):
        source: Any = data
    elif isinstance(data, payload_cls):
        source = msgspec.to_builtins(data)
    else:
        raise ValueError(f"{event_type} needs a {payload_cls.__name__}, not {type(data).__name__}")
    try:
        payload = msgspec.convert(source, payload_cls)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid {event_type} payload: {exc}") from None
    return Event(type=event_type, data=payload)  # type: ignore[arg-type]


# How the original executor mapped a status to an event type (original-defects.md).
_EXECUTION_STATUS_EVENTS: Final[dict[str, str]] = {
    "pending": "execution.created",
    "running": "execution.started",
    "completed": "execution.completed",
    "failed": "execution.failed",
    "paused": "execution.paused",
    "waiting": "execution.paused",
    "cancelled": "execution.cancelled",
    "blocked": "execution.blocked",
}
_STEP_STATUS_EVENTS: Final[dict[str, str]] = {
    "running": "step.started",
    "completed": "step.completed",
    "failed": "step.failed",
    "skipped": "step.skipped",
}
_APPROVAL_STATUS_EVENTS: Final[dict[str, str]] = {
    "pending": "approval.required",
    "approved": "approval.granted",
    "rejected": "approval.denied",
    "expired": "approval.expired",
}


def execution_event_type(status: str, *, resumed: bool = False) -> str:
    """The event type for an execution entering ``status``.

    ``running`` after a pause is ``execution.resumed`` (pass ``resumed=True``);
    ``pending`` is a newly created execution.
    """
    if resumed and status == "running":
        return "execution.resumed"
    try:
        return _EXECUTION_STATUS_EVENTS[status]
    except KeyError:
        raise ValueError(f"no execution event for status {status!r}") from None


def step_event_type(status: str) -> str:
    """The event type for a step entering ``status`` (``pending`` has none)."""
    try:
        return _STEP_STATUS_EVENTS[status]
    except KeyError:
        raise ValueError(f"no step event for status {status!r}") from None


def approval_event_type(status: str) -> str:
    """The event type for an approval entering ``status``."""
    try:
        return _APPROVAL_STATUS_EVENTS[status]
    except KeyError:
        raise ValueError(f"no approval event for status {status!r}") from None
