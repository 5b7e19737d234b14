"""Compiled subscription filters (docs/protocol.md, "Filters").

A non-empty list is a constraint (the event's value must be in it), empty or absent is
no constraint, constraints are ANDed, matching is exact. Lists become frozensets once,
at subscribe time, so that a match is a few set look-ups.
"""

from __future__ import annotations

from typing import Final

from schemas.control import Filters
from schemas.stream import StreamEvent

__all__ = ["ANY", "CompiledFilter", "compile_filters"]

#: The index dimension of a subscription with no constraint.
ANY: Final = "*"


class CompiledFilter:
    __slots__ = ("execution_ids", "source", "statuses", "workflow_ids")

    def __init__(self, source: Filters) -> None:
        self.source = source
        self.workflow_ids = frozenset(source.workflow_ids or ())
        self.execution_ids = frozenset(source.execution_ids or ())
        self.statuses = frozenset(source.statuses or ())

    def matches(self, event: StreamEvent) -> bool:
        if self.execution_ids and event.execution_id not in self.execution_ids:
            return False
        if self.workflow_ids and event.workflow_id not in self.workflow_ids:
            return False
        return not self.statuses or event.status in self.statuses

    def index_keys(self) -> list[tuple[str, str]]:
        """Where the index files this filter: under its most selective constraint.

        Execution ids are the most selective, then workflow ids, then statuses; a filter
        with no constraint is filed under :data:`ANY`. An event is looked up under its
        own execution id, workflow id, status and ``ANY``, so every filter that could
        match it is found, and few that cannot.
        """
        if self.execution_ids:
            return [("e", v) for v in self.execution_ids]
        if self.workflow_ids:
            return [("w", v) for v in self.workflow_ids]
        if self.statuses:
            return [("s", v) for v in self.statuses]
        return [(ANY, "")]


_EMPTY: Final = Filters()


#: Compiled filters are immutable: connections subscribing with equal filters (a
#: dashboard's thousands of tabs) share one. Bounded: past it, the oldest are dropped
#: (they stay shared by the subscriptions that hold them).
_SHARED: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], CompiledFilter] = {}
_SHARED_MAX: Final = 4096


def compile_filters(filters: Filters | None) -> CompiledFilter:
    source = filters if filters is not None else _EMPTY
    key = (
        tuple(source.workflow_ids or ()),
        tuple(source.execution_ids or ()),
        tuple(source.statuses or ()),
    )
    shared = _SHARED.get(key)
    if shared is None:
        if len(_SHARED) >= _SHARED_MAX:
            del _SHARED[next(iter(_SHARED))]
        shared = _SHARED[key] = CompiledFilter(source)
    return shared
