"""The legacy pub/sub format, without Redis (original-defects.md)."""

from __future__ import annotations

import json

from gateway.mirror import legacy_messages
from schemas.stream import decode_entry


def test_one_message_per_target_channel_with_go_field_names() -> None:
    event = decode_entry(b"1764152400123-0", {
        b"type": b"approval.required",
        b"data": b'{"approval_id":"a1","execution_id":"exec_1","workflow_id":"wf-1","status":"pending"}',
        b"user": b"",
    })  # fmt: skip
    docs = [json.loads(m) for m in legacy_messages(event)]
    assert sorted(d["Channel"] for d in docs) == ["approvals", "executions:exec_1", "workflows:wf-1"]
    for d in docs:
        assert list(d) == ["Channel", "Message", "WorkflowID", "ExecutionID", "Status", "UserID"]
        assert d["Message"] == {
            "type": "approval.required",
            "timestamp": "2025-11-26T10:20:00.123Z",
            "data": {
                "approval_id": "a1",
                "execution_id": "exec_1",
                "workflow_id": "wf-1",
                "status": "pending",
            },
        }
        assert (d["WorkflowID"], d["ExecutionID"], d["Status"], d["UserID"]) == (
            "wf-1",
            "exec_1",
            "pending",
            "",
        )


def test_user_events_go_to_the_users_channel_only() -> None:
    event = decode_entry(b"1-0", {
        b"type": b"execution.failed",
        b"data": b'{"execution_id":"e","workflow_id":"w","status":"failed"}',
        b"user": b"u-9",
    })  # fmt: skip
    [doc] = [json.loads(m) for m in legacy_messages(event)]
    assert doc["Channel"] == "users:u-9" and doc["UserID"] == "u-9"
