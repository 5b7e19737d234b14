"""The demo dashboard's "Watching" panel (presence) in headless Chromium, against a real
`flowwire demo` process (the embedded event log: presence is the process's own).

A page opened as demo-user sees itself; a second page opened with the demo's second URL
(demo-guest, the same organization) appears on the first page within a bounded wait, both
in the user list and in each workflow channel's watcher count, and leaves it when closed.
After "Drop the connection" the page asks for presence again on its new socket: a user
who connected while the page was away is listed (no diff could have told it), and diffs
keep coming on the new socket (that user's leaving shows).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright
from websockets.asyncio.client import connect

from tests.demo.test_dashboard import CHROMIUM, FLAGS, LAYOUT_PROBLEMS, Demo

WAIT = 10.0  # presence diffs come within PRESENCE_INTERVAL (250 ms): 10 s is generous

USERS = """Object.fromEntries([...document.querySelectorAll('#watchers li[data-user]')]
  .map(li => [li.dataset.user, +li.dataset.connections]))"""
YOU = "[...document.querySelectorAll('#watchers li.you')].map(li => li.dataset.user)"
CHANNELS = """Object.fromEntries([...document.querySelectorAll('#channel-watchers li[data-channel]')]
  .map(li => [li.dataset.channel, li.dataset.count]))"""
WORKFLOWS = ("wf-order-fulfilment", "wf-invoice-approval", "wf-user-onboarding")


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed; the test command installs Debian's chromium")
    d = Demo()
    yield d
    d.stop()


async def _users_until(page: Page, want: set[str]) -> dict[str, int]:
    """The panel's users once they are exactly `want` (fails after WAIT)."""
    deadline = time.monotonic() + WAIT
    users: dict[str, int]
    while set(users := await page.evaluate(USERS)) != want:
        assert time.monotonic() < deadline, f"the Watching panel shows {users}, not {sorted(want)}"
        await asyncio.sleep(0.1)
    return users


async def _channels_until(page: Page, count: int) -> None:
    want = {f"workflows:{wf}": str(count) for wf in WORKFLOWS}
    deadline = time.monotonic() + WAIT
    while (channels := await page.evaluate(CHANNELS)) != want:
        assert time.monotonic() < deadline, f"watchers per workflow {channels}, not {want}"
        await asyncio.sleep(0.1)


async def test_watching_panel_follows_joins_leaves_and_reconnects(demo: Demo) -> None:
    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(demo.page_url)
        await page.wait_for_selector("#conn[data-state=connected]", timeout=15_000)

        # The page sees itself, marked as "you", and itself as each workflow's one watcher.
        users = await _users_until(page, {"demo-user"})
        assert users["demo-user"] >= 1
        assert await page.evaluate(YOU) == ["demo-user"]
        await _channels_until(page, 1)

        # A second user opens the page (in its own browser context, at a phone's width).
        context = await browser.new_context(viewport={"width": 420, "height": 900})
        second = await context.new_page()
        second.on("pageerror", lambda exc: errors.append(str(exc)))
        await second.goto(demo.guest_url)
        await second.wait_for_selector("#conn[data-state=connected]", timeout=15_000)
        users = await _users_until(page, {"demo-user", "demo-guest"})
        assert users["demo-guest"] >= 1
        await _channels_until(page, 2)
        # ... and sees both, itself as "you"; the panel fits its width.
        await _users_until(second, {"demo-user", "demo-guest"})
        assert await second.evaluate(YOU) == ["demo-guest"]
        assert await second.evaluate(LAYOUT_PROBLEMS) == []

        # It closes its page: it leaves the first page's panel.
        await context.close()
        await _users_until(page, {"demo-user"})
        await _channels_until(page, 1)

        # Reconnect: drop the page's connection; a user connects while it is away. The
        # page comes back after a random delay under 1 s: should it be back before that
        # user connects (a diff would tell it), drop it again, at most 3 times.
        for _attempt in range(3):
            away = await _reconnect_with_a_join(page, demo)
            if away:
                break
        assert away, "the page was never away long enough for a user to connect meanwhile"
        assert await page.evaluate(LAYOUT_PROBLEMS) == []
        await browser.close()
    assert not errors, errors


async def _reconnect_with_a_join(page: Page, demo: Demo) -> bool:
    """Drop the page's connection, connect demo-guest (a raw client) meanwhile, check the
    panel after the reconnect, disconnect demo-guest. True when demo-guest connected
    while the page was away."""
    before: dict[str, Any] = await page.evaluate("window.flowwireDemo.presence()")
    assert before["socket"] == before["current"]
    await page.click("#drop")
    await page.wait_for_function(
        f"window.flowwireDemo.presence().current !== {before['current']}", polling=5, timeout=5_000
    )
    async with connect(f"ws://127.0.0.1:{demo.port}/ws?token={demo.guest_token}"):
        away = await page.evaluate("window.flowwireDemo.client.getState() !== 'connected'")
        await page.wait_for_selector("#conn[data-state=connected]", timeout=20_000)
        # The organization's presence is asked again on the new socket (presence.state
        # comes only in answer to a `presence` message) and lists the user who came
        # meanwhile, with one connection: the raw client's.
        deadline = time.monotonic() + WAIT
        while (now := await page.evaluate("window.flowwireDemo.presence()"))["socket"] != now["current"]:
            assert time.monotonic() < deadline, f"no presence.state on the new socket: {now}"
            await asyncio.sleep(0.1)
        assert now["socket"] > before["socket"]
        users = await _users_until(page, {"demo-user", "demo-guest"})
        assert users["demo-guest"] == 1
        # It subscribes to nothing: each workflow is still watched by demo-user alone.
        await _channels_until(page, 1)
    # The watch was renewed too: the raw client's leaving comes as a diff.
    await _users_until(page, {"demo-user"})
    return bool(away)
