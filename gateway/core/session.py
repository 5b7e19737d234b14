"""One connection's protocol state machine, sans I/O (STYLE habits 1 and 2).

Theory of operation
-------------------
The shell accepts a WebSocket after authenticating it, creates a :class:`Session` for
the identity, and from then on only moves data: each inbound text frame goes to
:meth:`Session.receive`, which returns the actions to carry out, in order:

- :class:`Reply` -- a control frame to queue (``pong``, ``unsubscribed``, ``error``);
- :class:`Subscribe` / :class:`Unsubscribe` -- a change for the subscription index;
  the shell answers ``subscribed`` with :func:`subscribed_frame`, since only it knows
  the stream position;
- :class:`Close` -- close the socket with this code.

States::

    OPEN --receive()/expire()/close()--> CLOSING --closed()--> CLOSED

In ``CLOSING`` and ``CLOSED`` every input is ignored: nothing is processed after the
decision to close. A bad frame gets an ``error`` reply and changes nothing else; it never
closes the connection by itself (DESIGN §3). Only a rate limit that goes on closes
(4029), and only the shell's timers close for heartbeat or token expiry (4001).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

import msgspec

from gateway.core.flow import RateDecision, TokenBucket
from schemas.channels import Channel, parse_channel
from schemas.codec import StreamId, parse_id
from schemas.control import (
    ChannelData,
    CloseCode,
    ErrorCode,
    ErrorData,
    ErrorMessage,
    Filters,
    Ping,
    Pong,
    ProtocolError,
    Subscribe,
    Subscribed,
    SubscribedData,
    Unsubscribe,
    Unsubscribed,
    decode_client,
)

__all__ = [
    "Action",
    "Close",
    "Reply",
    "Session",
    "State",
    "SubscribeChannel",
    "UnsubscribeChannel",
    "error_frame",
    "subscribed_frame",
]

_encoder: Final = msgspec.json.Encoder()


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
    since: StreamId | None


@dataclass(frozen=True, slots=True)
class UnsubscribeChannel:
    name: str
    channel: Channel


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


Action = Reply | SubscribeChannel | UnsubscribeChannel | Close


def error_frame(
    timestamp: str,
    code: str,
    message: str,
    *,
    type: str | None = None,
    channel: str | None = None,
    retry_after_ms: int | None = None,
) -> bytes:
    data = ErrorData(code=code, message=message, type=type, channel=channel, retry_after_ms=retry_after_ms)
    return _encoder.encode(ErrorMessage(timestamp=timestamp, data=data))


def subscribed_frame(
    timestamp: str, name: str, filters: Filters, position: str, recovered: bool | None
) -> bytes:
    data = SubscribedData(channel=name, filters=filters, position=position, recovered=recovered)
    return _encoder.encode(Subscribed(timestamp=timestamp, data=data))


class Session:
    """The protocol state of one authenticated connection."""

    __slots__ = ("_bucket", "channels", "max_subscriptions", "state", "user_id")

    def __init__(
        self,
        user_id: str,
        *,
        max_subscriptions: int,
        rate_limit: float,
        now: float,
    ) -> None:
        self.user_id = user_id
        self.max_subscriptions = max_subscriptions
        self.state = State.OPEN
        self.channels: dict[str, Filters] = {}
        burst = max(1, int(rate_limit * 2)) if rate_limit > 0 else 1
        self._bucket = TokenBucket(rate_limit, burst, now)

    def receive(self, frame: bytes | str, now: float, timestamp: str) -> list[Action]:
        """One inbound frame; ``timestamp`` stamps the replies (RFC 3339, the shell's)."""
        if self.state is not State.OPEN:
            return []
        decision = self._bucket.take(now)
        if decision == RateDecision.CLOSE:
            return self._close(CloseCode.RATE_LIMITED, "rate limit exceeded")
        if decision == RateDecision.LIMIT:
            retry = int(self._bucket.retry_after() * 1000) + 1
            return [Reply(error_frame(timestamp, ErrorCode.RATE_LIMITED,
                                      "too many messages; slow down", retry_after_ms=retry))]  # fmt: skip
        match decode_client(frame):
            case Ping():
                return [Reply(_encoder.encode(Pong(timestamp=timestamp)))]
            case Subscribe(data=data):
                return self._subscribe(data.channel, data.filters, data.since, timestamp)
            case Unsubscribe(data=data):
                return self._unsubscribe(data.channel, timestamp)
            case ProtocolError() as err:
                return [Reply(error_frame(timestamp, err.code, err.message, type=err.type))]
        raise AssertionError("unreachable")  # pragma: no cover

    def _subscribe(
        self, name: str, filters: Filters | None, since: str | None, timestamp: str
    ) -> list[Action]:
        channel = parse_channel(name)  # validated by the decoder already
        if channel.kind == "users" and channel.key != self.user_id:
            return [Reply(error_frame(timestamp, ErrorCode.FORBIDDEN,
                                      "users channels are for their own user only",
                                      type="subscribe", channel=name))]  # fmt: skip
        if name not in self.channels and len(self.channels) >= self.max_subscriptions:
            return [Reply(error_frame(timestamp, ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                                      f"at most {self.max_subscriptions} subscriptions",
                                      type="subscribe", channel=name))]  # fmt: skip
        flt = filters if filters is not None else Filters()
        self.channels[name] = flt
        return [SubscribeChannel(name, channel, flt, parse_id(since) if since else None)]

    def _unsubscribe(self, name: str, timestamp: str) -> list[Action]:
        # Idempotent: unsubscribing from a channel not subscribed still confirms.
        actions: list[Action] = []
        if self.channels.pop(name, None) is not None:
            actions.append(UnsubscribeChannel(name, parse_channel(name)))
        frame = _encoder.encode(Unsubscribed(timestamp=timestamp, data=ChannelData(name)))
        actions.append(Reply(frame))
        return actions

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

    def _close(self, code: int, reason: str) -> list[Action]:
        self.state = State.CLOSING
        return [Close(code, reason)]
