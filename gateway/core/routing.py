"""Which channels an event belongs to (docs/protocol.md, "Channels and routing").

=================  ===========================================================
``execution.*``    ``executions``, ``executions:{execution_id}``, ``workflows:{workflow_id}``
``step.*``         ``executions:{execution_id}``, ``workflows:{workflow_id}`` when present
``approval.*``     ``approvals``, ``executions:{execution_id}``, ``workflows:{workflow_id}``
with a user        ``users:{user_id}`` only
=================  ===========================================================

Defect 5: the original emitted only three event types; every type routes here.
"""

from __future__ import annotations

from schemas.channels import Channel
from schemas.stream import StreamEvent

__all__ = ["channels_for", "visible_to"]


def channels_for(event: StreamEvent) -> list[Channel]:
    if event.user is not None:
        return [Channel(("users", event.user))]
    kind = event.type[0]  # 'e'xecution, 's'tep, 'a'pproval: types are validated
    out = [Channel(("executions", event.execution_id))]
    if kind == "e":
        out.append(Channel(("executions", None)))
    elif kind == "a":
        out.append(Channel(("approvals", None)))
    if event.workflow_id is not None:
        out.append(Channel(("workflows", event.workflow_id)))
    return out


def visible_to(event: StreamEvent, org: str | None) -> bool:
    """Tenancy (docs/protocol.md, "Channels and routing"): an event with ``org`` reaches
    only that organization."""
    return event.org is None or event.org == org
