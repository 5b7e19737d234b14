"""A simulated workflow executor for ``flowwire demo`` (issue 5).

:func:`scenario` is pure: given a random generator it plans one execution of a named
workflow as a list of ``(delay seconds, event type, payload)``: created, started, steps
started/completed/failed/skipped, approvals required/granted/denied/expired, pauses and
resumes, failures with error messages, cancellations. Across runs every one of the 16
event types occurs, with consistent ids, statuses and timestamps.

:class:`Simulator` plays scenarios concurrently at a configurable rate into a sink: the
``publisher`` API (Redis) or straight into the embedded log.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from publisher import Publication
from schemas.codec import rfc3339_from_ms
from schemas.events import make_event

__all__ = ["WORKFLOWS", "Planned", "Simulator", "Workflow", "scenario"]


@dataclass(frozen=True, slots=True)
class Workflow:
    id: str
    name: str
    steps: tuple[tuple[str, str], ...]  # (step id, step type)
    approval_after: int | None = None  # index of the step that needs an approval first


WORKFLOWS: Final = (
    Workflow(
        "wf-order-fulfilment",
        "Order fulfilment",
        (
            ("validate-order", "condition"),
            ("reserve-stock", "http"),
            ("charge-card", "http"),
            ("ship", "action"),
            ("notify-customer", "notification"),
        ),
    ),
    Workflow(
        "wf-invoice-approval",
        "Invoice approval",
        (
            ("parse-invoice", "transform"),
            ("check-budget", "condition"),
            ("pay-invoice", "http"),
            ("archive", "action"),
        ),
        approval_after=2,
    ),
    Workflow(
        "wf-user-onboarding",
        "User onboarding",
        (
            ("create-account", "action"),
            ("send-welcome", "notification"),
            ("sync-crm", "http"),
            ("schedule-call", "action"),
        ),
    ),
)

_ERRORS: Final = (
    "HTTP 503 from payments: service unavailable",
    "timeout after 30s waiting for inventory",
    "condition failed: budget exceeded",
    "invalid address: postcode missing",
)

Planned = tuple[float, str, dict[str, Any]]


def scenario(rng: random.Random, wf: Workflow, execution_id: str, start_ms: int) -> list[Planned]:
    """Plan one execution; timestamps follow the planned delays from ``start_ms``."""
    plan: list[Planned] = []
    clock = start_ms
    started_at = ""

    def at(delay: float, event_type: str, data: dict[str, Any]) -> None:
        nonlocal clock
        clock += int(delay * 1000)
        plan.append((delay, event_type, data))

    def execution(status: str, **extra: Any) -> dict[str, Any]:
        return {"execution_id": execution_id, "workflow_id": wf.id, "status": status, **extra}

    at(0.0, "execution.created", execution("pending", trigger_event=f"{wf.id.removeprefix('wf-')}.requested"))
    started_at = rfc3339_from_ms(clock)
    at(rng.uniform(0.2, 0.8), "execution.started", execution("running", started_at=started_at))
    if rng.random() < 0.06:
        at(
            rng.uniform(0.5, 1.5),
            "execution.cancelled",
            execution("cancelled", completed_at=rfc3339_from_ms(clock), duration_ms=clock - start_ms),
        )
        return plan
    for index, (step_id, step_type) in enumerate(wf.steps):
        if wf.approval_after == index and not _approve(
            rng, plan, at, execution, execution_id, wf, lambda: clock
        ):
            return plan
        step = {
            "execution_id": execution_id,
            "workflow_id": wf.id,
            "step_id": step_id,
            "step_type": step_type,
        }
        if step_type == "condition" and rng.random() < 0.15:
            at(rng.uniform(0.1, 0.4), "step.skipped", {**step, "status": "skipped"})
            continue
        step_start = rfc3339_from_ms(clock)
        at(rng.uniform(0.2, 0.6), "step.started", {**step, "status": "running", "started_at": step_start})
        took = rng.uniform(0.4, 2.0)
        if rng.random() < 0.08:
            error = rng.choice(_ERRORS)
            at(
                took,
                "step.failed",
                {
                    **step,
                    "status": "failed",
                    "started_at": step_start,
                    "completed_at": rfc3339_from_ms(clock + int(took * 1000)),
                    "duration_ms": int(took * 1000),
                    "error_message": error,
                },
            )
            at(
                0.2,
                "execution.failed",
                execution(
                    "failed",
                    result="failed",
                    started_at=started_at,
                    completed_at=rfc3339_from_ms(clock),
                    duration_ms=clock - start_ms,
                    error_message=f"step {step_id}: {error}",
                ),
            )
            return plan
        at(
            took,
            "step.completed",
            {
                **step,
                "status": "completed",
                "started_at": step_start,
                "completed_at": rfc3339_from_ms(clock + int(took * 1000)),
                "duration_ms": int(took * 1000),
                "output": {"ok": True},
            },
        )
    at(
        0.3,
        "execution.completed",
        execution(
            "completed",
            result="executed",
            started_at=started_at,
            completed_at=rfc3339_from_ms(clock),
            duration_ms=clock - start_ms,
        ),
    )
    return plan


def _approve(
    rng: random.Random,
    plan: list[Planned],
    at: Callable[[float, str, dict[str, Any]], None],
    execution: Callable[..., dict[str, Any]],
    execution_id: str,
    wf: Workflow,
    clock: Callable[[], int],
) -> bool:
    """Plan an approval; ``True`` when the execution goes on afterwards."""
    approval = {
        "approval_id": "appr_" + execution_id.removeprefix("exec_"),
        "execution_id": execution_id,
        "workflow_id": wf.id,
    }
    expires = rfc3339_from_ms(clock() + 60_000)
    at(
        0.3,
        "approval.required",
        {**approval, "status": "pending", "reason": "amount over 10,000", "expires_at": expires},
    )
    at(0.1, "execution.paused", execution("paused", paused_reason="waiting for approval"))
    wait = rng.uniform(2.0, 5.0)
    outcome = rng.random()
    if outcome < 0.65:
        at(
            wait,
            "approval.granted",
            {
                **approval,
                "status": "approved",
                "approved_by": rng.choice(["alice@example.com", "bob@example.com"]),
                "approved_at": rfc3339_from_ms(clock() + int(wait * 1000)),
            },
        )
        at(0.2, "execution.resumed", execution("running"))
        return True
    if outcome < 0.85:
        at(
            wait,
            "approval.denied",
            {
                **approval,
                "status": "rejected",
                "approved_by": "carol@example.com",
                "reason": "not in this quarter's budget",
            },
        )
        at(0.2, "execution.blocked", execution("blocked", result="blocked", error_message="approval denied"))
        return False
    at(wait, "approval.expired", {**approval, "status": "expired", "expires_at": expires})
    at(0.2, "execution.cancelled", execution("cancelled", error_message="approval expired"))
    return False


Sink = Callable[[list[Publication]], Awaitable[None]]


class Simulator:
    """Starts an execution every ``1 / rate`` seconds (jittered) and plays it out."""

    def __init__(self, sink: Sink, *, rate: float = 0.5, seed: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 executions per second")
        self.sink = sink
        self.rate = rate
        self.rng = random.Random(seed)
        self.started = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        try:
            while True:
                wf = self.rng.choice(WORKFLOWS)
                execution_id = "exec_" + secrets.token_hex(4)
                plan = scenario(random.Random(self.rng.random()), wf, execution_id, int(time.time() * 1000))
                task = asyncio.create_task(self._play(plan))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                self.started += 1
                await asyncio.sleep(self.rng.expovariate(self.rate))
        finally:
            for task in self._tasks:
                task.cancel()

    async def _play(self, plan: list[Planned]) -> None:
        for delay, event_type, data in plan:
            await asyncio.sleep(delay)
            await self.sink([Publication(make_event(event_type, data))])
