"""One connection's protocol state machine, sans I/O.

Theory of operation
-------------------
The shell accepts a WebSocket after authenticating it, creates a :class:`Session` for
the identity, and from then on only moves data: each inbound text frame goes to
:meth:`Session.receive`, which returns the actions to carry out, in order:

- :class:`Reply` -- a control frame to queue (``pong``, ``unsubscribed``, ``error``);
- :class:`Subscribe` / :class:`Unsubscribe` -- a change for the subscription index;
  the shell answers ``subscribed`` with :func:`subscribed_frame`, since only it knows
  the stream position;
- :class:`PresenceQuery` -- a ``presence`` message, checked: the shell answers
  ``presence.state`` (:func:`presence_state_frame`) and starts or stops the watch;
- :class:`Close` -- close the socket with this code;
- :class:`RefreshToken` -- (version 2) verify this token as at the upgrade, then hand
  the outcome back to :meth:`Session.refreshed` or :meth:`Session.refresh_refused`;
- :class:`WatchExpiry` -- (version 2) the connection now expires at ``expires_at``: the
  shell (re)arms its 4001 timer, and, when ``notice`` is set, a timer at
  ``expires_at - TOKEN_REFRESH_NOTICE`` that calls :meth:`Session.expiring`.

Protocol versions (docs/protocol.md, "Protocol version 2"): a connection without a
subprotocol speaks version 1, exactly the original (none of version 2's messages are
known to it, its replies are byte for byte today's). A version 2 connection encodes
every message in its format (``flowwire.v2.json``: JSON text; ``flowwire.v2.msgpack``:
msgpack binary) and knows ``hello`` (the first message, optional: asks for features,
answered by ``welcome``) and ``refresh`` (a fresh token: the connection, its
subscriptions and its cursor stay).

States::

    OPEN --receive()/expire()/close()--> CLOSING --closed()--> CLOSED

In ``CLOSING`` and ``CLOSED`` every input is ignored: nothing is processed after the
decision to close. A bad frame gets an ``error`` reply and changes nothing else; it never
closes the connection by itself (docs/protocol.md, "Errors"). Only a rate limit that goes on closes
(4029), and only the shell's timers close for heartbeat or token expiry (4001).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import msgspec

from gateway.core.flow import InboundLimit, RateDecision
from schemas.channels import Channel, parse_channel
from schemas.codec import rfc3339_from_ms
from schemas.control import (
    FEATURES,
    V2_MSGPACK,
    ChannelData,
    CloseCode,
    ErrorCode,
    ErrorData,
    ErrorMessage,
    ExpiryData,
    Filters,
    Hello,
    Ping,
    Pong,
    Presence,
    PresenceDiff,
    PresenceDiffData,
    PresenceMember,
    PresenceState,
    PresenceStateData,
    ProtocolError,
    Refresh,
    Refreshed,
    Subscribe,
    Subscribed,
    SubscribedData,
    TokenExpiring,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    WelcomeData,
    decode_client,
)

__all__ = [
    "Action",
    "Close",
    "Encode",
    "PresenceQuery",
    "RefreshToken",
    "Reply",
    "Session",
    "State",
    "SubscribeChannel",
    "UnsubscribeChannel",
    "WatchExpiry",
    "encoder_for",
    "error_frame",
    "presence_diff_frame",
    "presence_state_frame",
    "subscribed_frame",
]

Encode = Callable[[Any], bytes]
_encoder: Final = msgspec.json.Encoder()
_msgpack_encoder: Final = msgspec.msgpack.Encoder()


def encoder_for(protocol: str | None) -> Encode:
    """How a connection's control replies are encoded: msgpack for
    ``flowwire.v2.msgpack``, JSON otherwise."""
    return _msgpack_encoder.encode if protocol == V2_MSGPACK else _encoder.encode


class State(Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Reply:
    frame: bytes


@dataclass(frozen=True, slots=True)
class SubscribeChannel:
    name: str
    channel: Channel
    filters: Filters
    #: as the client sent it: a stream id or a cursor (``schemas.lanes.parse_resume``)
    since: str | None
    #: version 2: conflation asked for (``None``: not asked; version 1 never asks)
    conflate: bool | None = None


@dataclass(frozen=True, slots=True)
class UnsubscribeChannel:
    name: str
    channel: Channel


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class RefreshToken:
    token: str


@dataclass(frozen=True, slots=True)
class WatchExpiry:
    #: epoch seconds: the token's ``exp`` plus ``JWT_LEEWAY``
    expires_at: float
    #: arm the ``token_expiring`` notice too (``token_refresh`` granted)
    notice: bool


@dataclass(frozen=True, slots=True)
class PresenceQuery:
    """``channel``: a channel name, or ``""`` for the organization; ``watch``: start
    (``True``) or stop (``False``) its ``presence.diff`` events, or leave them."""

    channel: str
    watch: bool | None


Action = Reply | SubscribeChannel | UnsubscribeChannel | PresenceQuery | Close | RefreshToken | WatchExpiry


def error_frame(
    timestamp: str,
    code: str,
    message: str,
    *,
    type: str | None = None,
    channel: str | None = None,
    retry_after_ms: int | None = None,
    encode: Encode = _encoder.encode,
) -> bytes:
    data = ErrorData(code=code, message=message, type=type, channel=channel, retry_after_ms=retry_after_ms)
    return encode(ErrorMessage(timestamp=timestamp, data=data))


def subscribed_frame(
    timestamp: str,
    name: str,
    filters: Filters,
    position: str,
    recovered: bool | None,
    encode: Encode = _encoder.encode,
    conflate: bool | None = None,
) -> bytes:
    data = SubscribedData(
        channel=name, filters=filters, position=position, recovered=recovered, conflate=conflate
    )
    return encode(Subscribed(timestamp=timestamp, data=data))


def _rfc3339(epoch: float) -> str:
    return rfc3339_from_ms(int(epoch * 1000))


def presence_state_frame(
    timestamp: str,
    channel: str,
    members: list[tuple[str, int]],
    count: int,
    watching: bool,
    encode: Encode = _encoder.encode,
) -> bytes:
    data = PresenceStateData(
        members=[PresenceMember(u, n) for u, n in members],
        count=count,
        watching=watching,
        channel=channel or None,
    )
    return encode(PresenceState(timestamp=timestamp, data=data))


def presence_diff_frame(
    timestamp: str,
    channel: str,
    joined: list[tuple[str, int]],
    left: list[str],
    count: int,
    limit: int,
    encode: Encode = _encoder.encode,
) -> bytes:
    """A ``presence.diff``; past ``limit`` changes, a ``resync`` without lists instead."""
    if len(joined) + len(left) > limit:
        data = PresenceDiffData(joined=[], left=[], count=count, channel=channel or None, resync=True)
    else:
        members = [PresenceMember(u, n) for u, n in joined]
        data = PresenceDiffData(joined=members, left=left, count=count, channel=channel or None)
    return encode(PresenceDiff(timestamp=timestamp, data=data))


def _count(filters: Filters | None) -> int:
    """How many values a subscription's filters hold."""
    if filters is None:
        return 0
    return sum(len(v) for v in (filters.workflow_ids, filters.execution_ids, filters.statuses) if v)


class Session:
    """The protocol state of one authenticated connection."""

    __slots__ = (
        "_limit",
        "_noticed",
        "channels",
        "encode",
        "errors",
        "expires_at",
        "filter_values",
        "granted",
        "max_filter_values",
        "max_subscriptions",
        "org_id",
        "presence",
        "protocol",
        "received",
        "state",
        "user_id",
        "version",
        "watching",
    )

    def __init__(
        self,
        user_id: str,
        *,
        max_subscriptions: int,
        rate_limit: float,
        now: float,
        max_filter_values: int = 0,
        presence: bool = False,
        protocol: str | None = None,
        org_id: str | None = None,
        expires_at: float | None = None,
    ) -> None:
        self.user_id = user_id
        self.org_id = org_id
        #: whether ``presence`` messages are answered (``PRESENCE``); else UNKNOWN_TYPE
        self.presence = presence
        #: presence scopes watched ("" the organization), at most ``max_subscriptions``
        self.watching: set[str] = set()
        #: the subprotocol selected (``None``: version 1, the original protocol)
        self.protocol = protocol
        self.version = 1 if protocol is None else 2
        self.encode = encoder_for(protocol)
        #: epoch seconds when a token connection closes with 4001 (``None``: API key)
        self.expires_at = expires_at
        #: the features ``hello`` asked for and got (version 2)
        self.granted: tuple[str, ...] = ()
        self._noticed = False  # token_expiring sent for this expires_at
        #: messages received, and how many of them were refused as malformed
        self.received = 0
        self.errors = 0
        self.max_subscriptions = max_subscriptions
        #: filter values held over all subscriptions, at most ``max_filter_values``
        #: (0: no bound) so that one connection's filters stay small in memory
        self.max_filter_values = max_filter_values
        self.filter_values = 0
        self.state = State.OPEN
        self.channels: dict[str, Filters] = {}
        burst = InboundLimit.subscribe_burst_for(max_subscriptions, rate_limit)
        self._limit = InboundLimit(rate_limit, subscribe_burst=burst, now=now)

    def receive(self, frame: bytes | str, now: float, timestamp: str) -> list[Action]:
        """One inbound frame; ``timestamp`` stamps the replies (RFC 3339, the shell's)."""
        if self.state is not State.OPEN:
            return []
        # Decoded before the rate limit, which has an allowance of its own for subscribes
        # (a reconnect sends them all at once); a frame is at most MAX_MESSAGE_SIZE.
        message = decode_client(frame, version=self.version, msgpack=self.protocol == V2_MSGPACK)
        self.received += 1
        encode = self.encode
        subscribe = type(message) is Subscribe
        decision = self._limit.take(now, subscribe=subscribe)
        if decision == RateDecision.CLOSE:
            return self._close(CloseCode.RATE_LIMITED, "rate limit exceeded")
        if decision == RateDecision.LIMIT:
            retry = int(self._limit.retry_after(subscribe=subscribe) * 1000) + 1
            return [Reply(error_frame(timestamp, ErrorCode.RATE_LIMITED,
                                      "too many messages; slow down", retry_after_ms=retry,
                                      encode=encode))]  # fmt: skip
        match message:
            case Ping():
                return [Reply(encode(Pong(timestamp=timestamp)))]
            case Subscribe(data=data):
                conflate = True if data.conflate and self.version == 2 else None  # v2 only
                return self._subscribe(data.channel, data.filters, data.since, timestamp, conflate)
            case Unsubscribe(data=data):
                return self._unsubscribe(data.channel, timestamp)
            case Hello(data=data):
                return self._hello(data.features, timestamp)
            case Refresh(data=data):
                if self.expires_at is None:
                    return [Reply(error_frame(timestamp, ErrorCode.REFRESH_NOT_SUPPORTED,
                                              "an API-key connection does not expire",
                                              type="refresh", encode=encode))]  # fmt: skip
                return [RefreshToken(data.token)]
            case Presence(data=data):
                return self._presence(data.channel if data else None, data.watch if data else None, timestamp)
            case ProtocolError() as err:
                self.errors += 1
                return [Reply(error_frame(timestamp, err.code, err.message, type=err.type, encode=encode))]
        raise AssertionError("unreachable")  # pragma: no cover

    # -- version 2 ---------------------------------------------------------------------

    def _hello(self, features: list[str], timestamp: str) -> list[Action]:
        if self.received != 1:
            return [Reply(error_frame(timestamp, ErrorCode.INVALID_HELLO,
                                      "hello must be the connection's first message",
                                      type="hello", encode=self.encode))]  # fmt: skip
        supported = [f for f in FEATURES if self._offers(f)]
        self.granted = tuple(f for f in supported if f in features)
        assert self.protocol is not None
        data = WelcomeData(protocol=self.protocol, granted=list(self.granted), features=list(FEATURES))
        actions: list[Action] = [Reply(self.encode(Welcome(timestamp=timestamp, data=data)))]
        if "token_refresh" in self.granted:
            assert self.expires_at is not None
            actions.append(WatchExpiry(self.expires_at, notice=True))
        return actions

    def _offers(self, feature: str) -> bool:
        """Whether this connection can be granted ``feature``: ``token_refresh`` only
        when it expires (a token, not an API key), ``presence`` only with ``PRESENCE``."""
        if feature == "token_refresh":
            return self.expires_at is not None
        if feature == "presence":
            return self.presence
        return True

    def expiring(self, timestamp: str) -> list[Action]:
        """The shell's notice timer (``TOKEN_REFRESH_NOTICE`` before expiry): a
        ``token_expiring`` once per expiry, to connections granted ``token_refresh``."""
        if self.state is not State.OPEN or self._noticed or "token_refresh" not in self.granted:
            return []
        assert self.expires_at is not None
        self._noticed = True
        data = ExpiryData(expires_at=_rfc3339(self.expires_at))
        return [Reply(self.encode(TokenExpiring(timestamp=timestamp, data=data)))]

    def refreshed(
        self, user_id: str, org_id: str | None, expires_at: float | None, timestamp: str
    ) -> list[Action]:
        """The token of a ``refresh`` is valid: the connection goes on with its expiry if
        it names the same user and organization; else an ``error`` and nothing changes."""
        if self.state is not State.OPEN:
            return []
        if (user_id, org_id) != (self.user_id, self.org_id) or expires_at is None:
            return [Reply(error_frame(timestamp, ErrorCode.TOKEN_MISMATCH,
                                      "the token is for another user or organization than this connection's",
                                      type="refresh", encode=self.encode))]  # fmt: skip
        self.expires_at = expires_at
        self._noticed = False
        reply = self.encode(Refreshed(timestamp=timestamp, data=ExpiryData(expires_at=_rfc3339(expires_at))))
        return [Reply(reply), WatchExpiry(expires_at, notice="token_refresh" in self.granted)]

    def refresh_refused(self, message: str, timestamp: str) -> list[Action]:
        """The token of a ``refresh`` is not valid (``message`` says why): nothing changes."""
        if self.state is not State.OPEN:
            return []
        return [Reply(error_frame(timestamp, ErrorCode.INVALID_TOKEN, message, type="refresh",
                                  encode=self.encode))]  # fmt: skip

    def _subscribe(
        self,
        name: str,
        filters: Filters | None,
        since: str | None,
        timestamp: str,
        conflate: bool | None = None,
    ) -> list[Action]:
        channel = parse_channel(name)  # validated by the decoder already
        if channel.kind == "users" and channel.key != self.user_id:
            return [Reply(error_frame(timestamp, ErrorCode.FORBIDDEN,
                                      "users channels are for their own user only",
                                      type="subscribe", channel=name, encode=self.encode))]  # fmt: skip
        if name not in self.channels and len(self.channels) >= self.max_subscriptions:
            return [Reply(error_frame(timestamp, ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                                      f"at most {self.max_subscriptions} subscriptions",
                                      type="subscribe", channel=name, encode=self.encode))]  # fmt: skip
        flt = filters if filters is not None else Filters()
        held = self.filter_values - _count(self.channels.get(name)) + _count(flt)
        if self.max_filter_values and held > self.max_filter_values:
            return [Reply(error_frame(timestamp, ErrorCode.TOO_MANY_FILTER_VALUES,
                                      f"at most {self.max_filter_values} filter values per connection "
                                      f"(this subscribe would hold {held})",
                                      type="subscribe", channel=name, encode=self.encode))]  # fmt: skip
        self.channels[name] = flt
        self.filter_values = held
        return [SubscribeChannel(name, channel, flt, since or None, conflate)]

    def _unsubscribe(self, name: str, timestamp: str) -> list[Action]:
        # Idempotent: unsubscribing from a channel not subscribed still confirms.
        actions: list[Action] = []
        if (old := self.channels.pop(name, None)) is not None:
            self.filter_values -= _count(old)
            actions.append(UnsubscribeChannel(name, parse_channel(name)))
        frame = self.encode(Unsubscribed(timestamp=timestamp, data=ChannelData(name)))
        actions.append(Reply(frame))
        return actions

    def _presence(self, channel: str | None, watch: bool | None, timestamp: str) -> list[Action]:
        # docs/protocol.md, "Presence": the connection's own organization, always.
        if not self.presence:
            return [Reply(error_frame(timestamp, ErrorCode.UNKNOWN_TYPE,
                                      "presence is off on this gateway", type="presence",
                                      encode=self.encode))]  # fmt: skip
        name = channel or ""
        if name and (parsed := parse_channel(name)).kind == "users" and parsed.key != self.user_id:
            return [Reply(error_frame(timestamp, ErrorCode.FORBIDDEN,
                                      "users channels are for their own user only",
                                      type="presence", channel=name, encode=self.encode))]  # fmt: skip
        if watch and name not in self.watching:
            if len(self.watching) >= self.max_subscriptions:
                return [Reply(error_frame(timestamp, ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                                          f"at most {self.max_subscriptions} presence watches",
                                          type="presence", channel=name or None,
                                          encode=self.encode))]  # fmt: skip
            self.watching.add(name)
        elif watch is False:
            self.watching.discard(name)
        return [PresenceQuery(name, watch)]

    def expire(self) -> list[Action]:
        """The token expired (the shell's timer)."""
        if self.state is not State.OPEN:
            return []
        return self._close(CloseCode.TOKEN_EXPIRED, "token expired")

    def close(self, code: int, reason: str) -> list[Action]:
        """The shell decided to close (slow consumer, drain, ...)."""
        if self.state is not State.OPEN:
            return []
        return self._close(code, reason)

    def closed(self) -> None:
        """The socket is gone."""
        self.state = State.CLOSED
        self.channels.clear()
        self.watching.clear()
        self.filter_values = 0

    def _close(self, code: int, reason: str) -> list[Action]:
        self.state = State.CLOSING
        return [Close(code, reason)]
