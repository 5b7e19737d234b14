"""Issue 12's end-to-end proof: three gateway processes on one redis-server, 300
resuming clients with varied subscriptions, 20,000 events appended while instances are
SIGKILLed (and restarted in their place) at random and clients' connections are dropped
at random. Every client's ids are checked against what it was owed: each event once, in
stream order, none missing.

The clients all run in this process, so most subscribe narrowly (one execution, one
workflow, a status of one workflow), as a dashboard's detail pages do; a few take the
whole ``executions`` channel.
"""

from __future__ import annotations

import asyncio
import random
import signal
from typing import Any

import pytest

from tests.gateway.test_pods import _stop, assert_exact, pods, publish, redis_srv, start_clients
from tests.support.checker import Want
from tests.support.redis_server import RedisServer

__all__ = ["redis_srv"]

EVENTS = 20_000
CLIENTS = 300
EXECUTIONS = 100
WORKFLOWS = 40


def event(i: int) -> tuple[str, dict[str, Any]]:
    eid, wf = f"e{i % EXECUTIONS}", f"wf-{i % WORKFLOWS}"
    if i % 11 == 5:
        return "approval.required", {"approval_id": f"a{i}", "execution_id": eid, "workflow_id": wf,
                                     "status": "pending"}  # fmt: skip
    if i % 7 == 3:
        return "step.completed", {"execution_id": eid, "workflow_id": wf, "step_id": f"s{i}",
                                  "step_type": "action", "status": "completed"}  # fmt: skip
    status = ("running", "failed", "completed")[i % 3]
    etype = {"running": "execution.started", "failed": "execution.failed", "completed": "execution.completed"}
    return etype[status], {"execution_id": eid, "workflow_id": wf, "status": status}


def wants(k: int) -> list[Want]:
    kind = k % 6
    if k < 6:
        return [Want("executions")]  # six clients see every execution event
    if kind == 0:
        return [Want(f"executions:e{k % EXECUTIONS}")]
    if kind == 1:
        return [Want(f"workflows:wf-{k % WORKFLOWS}")]
    if kind == 2:
        return [Want("executions", {"statuses": ["failed"], "workflow_ids": [f"wf-{k % WORKFLOWS}"]})]
    if kind == 3:
        return [Want("approvals", {"execution_ids": [f"e{k % EXECUTIONS}", f"e{(k + 1) % EXECUTIONS}"]})]
    if kind == 4:
        return [Want(f"executions:e{k % EXECUTIONS}"), Want(f"workflows:wf-{(k + 3) % WORKFLOWS}")]
    return [Want("executions", {"execution_ids": [f"e{k % EXECUTIONS}"], "statuses": ["running", "failed"]})]


@pytest.mark.timeout(420)
async def test_kills_and_drops_while_twenty_thousand_events_are_appended(redis_srv: RedisServer) -> None:
    rng = random.Random(12)
    gws = pods(redis_srv, 3)
    try:
        clients = await start_clients([g.url for g in gws], CLIENTS, [wants(k) for k in range(CLIENTS)])
        load = asyncio.create_task(publish(redis_srv.url, EVENTS, batch=100, pause=0.03, event=event))
        kills = drops = 0
        while not load.done():
            await asyncio.sleep(rng.uniform(0.3, 0.8))
            if rng.random() < 0.3:
                victim = rng.choice(gws)
                victim.signal(signal.SIGKILL)
                await asyncio.to_thread(victim.wait)
                kills += 1
                victim.start(wait_ready=False)  # a new instance in its place, same address
            for c in rng.sample(clients, 10):
                c.drop()
                drops += 1
        appended = await load
        assert len(appended) == EVENTS
        for g in gws:
            await asyncio.to_thread(g.wait_ready, 30)
        await assert_exact(clients, appended, timeout=240)
        assert kills >= 1 and drops >= 100, (kills, drops)
        assert sum(c.connects for c in clients) > CLIENTS
    finally:
        _stop(gws)
