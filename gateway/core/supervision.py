"""When to restart a background component that failed, and when to give up (pure).

A component (the stream reader, the shared replay, the mirror) that raises an unexpected
exception, or returns although it should run for ever, is restarted after a jittered,
capped backoff. A component that keeps failing soon after each start cannot be restarted
usefully: after ``give_up_after`` failures in a row, each within ``healthy_after``
seconds of its start, the process exits non-zero so that the orchestrator replaces it.
A component that ran for ``healthy_after`` seconds before failing starts a new count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.core.backoff import Backoff

__all__ = ["RestartPolicy"]


@dataclass(slots=True)
class RestartPolicy:
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.1, cap=5.0))
    healthy_after: float = 60.0
    give_up_after: int = 10
    #: failures in a row, each soon after its start
    streak: int = 0

    def failed(self, ran_for: float, rand: float) -> float | None:
        """The component failed after running ``ran_for`` seconds: the delay before its
        restart, or ``None`` to give up (the process must exit)."""
        self.streak = 1 if ran_for >= self.healthy_after else self.streak + 1
        if self.streak >= self.give_up_after:
            return None
        return self.backoff.delay(self.streak - 1, rand)
