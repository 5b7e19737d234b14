"""Flow control policies: the per-connection outbox and the inbound rate limit.

Pure and synchronous; the shell supplies the clock.

The outbox (DESIGN §5) holds the frames a connection is owed and not yet written. It
is bounded in *events*; control replies (``pong``, ``subscribed``, ``error``...) are
always accepted, never dropped (defect 9), and bounded instead by the inbound rate
limit that causes them. An event offered to a full outbox is refused: the shell then
closes the connection with 4008 and the client resumes from its last id. Nothing is
dropped silently.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Outbox", "RateDecision", "TokenBucket"]

F = TypeVar("F")


class Outbox(Generic[F]):
    """Frames in order; ``events`` counts the event frames among them."""

    __slots__ = ("_events", "frames", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("outbox limit must be >= 1")
        self.limit = limit
        #: what is queued, in order; read-only outside (truthy when anything is queued:
        #: the hot path tests it without a call to ``__len__``)
        self.frames: list[F] = []
        self._events = 0

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def events(self) -> int:
        return self._events

    @property
    def full(self) -> bool:
        return self._events >= self.limit

    def offer_event(self, frame: F) -> bool:
        """Queue an event frame; ``False`` (and nothing queued) when full."""
        if self._events >= self.limit:
            return False
        self.frames.append(frame)
        self._events += 1
        return True

    def put_control(self, frame: F) -> None:
        """Queue a control reply: always accepted."""
        self.frames.append(frame)

    def take(self) -> list[F]:
        """Everything queued, in order; the outbox is empty afterwards."""
        frames = self.frames
        self.frames = []
        self._events = 0
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
