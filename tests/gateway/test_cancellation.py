"""A retry loop stops when its task is cancelled, even when the failed call swallowed the
cancellation (redis-py turns one that lands while it connects into a connection error).

Found in CI: with a Cluster primary dead, a gateway's SIGTERM waited for its reader lane,
which went on backing off and retrying for ever (killed after 15 s)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import redis.exceptions

from publisher.connect import UNAVAILABLE, raise_if_cancelled, retry_pause

Pause = Callable[[float], Awaitable[None]]


async def _swallowing_call() -> None:
    """What redis-py does when cancelled mid-connect, at worst."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        raise redis.exceptions.ConnectionError("Error connecting: cancelled") from None


async def _retry_loop(pause: Pause, attempts: list[int]) -> None:
    while True:
        attempts.append(1)
        try:
            await _swallowing_call()
        except UNAVAILABLE:
            await pause(3600)


async def _cancel_and_settle(pause: Pause) -> tuple[asyncio.Task[None], list[int]]:
    attempts: list[int] = []
    task = asyncio.create_task(_retry_loop(pause, attempts))
    await asyncio.sleep(0)  # the loop is in its first call
    task.cancel()
    for _ in range(10):  # a handful of loop turns; no clock involved
        await asyncio.sleep(0)
    return task, attempts


async def test_retry_pause_ends_a_task_whose_cancellation_was_swallowed() -> None:
    task, attempts = await _cancel_and_settle(retry_pause)
    assert task.done() and task.cancelled()
    assert len(attempts) == 1  # no retry after the cancellation


async def test_a_plain_sleep_would_retry_past_the_cancellation() -> None:
    """The failure the helper prevents, shown: the same loop with ``asyncio.sleep``
    outlives its cancellation."""
    task, _ = await _cancel_and_settle(asyncio.sleep)
    assert not task.done()
    task.cancel()  # the second cancel lands in the sleep
    for _ in range(3):
        await asyncio.sleep(0)
    assert task.cancelled()


async def test_retry_pause_sleeps_when_nothing_asked_to_stop() -> None:
    task = asyncio.create_task(retry_pause(0))
    await task
    assert task.done() and not task.cancelled()


async def _swallowing_read() -> None:
    """What a pub/sub read with a timeout may do when cancelled as it times out: return
    nothing."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3600)


async def test_a_loop_that_looks_ends_even_when_a_read_swallowed_the_cancellation() -> None:
    """Presence's loop after its gateway's drain (found in CI: the worker never exited).
    The same loop without the look outlives any number of cancellations."""
    stop = False

    async def follow(look: bool) -> None:
        while not stop:
            if look:
                raise_if_cancelled()
            await _swallowing_read()

    for look in (True, False):
        task = asyncio.create_task(follow(look))
        await asyncio.sleep(0)
        for _ in range(3):
            task.cancel()
            for _ in range(5):
                await asyncio.sleep(0)
        assert task.done() is look
    stop = True
    task.cancel()  # the plain loop, told to stop: its read returns, the loop ends
    await asyncio.wait({task})
