"""Flow control policies: the per-connection outbox and the inbound rate limit.

Pure and synchronous; the shell supplies the clock.

The outbox holds the frames a connection is owed and not yet written, bounded in
*events* and in *bytes*. Control replies (``pong``, ``subscribed``, ``error``...) are
never dropped (defect 9): they count against the byte bound only. An event offered to a
full outbox, or a reply past the byte bound, is refused: the connection is then closed
with 4008 and the client resumes from its last id. Nothing is dropped silently.
"""

from __future__ import annotations

__all__ = ["InboundLimit", "Outbox", "RateDecision", "TokenBucket"]


class Outbox:
    """Frames in order, bounded in events and in bytes (control replies included)."""

    __slots__ = ("_events", "frames", "limit", "max_bytes", "size")

    def __init__(self, limit: int, max_bytes: int = 1 << 62) -> None:
        if limit < 1:
            raise ValueError("outbox limit must be >= 1")
        if max_bytes < 1:
            raise ValueError("outbox byte bound must be >= 1")
        self.limit = limit
        self.max_bytes = max_bytes
        #: what is queued, in order; read-only outside (truthy when anything is queued:
        #: the hot path tests it without a call to ``__len__``)
        self.frames: list[bytes] = []
        #: bytes queued
        self.size = 0
        self._events = 0

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def events(self) -> int:
        return self._events

    @property
    def full(self) -> bool:
        return self._events >= self.limit or self.size >= self.max_bytes

    def _fits(self, n: int) -> bool:
        # One frame always fits an empty outbox: a frame larger than the byte bound must
        # not close its connection over and over (the event size is bounded upstream).
        return not self.frames or self.size + n <= self.max_bytes

    def offer_event(self, frame: bytes) -> bool:
        """Queue an event frame; ``False`` (and nothing queued) when full."""
        n = len(frame)
        if self._events >= self.limit or not self._fits(n):
            return False
        self.frames.append(frame)
        self.size += n
        self._events += 1
        return True

    def put_control(self, frame: bytes) -> bool:
        """Queue a control reply; ``False`` past the byte bound only (never for the
        number of events): the caller closes the connection instead of dropping it."""
        n = len(frame)
        if not self._fits(n):
            return False
        self.frames.append(frame)
        self.size += n
        return True

    def take(self) -> list[bytes]:
        """Everything queued, in order; the outbox is empty afterwards."""
        frames = self.frames
        self.frames = []
        self._events = 0
        self.size = 0
        return frames


class RateDecision:
    ALLOW = 0
    LIMIT = 1  # reply RATE_LIMITED, process nothing
    CLOSE = 2  # still going on: close with 4029


class TokenBucket:
    """``rate`` messages per second with bursts of ``burst``; then a grace of ``burst``
    refused messages before the connection is closed."""

    __slots__ = ("_last", "_strikes", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now
        self._strikes = 0

    def take(self, now: float) -> int:
        if self.rate <= 0:
            return RateDecision.ALLOW  # unlimited
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self._strikes = 0
            return RateDecision.ALLOW
        self._strikes += 1
        return RateDecision.CLOSE if self._strikes > self.burst else RateDecision.LIMIT

    def retry_after(self) -> float:
        """Seconds until one message will be allowed again."""
        if self.rate <= 0:
            return 0.0
        return max(0.0, (1.0 - self._tokens) / self.rate)


class InboundLimit:
    """The inbound rate limit of one connection: ``rate`` messages per second, in two
    buckets that refill at that rate.

    - ``subscribe`` messages draw on an allowance of ``subscribe_burst``: a client
      re-sends every subscription at once after each reconnect (the original client
      does), so a burst of up to ``MAX_SUBSCRIPTIONS`` subscribes must pass;
      :meth:`subscribe_burst_for` sizes it at that plus the ordinary burst.
    - every other message (``ping``, ``unsubscribe``, bad frames) draws on bursts of
      :meth:`message_burst` (twice the rate), unaffected by the subscribes.

    Each bucket refuses (``LIMIT``) when empty and closes (``CLOSE``) after as many
    refusals in a row as its burst: the limit is for abuse, not for ordinary clients.
    """

    __slots__ = ("_messages", "_subscribes")

    def __init__(self, rate: float, *, subscribe_burst: int, now: float) -> None:
        self._messages = TokenBucket(rate, self.message_burst(rate), now)
        self._subscribes = TokenBucket(rate, max(1, subscribe_burst), now)

    @staticmethod
    def message_burst(rate: float) -> int:
        return max(1, int(rate * 2)) if rate > 0 else 1

    @classmethod
    def subscribe_burst_for(cls, max_subscriptions: int, rate: float) -> int:
        """A whole reconnect's subscribes, plus the ordinary burst as a margin."""
        return max_subscriptions + cls.message_burst(rate)

    def take(self, now: float, *, subscribe: bool) -> int:
        return (self._subscribes if subscribe else self._messages).take(now)

    def retry_after(self, *, subscribe: bool) -> float:
        return (self._subscribes if subscribe else self._messages).retry_after()
