"""Reconnect backoff policy (policy apart from waiting).

Exponential with full jitter, capped: attempt ``n`` (from 0) waits a uniform random
time in ``[0, min(cap, base * factor**n)]``. The caller supplies the random number, so
the policy is deterministic under test; the shell sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = 0.1
    cap: float = 5.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not (0 < self.base <= self.cap and self.factor >= 1):
            raise ValueError("need 0 < base <= cap and factor >= 1")

    def ceiling(self, attempt: int) -> float:
        """The largest delay of attempt ``attempt`` (0-based)."""
        # Cap the exponent so huge attempt numbers cannot overflow.
        return min(self.cap, self.base * self.factor ** min(attempt, 64))

    def delay(self, attempt: int, rand: float) -> float:
        """``rand`` is uniform in [0, 1)."""
        return self.ceiling(attempt) * rand
