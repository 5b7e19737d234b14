"""The precompiled subscription index (docs/protocol.md, "Channels and routing";
its cost: benchmarks/README.md, "Match cost per event versus subscriptions (10 matching)").

Theory of operation
-------------------
Every subscription is filed in buckets keyed by
``(channel, organization, dimension, value)``, where the dimension is the most selective
constraint of its filters (see :meth:`CompiledFilter.index_keys`). An event is looked up,
for each channel it routes to and each organization that may see it, under its own
execution id, workflow id, status and ``ANY``: at most 3 x 4 dict look-ups when the
event carries an ``org``. Candidates found there are checked against their remaining
constraints. So the cost of an event grows with the subscriptions that could match it,
not with all subscriptions (``benchmarks/bench_index.py``).

Matches are de-duplicated per owner (a connection): one event reaches a connection at
most once however many of its subscriptions match (defect 4).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from gateway.core.filters import ANY, CompiledFilter
from gateway.core.routing import channels_for, visible_to
from schemas.channels import Channel
from schemas.codec import ZERO_ID
from schemas.partition import Vector
from schemas.stream import StreamEvent

__all__ = ["Subscription", "SubscriptionIndex"]

T = TypeVar("T", bound=Hashable)

_BucketKey = tuple[Channel, str | None, str, str | None]
_ANY_KEY = (ANY, "")


class Subscription(Generic[T]):
    """One channel of one owner, with its filters; live for events after ``from_sid``
    (one id per partition: ``schemas.partition``)."""

    __slots__ = ("channel", "filter", "from_sid", "org", "owner")

    def __init__(
        self,
        owner: T,
        org: str | None,
        channel: Channel,
        flt: CompiledFilter,
        from_sid: Vector = (ZERO_ID,),
    ) -> None:
        self.owner = owner
        self.org = org
        self.channel = channel
        self.filter = flt
        self.from_sid = from_sid

    def matches(self, event: StreamEvent) -> bool:
        """The full check, without the index: used by replay and by tests."""
        return (
            self.channel in channels_for(event) and visible_to(event, self.org) and self.filter.matches(event)
        )


class SubscriptionIndex(Generic[T]):
    def __init__(self) -> None:
        # Keyed by owner: an owner has one subscription per channel, so at most one per
        # bucket. The ANY buckets hold unconstrained subscriptions only: every one of
        # them matches, and they are merged in at C speed (``dict.update``).
        self._buckets: dict[_BucketKey, dict[T, Subscription[T]]] = {}
        # channel -> organization -> number of subscriptions: which orgs to look up.
        self._orgs: dict[Channel, dict[str | None, int]] = {}
        self._by_owner: dict[T, dict[Channel, Subscription[T]]] = {}

    def __len__(self) -> int:
        return sum(len(subs) for subs in self._by_owner.values())

    def owners(self) -> int:
        """How many owners hold a subscription."""
        return len(self._by_owner)

    def subscriptions_of(self, owner: T) -> dict[Channel, Subscription[T]]:
        return self._by_owner.get(owner) or {}

    def add(self, sub: Subscription[T]) -> Subscription[T] | None:
        """File ``sub``; returns the subscription it replaced (same owner, channel)."""
        old = self.remove(sub.owner, sub.channel)
        for dim, value in sub.filter.index_keys():
            key = (sub.channel, sub.org, dim, value)
            self._buckets.setdefault(key, {})[sub.owner] = sub
        orgs = self._orgs.setdefault(sub.channel, {})
        orgs[sub.org] = orgs.get(sub.org, 0) + 1
        self._by_owner.setdefault(sub.owner, {})[sub.channel] = sub
        return old

    def remove(self, owner: T, channel: Channel) -> Subscription[T] | None:
        subs = self._by_owner.get(owner)
        if subs is None or channel not in subs:
            return None
        sub = subs.pop(channel)
        if not subs:
            del self._by_owner[owner]
        for dim, value in sub.filter.index_keys():
            key = (channel, sub.org, dim, value)
            bucket = self._buckets[key]
            del bucket[owner]
            if not bucket:
                del self._buckets[key]
        orgs = self._orgs[channel]
        orgs[sub.org] -= 1
        if not orgs[sub.org]:
            del orgs[sub.org]
            if not orgs:
                del self._orgs[channel]
        return sub

    def remove_owner(self, owner: T) -> int:
        channels = list(self._by_owner.get(owner, ()))
        for channel in channels:
            self.remove(owner, channel)
        return len(channels)

    def match(self, event: StreamEvent) -> list[T]:
        """The owners with a subscription matching ``event``, each once."""
        targets: dict[T, object] = {}
        buckets = self._buckets
        lookups = (("e", event.execution_id), ("w", event.workflow_id), ("s", event.status))
        for channel in channels_for(event):
            orgs = self._orgs.get(channel)
            if not orgs:
                continue
            for org in self._visible_orgs(orgs, event.org):
                everyone = buckets.get((channel, org, *_ANY_KEY))
                if everyone is not None:
                    targets.update(everyone)
                for dim, value in lookups:
                    bucket = buckets.get((channel, org, dim, value))
                    if bucket is None:
                        continue
                    for owner, sub in bucket.items():
                        if owner not in targets and sub.filter.matches(event):
                            targets[owner] = sub
        return list(targets)

    @staticmethod
    def _visible_orgs(orgs: dict[str | None, int], event_org: str | None) -> Iterator[str | None]:
        if event_org is None:
            yield from orgs  # an event without org reaches every organization
        elif event_org in orgs:
            yield event_org
