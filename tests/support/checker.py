"""The delivery checker: what each client should have received, against what it did.

For every client it compares the ids it received with the ids appended that match its
subscriptions (by the routing table, tenancy and filters of docs/protocol.md, computed here
independently of the gateway's index) and reports lost, duplicated and out-of-order ids.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from schemas.codec import parse_id

__all__ = ["Appended", "Report", "Want", "check", "expected_ids"]


@dataclass(frozen=True)
class Appended:
    id: str
    type: str
    data: dict[str, Any]
    org: str | None = None
    user: str | None = None


@dataclass(frozen=True)
class Want:
    """One subscription of a client: live for events after ``after``."""

    channel: str
    filters: dict[str, list[str]] = field(default_factory=dict)
    after: str = "0-0"


def _channels(ev: Appended) -> set[str]:
    if ev.user:
        return {f"users:{ev.user}"}
    d = ev.data
    kind = ev.type.split(".")[0]
    out = {f"executions:{d['execution_id']}"}
    if kind == "execution":
        out.add("executions")
    if kind == "approval":
        out.add("approvals")
    if d.get("workflow_id"):
        out.add(f"workflows:{d['workflow_id']}")
    return out


def _matches(ev: Appended, want: Want, org: str | None) -> bool:
    if parse_id(ev.id) <= parse_id(want.after):
        return False
    if want.channel not in _channels(ev):
        return False
    if ev.org is not None and ev.org != org:
        return False
    for key, field_name in (
        ("workflow_ids", "workflow_id"),
        ("execution_ids", "execution_id"),
        ("statuses", "status"),
    ):
        values = want.filters.get(key)
        if values and ev.data.get(field_name) not in values:
            return False
    return True


def expected_ids(appended: list[Appended], wants: list[Want], org: str | None = None) -> list[str]:
    return [ev.id for ev in appended if any(_matches(ev, w, org) for w in wants)]


@dataclass
class Report:
    lost: list[str]
    duplicated: list[str]
    out_of_order: list[str]
    unexpected: list[str]

    @property
    def exact(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order or self.unexpected)

    def __str__(self) -> str:
        return (
            f"lost={self.lost[:5]}({len(self.lost)}) dup={self.duplicated[:5]}({len(self.duplicated)}) "
            f"order={self.out_of_order[:5]}({len(self.out_of_order)}) unexpected={self.unexpected[:5]}"
        )


def check(received: list[str], expected: list[str]) -> Report:
    counts = Counter(received)
    want = set(expected)
    out_of_order = [b for a, b in itertools.pairwise(received) if parse_id(b) <= parse_id(a)]
    return Report(
        lost=[i for i in expected if i not in counts],
        duplicated=[i for i, n in counts.items() if n > 1],
        out_of_order=out_of_order,
        unexpected=[i for i in counts if i not in want],
    )
