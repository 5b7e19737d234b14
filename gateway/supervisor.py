"""Supervision of the gateway's background components (the policy is
``gateway.core.supervision``).

Each component is a coroutine function run in its own task. An unexpected exception (or
an unexpected return) is logged with its traceback, counted
(``flowwire_component_restarts_total``), and the component restarted after a backoff;
while it is down, :meth:`Supervisor.down` names it (``/readyz`` answers 503 with its
name). A component that cannot be restarted (it fails again and again right after each
start) calls ``on_fatal``: the process then exits non-zero, for the orchestrator to
replace it. Cancellation (shutdown) is never a failure.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.core.supervision import RestartPolicy

__all__ = ["CANCEL_GRACE", "CANCEL_ROUNDS", "Supervisor", "cancel_all"]

logger = logging.getLogger("flowwire.supervisor")

Component = Callable[[], Coroutine[Any, Any, None]]


class Supervisor:
    def __init__(
        self,
        on_fatal: Callable[[str], None],
        restarts: Counter[str] | None = None,
        *,
        policy: Callable[[], RestartPolicy] = RestartPolicy,
    ) -> None:
        self.on_fatal = on_fatal
        self._policy = policy
        #: restarts by component (shared with ``Stats.component_restarts``)
        self.restarts: Counter[str] = Counter() if restarts is None else restarts
        self._down: dict[str, str] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, component: Component) -> None:
        self._tasks[name] = asyncio.create_task(self._run(name, component), name=f"flowwire-{name}")

    def down(self) -> dict[str, str]:
        """Components not running now, with why."""
        return dict(self._down)

    async def _run(self, name: str, component: Component) -> None:
        policy = self._policy()
        while True:
            started = time.monotonic()
            try:
                await component()
                reason = "returned unexpectedly"
                logger.error("component %s returned; restarting it", name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = f"failed: {exc!r}"
                logger.exception("component %s failed; restarting it", name)
            self.restarts[name] += 1
            self._down[name] = reason
            delay = policy.failed(time.monotonic() - started, random.random())
            if delay is None:
                logger.critical(
                    "component %s failed %d times in a row right after starting; giving up: "
                    "the process exits for its supervisor to replace it",
                    name,
                    policy.streak,
                )
                self.on_fatal(f"{name} {reason}")
                return
            await asyncio.sleep(delay)
            del self._down[name]

    async def aclose(self) -> None:
        await cancel_all(list(self._tasks.values()))
        self._tasks.clear()


#: A task that has not ended this long after it was cancelled is cancelled again.
CANCEL_GRACE = 0.5
#: ... at most this many times; then it is left running (logged), so that shutdown ends.
CANCEL_ROUNDS = 20


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for them to end. A library may swallow a cancellation
    (``publisher.connect.raise_if_cancelled``): a task still running ``CANCEL_GRACE``
    after it was cancelled is cancelled again, and after ``CANCEL_ROUNDS`` rounds it is
    named in the log and left behind, so that a shutdown always ends."""
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    for _ in range(CANCEL_ROUNDS):
        if not pending:
            break
        _, pending = await asyncio.wait(pending, timeout=CANCEL_GRACE)
        for task in pending:
            logger.warning("task %s did not end when cancelled: cancelling it again", task.get_name())
            task.cancel()
    if pending:
        logger.error("tasks %s ignore cancellation: left running", sorted(t.get_name() for t in pending))
    await asyncio.gather(*(task for task in tasks if task.done()), return_exceptions=True)
