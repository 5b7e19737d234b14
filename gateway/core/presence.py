"""Presence, sans I/O: who is connected per organization, and who is subscribed to a
channel, across gateway instances (docs/protocol.md, "Presence").

Theory of operation
-------------------
A *scope* is ``(org, name)``: ``name`` is ``""`` for the organization (its users
connected) or a channel name (its users with a connection subscribed to it). An
organization-less identity is the tenant ``""``. A *key* is ``(org, name, user)``; its
value, per instance, is how many of that instance's connections hold it.

:class:`Presence` holds one instance's picture of the whole cluster:

- its own connections (:meth:`Presence.connect`, :meth:`~Presence.subscribe`,
  :meth:`~Presence.unsubscribe`, :meth:`~Presence.disconnect`), counted at once, O(1)
  each (a disconnect: O(its channels));
- the other instances' counts, as they published them (:meth:`~Presence.remote`,
  :meth:`~Presence.reload`, :meth:`~Presence.drop`), summed per scope and user.

The shell writes this instance's changes to Redis every ``PRESENCE_INTERVAL``:
:meth:`~Presence.take_changes` gives the keys whose count changed since the last time
(a join and a leave within one interval cancel out: nothing to write). Each batch has a
sequence number; a receiver that sees a gap (a lost pub/sub message, a restart) asks for
the sender's whole hash instead (:meth:`~Presence.remote` answers ``False``).

Watchers (connections that asked for join/leave events) get, every interval, one
:class:`Diff` per scope that changed (:meth:`~Presence.take_diffs`): the members whose
entry changed, with their connection count now, and those who left. A diff carries final
states only, so a client that applies it to any earlier snapshot of the same interval
(its ``presence.state`` reply) gets the current members. A snapshot taken mid-interval
may hold a state the interval passed through (a user who joined, then left): in a scope
listed (:meth:`~Presence.members`) since the previous diffs, every user touched in the
interval is in the diff (``joined`` if present now, else ``left``), not only those whose
entry differs from the interval's start.

:func:`expired` is the expiry decision: an instance whose last heartbeat is older than
the expiry is dead, its users leave.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

__all__ = ["ORG", "Diff", "Key", "Presence", "Scope", "expired"]

ORG: Final = ""  #: the scope name of an organization's presence
Key = tuple[str, str, str]  #: (org, scope name, user id)
Scope = tuple[str, str]  #: (org, scope name)

W = TypeVar("W", bound=Hashable)  # a watcher (a connection, in the shell)


@dataclass(frozen=True, slots=True)
class Diff:
    """What changed in one scope since the previous diffs."""

    org: str
    name: str
    #: members now present whose entry changed (new, or another connection count)
    joined: list[tuple[str, int]]
    left: list[str]
    #: how many members the scope has now
    count: int


class _Conn:
    __slots__ = ("channels", "org", "user")

    def __init__(self, org: str, user: str) -> None:
        self.org = org
        self.user = user
        self.channels: set[str] = set()


class Presence(Generic[W]):
    """One instance's view of presence; ``instance`` names this instance."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        #: instance -> key -> connections (this instance's own included)
        self.instances: dict[str, dict[Key, int]] = {instance: {}}
        #: scope -> user -> connections, over every instance
        self.totals: dict[Scope, dict[str, int]] = {}
        #: the last sequence number applied, per other instance
        self.seqs: dict[str, int] = {}
        self.seq = 0  #: this instance's last batch
        self._conns: dict[Hashable, _Conn] = {}
        self._dirty: dict[Key, int] = {}  # own key -> its count at the last take_changes
        self._before: dict[Scope, dict[str, int]] = {}  # user -> total at first touch
        self._listed: set[Scope] = set()  # scopes listed by members() since take_diffs
        self._watchers: dict[Scope, dict[W, None]] = {}
        self._watching: dict[W, set[Scope]] = {}

    # -- this instance's connections ---------------------------------------------------

    def connect(self, conn: Hashable, org: str, user: str) -> None:
        if conn in self._conns:
            return
        self._conns[conn] = _Conn(org, user)
        self._own((org, ORG, user), 1)

    def subscribe(self, conn: Hashable, channel: str) -> None:
        """``conn`` holds ``channel`` (again: nothing changes)."""
        c = self._conns.get(conn)
        if c is None or channel in c.channels:
            return
        c.channels.add(channel)
        self._own((c.org, channel, c.user), 1)

    def unsubscribe(self, conn: Hashable, channel: str) -> None:
        c = self._conns.get(conn)
        if c is None or channel not in c.channels:
            return
        c.channels.discard(channel)
        self._own((c.org, channel, c.user), -1)

    def disconnect(self, conn: Hashable) -> None:
        c = self._conns.pop(conn, None)
        if c is None:
            return
        for channel in c.channels:
            self._own((c.org, channel, c.user), -1)
        self._own((c.org, ORG, c.user), -1)

    def _own(self, key: Key, delta: int) -> None:
        state = self.instances[self.instance]
        old = state.get(key, 0)
        self._dirty.setdefault(key, old)
        self._set(state, key, old + delta)

    def take_changes(self) -> list[tuple[Key, int]]:
        """This instance's keys whose count changed since the previous call, with their
        count now (0: gone); the batch's sequence number is then :attr:`seq`. Empty when
        nothing changed (the sequence number stays)."""
        state = self.instances[self.instance]
        changes = [(k, n) for k, was in self._dirty.items() if (n := state.get(k, 0)) != was]
        self._dirty.clear()
        if changes:
            self.seq += 1
        return changes

    def republish(self) -> tuple[int, dict[Key, int]]:
        """This instance's whole state under a new sequence number (written again after
        Redis came back, or lost its data)."""
        self._dirty.clear()
        self.seq += 1
        return self.seq, dict(self.instances[self.instance])

    # -- the other instances -----------------------------------------------------------

    def remote(self, instance: str, seq: int, changes: Iterable[tuple[Key, int]] | None) -> bool:
        """A batch published by another instance (``changes`` ``None``: a heartbeat or a
        republish, which only says the sender is at ``seq``). ``False``: the batch does
        not follow the last one applied (one was lost, the sender republished, or it is
        new here); nothing is applied and the caller reloads the sender's whole state."""
        if instance == self.instance:
            return True
        last = self.seqs.get(instance)
        if last is not None and seq <= last:
            return True  # already applied, or covered by a reload
        if last is None or seq != last + 1 or changes is None:
            return False
        state = self.instances[instance]
        for key, count in changes:
            self._set(state, key, count)
        self.seqs[instance] = seq
        return True

    def reload(self, instance: str, seq: int, full: Mapping[Key, int]) -> None:
        """Another instance's whole state at ``seq`` (its hash). An older one than what
        was applied already is ignored."""
        if instance == self.instance or seq < self.seqs.get(instance, -1):
            return
        state = self.instances.setdefault(instance, {})
        for key in [k for k in state if k not in full]:
            self._set(state, key, 0)
        for key, count in full.items():
            self._set(state, key, count)
        self.seqs[instance] = seq

    def drop(self, instance: str) -> None:
        """Another instance is dead (or was purged): its users leave."""
        if instance == self.instance:
            return
        state = self.instances.pop(instance, {})
        for key in list(state):
            self._set(state, key, 0)
        self.seqs.pop(instance, None)

    def others(self) -> list[str]:
        return [i for i in self.instances if i != self.instance]

    # -- counting ----------------------------------------------------------------------

    def _set(self, state: dict[Key, int], key: Key, count: int) -> None:
        old = state.get(key, 0)
        if count == old:
            return
        if count > 0:
            state[key] = count
        else:
            count = 0
            state.pop(key, None)
        org, name, user = key
        scope = (org, name)
        members = self.totals.get(scope)
        if members is None:
            members = self.totals[scope] = {}
        before = members.get(user, 0)
        touched = self._before.get(scope)
        if touched is None:
            touched = self._before[scope] = {}
        touched.setdefault(user, before)
        after = before + count - old
        if after > 0:
            members[user] = after
        else:
            members.pop(user, None)
            if not members:
                del self.totals[scope]

    def members(self, org: str, name: str, limit: int) -> tuple[list[tuple[str, int]], int]:
        """At most ``limit`` members of a scope, by user id, and how many there are."""
        self._listed.add((org, name))
        members = self.totals.get((org, name), {})
        if len(members) > limit:
            return heapq.nsmallest(limit, members.items()), len(members)
        return sorted(members.items()), len(members)

    def take_diffs(self) -> list[Diff]:
        """Every scope that changed since the previous call (watched or not)."""
        out = []
        for (org, name), touched in self._before.items():
            members = self.totals.get((org, name), {})
            if (org, name) in self._listed:  # a snapshot may hold any state the interval went through
                joined = sorted((u, n) for u in touched if (n := members.get(u, 0)))
                left = sorted(u for u in touched if u not in members)
            else:
                joined = sorted((u, n) for u, was in touched.items() if (n := members.get(u, 0)) and n != was)
                left = sorted(u for u, was in touched.items() if was and u not in members)
            if joined or left:
                out.append(Diff(org, name, joined, left, len(members)))
        self._before = {}
        self._listed.clear()
        return out

    # -- watchers ----------------------------------------------------------------------

    def watch(self, owner: W, org: str, name: str) -> None:
        self._watchers.setdefault((org, name), {})[owner] = None
        self._watching.setdefault(owner, set()).add((org, name))

    def unwatch(self, owner: W, org: str, name: str) -> None:
        scopes = self._watching.get(owner)
        if scopes is None or (org, name) not in scopes:
            return
        scopes.discard((org, name))
        if not scopes:
            del self._watching[owner]
        watchers = self._watchers[(org, name)]
        del watchers[owner]
        if not watchers:
            del self._watchers[(org, name)]

    def unwatch_all(self, owner: W) -> None:
        for org, name in list(self._watching.get(owner, ())):
            self.unwatch(owner, org, name)

    def watchers(self, org: str, name: str) -> Iterable[W]:
        return self._watchers.get((org, name), {}).keys()

    def watched(self) -> int:
        return len(self._watching)


def expired(beats: Mapping[str, float], now: float, expiry: float) -> list[str]:
    """The instances whose last heartbeat (seconds, ``beats``) is older than ``expiry``."""
    return sorted(i for i, beat in beats.items() if now - beat > expiry)
