"""The simulated executor's plans, without an event loop."""

from __future__ import annotations

import random

from gateway.demo.executor import WORKFLOWS, scenario
from schemas.events import EVENT_TYPES, make_event

TERMINAL = {"execution.completed", "execution.failed", "execution.cancelled", "execution.blocked"}


def test_all_sixteen_types_occur_with_consistent_plans() -> None:
    seen: set[str] = set()
    for seed in range(300):
        rng = random.Random(seed)
        wf = WORKFLOWS[seed % len(WORKFLOWS)]
        plan = scenario(rng, wf, f"exec_{seed:08x}", 1_700_000_000_000)
        types = [t for _, t, _ in plan]
        seen.update(types)
        assert types[0] == "execution.created"
        assert types[-1] in TERMINAL
        assert sum(t in TERMINAL for t in types) == 1
        step_ids = {s for s, _ in wf.steps}
        for delay, event_type, data in plan:
            assert delay >= 0
            make_event(event_type, data)  # valid: raises otherwise
            assert data["execution_id"] == f"exec_{seed:08x}"
            if event_type.startswith("step."):
                assert data["step_id"] in step_ids
                assert data["workflow_id"] == wf.id
        # Every paused execution is resumed or ends.
        if "execution.paused" in types:
            after = types[types.index("execution.paused") + 1 :]
            assert any(t.startswith("approval.") and t != "approval.required" for t in after)
    assert seen == set(EVENT_TYPES)


def test_plans_are_reproducible() -> None:
    wf = WORKFLOWS[1]
    a = scenario(random.Random(7), wf, "exec_1", 0)
    b = scenario(random.Random(7), wf, "exec_1", 0)
    assert a == b
