"""The React hook ``usePresence`` in Chromium against a real gateway under uvicorn.

web/test/browser/presenceHook.tsx (a page rendering ``usePresence(null)`` and
``usePresence(channel)`` in StrictMode, its client subscribed to the channel) is bundled
with React by esbuild from web/node_modules. Raw WebSocket clients of other users of the
same organization come and go: the page's lists follow them (the organization's, and
the channel's for a client that subscribes), a user of another organization never shows,
and after the page's socket drops, the hook's lists come from a presence.state on the
new socket and include a user who connected while it was away.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from websockets.asyncio.client import connect

from tests.demo.test_dashboard import CHROMIUM, FLAGS
from tests.support.clients import recv_json, token
from tests.support.inproc import serve

WEB = Path(__file__).resolve().parents[2] / "web"
HARNESS = "test/browser/presenceHook.tsx"
CHANNEL = "executions:e1"
ORG = "acme"
WAIT = 10.0  # diffs come within PRESENCE_INTERVAL (250 ms): 10 s is generous

PAGE = """<!doctype html><meta charset="utf-8"><title>usePresence</title>
<div id="root"></div><script type="module" src="/hook.js"></script>"""

LISTS = """Object.fromEntries([...document.querySelectorAll('ul[data-scope]')].map(ul =>
  [ul.dataset.scope, ul.dataset.ready === 'true'
    ? Object.fromEntries([...ul.querySelectorAll('li')].map(li => [li.dataset.user, +li.dataset.connections]))
    : null]))"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    esbuild = WEB / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        pytest.fail("web/node_modules missing: the test command runs `npm ci` in web/ first")
    out = tmp_path_factory.mktemp("hook") / "hook.js"
    subprocess.run(
        [str(esbuild), HARNESS, "--bundle", "--format=esm", "--platform=browser", "--target=es2022",
         "--jsx=automatic", '--define:process.env.NODE_ENV="production"', "--log-level=warning",
         f"--outfile={out}"],
        cwd=WEB, check=True, timeout=120,
    )  # fmt: skip
    return out.read_bytes()


async def _lists_until(page: Page, org: set[str], channel: set[str]) -> dict[str, dict[str, int]]:
    """The page's two lists once their users are `org` and `channel` (fails after WAIT)."""
    deadline = time.monotonic() + WAIT
    while True:
        lists: dict[str, dict[str, int] | None] = await page.evaluate(LISTS)
        got_org, got_channel = lists.get("org"), lists.get(CHANNEL)
        if got_org is not None and got_channel is not None and (set(got_org), set(got_channel)) == (org, channel):
            return {"org": got_org, CHANNEL: got_channel}
        assert time.monotonic() < deadline, f"the hook shows {lists}, not {sorted(org)} / {sorted(channel)}"
        await asyncio.sleep(0.1)


async def test_use_presence_in_chromium_follows_joins_leaves_and_reconnects(harness: bytes) -> None:
    if not await asyncio.to_thread(Path(CHROMIUM).exists):
        pytest.fail("chromium is not installed; the test command installs Debian's chromium")

    async def page_html(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def hook_js(request: Request) -> Response:
        return Response(harness, media_type="text/javascript")

    routes = [Route("/page", page_html), Route("/hook.js", hook_js)]
    async with serve("memory", routes=routes) as served:
        port, ws_url = served.port, served.url
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"http://127.0.0.1:{port}/page?token={token('alice', org=ORG)}&channel={CHANNEL}")
            lists = await _lists_until(page, {"alice"}, {"alice"})
            assert lists == {"org": {"alice": 1}, CHANNEL: {"alice": 1}}

            # Bob connects (the organization's list), then subscribes (the channel's); a
            # user of another organization on the same channel never shows.
            async with (
                connect(f"{ws_url}?token={token('bob', org=ORG)}") as bob,
                connect(f"{ws_url}?token={token('mallory', org='other')}") as mallory,
            ):
                await mallory.send(json.dumps({"type": "subscribe", "data": {"channel": CHANNEL}}))
                assert (await recv_json(mallory))["type"] == "subscribed"
                await _lists_until(page, {"alice", "bob"}, {"alice"})
                await bob.send(json.dumps({"type": "subscribe", "data": {"channel": CHANNEL}}))
                assert (await recv_json(bob))["type"] == "subscribed"
                lists = await _lists_until(page, {"alice", "bob"}, {"alice", "bob"})
                assert lists[CHANNEL] == {"alice": 1, "bob": 1}
            await _lists_until(page, {"alice"}, {"alice"})

            # The page's socket drops; carol connects while it is away. The page comes
            # back after a random delay under 1 s: should it be back before carol
            # connects (a diff would tell it), drop it again, at most 3 times.
            for _attempt in range(3):
                before = await page.evaluate("window.__hook.current()")
                assert before is not None
                await page.evaluate("window.__hook.drop()")
                await page.wait_for_function(
                    f"window.__hook.current() !== {before}", polling=5, timeout=5_000
                )
                async with connect(f"{ws_url}?token={token('carol', org=ORG)}"):
                    away = await page.evaluate("window.__hook.state() !== 'connected'")
                    # presence.state comes only in answer to a `presence` message: one
                    # on the new socket is the hook's watch, asked again.
                    deadline = time.monotonic() + WAIT
                    while not (
                        (
                            now := await page.evaluate(
                                "[window.__hook.stateSocket(), window.__hook.current()]"
                            )
                        )[0]
                        == now[1]
                        and now[1] not in (None, before)
                    ):
                        assert time.monotonic() < deadline, f"no presence.state on the new socket: {now}"
                        await asyncio.sleep(0.1)
                    lists = await _lists_until(page, {"alice", "carol"}, {"alice"})
                    assert lists["org"] == {"alice": 1, "carol": 1}
                # The watch was renewed too: carol's leaving comes as a diff.
                await _lists_until(page, {"alice"}, {"alice"})
                if away:
                    break
            assert away, "the page was never away long enough for a user to connect meanwhile"
            await browser.close()
        assert errors == []
