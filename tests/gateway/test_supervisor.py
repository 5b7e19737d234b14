"""The supervisor restarts what fails, names what is down, and gives up on a crash loop
(issue 12 §3). A real event loop; the components are small coroutines."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import pytest

from gateway import supervisor
from gateway.core.backoff import Backoff
from gateway.core.supervision import RestartPolicy
from gateway.supervisor import Supervisor


def fast(give_up_after: int = 10) -> RestartPolicy:
    return RestartPolicy(Backoff(base=0.01, cap=0.01), healthy_after=60.0, give_up_after=give_up_after)


async def test_a_failing_component_is_logged_counted_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    runs = 0
    resumed = asyncio.Event()

    async def component() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError(f"boom {runs}")
        resumed.set()
        await asyncio.Event().wait()

    fatal: list[str] = []
    restarts: Counter[str] = Counter()
    sup = Supervisor(fatal.append, restarts, policy=fast)
    sup.start("reader", component)
    await asyncio.wait_for(resumed.wait(), 5)
    assert restarts["reader"] == 2 and not fatal
    assert sup.down() == {}
    assert "component reader failed" in caplog.text and "boom 1" in caplog.text  # traceback logged
    await sup.aclose()


async def test_down_names_the_component_until_it_restarts() -> None:
    gate = asyncio.Event()

    async def component() -> None:
        raise ValueError("no")

    sup = Supervisor(lambda _: gate.set(), policy=lambda: RestartPolicy(Backoff(base=5, cap=5)))
    sup.start("mirror", component)
    await asyncio.sleep(0.05)
    assert "mirror" in sup.down() and "ValueError" in sup.down()["mirror"]
    await sup.aclose()


async def test_a_crash_loop_is_fatal() -> None:
    async def component() -> None:
        raise OSError("cannot")

    fatal: list[str] = []
    sup = Supervisor(fatal.append, policy=lambda: fast(give_up_after=3))
    sup.start("replay", component)
    for _ in range(200):
        if fatal:
            break
        await asyncio.sleep(0.01)
    assert fatal and fatal[0].startswith("replay failed")
    await sup.aclose()


async def test_cancel_all_cancels_again_what_swallowed_its_cancellation(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task that swallowed its cancellation is cancelled again; one that ignores every
    cancellation is named in the log and left behind: shutdown always ends."""
    monkeypatch.setattr(supervisor, "CANCEL_GRACE", 0.01)
    monkeypatch.setattr(supervisor, "CANCEL_ROUNDS", 3)

    async def swallows_once() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        await asyncio.sleep(3600)  # the second cancellation ends it

    stubborn_gate = asyncio.Event()

    async def stubborn() -> None:
        while not stubborn_gate.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    once = asyncio.create_task(swallows_once(), name="swallows-once")
    never = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    await supervisor.cancel_all([once, never])
    assert once.cancelled()
    assert not never.done()
    assert "swallows-once did not end when cancelled: cancelling it again" in caplog.text
    assert "tasks ['stubborn'] ignore cancellation: left running" in caplog.text
    stubborn_gate.set()
    never.cancel()
    await asyncio.wait({never})
