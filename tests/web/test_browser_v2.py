"""Protocol version 2 in Chromium: the browser bundle (gateway/demo/static/flowwire-client.js,
built from web/src) offers ``flowwire.v2.json``, says hello, and refreshes its token
in-band when the gateway says it expires soon; the socket outlives the first token and
keeps receiving events. A real gateway under uvicorn serves the page, the bundle and /ws.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import async_playwright
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.config import Config
from gateway.log.memory import MemoryLog
from gateway.server import uvicorn_config
from schemas.events import make_event
from schemas.stream import encode_entry
from tests.demo.test_dashboard import CHROMIUM, FLAGS, _until
from tests.support.clients import token
from tests.support.gateway import SECRET
from tests.support.redis_server import free_port

BUNDLE = Path(__file__).resolve().parents[2] / "gateway" / "demo" / "static" / "flowwire-client.js"

PAGE = """<!doctype html><meta charset="utf-8"><title>v2</title>
<script type="module">
import { WebSocketClient } from "/flowwire-client.js";
const q = new URLSearchParams(location.search);
const log = (window.__log = { kinds: [], reasons: [], ids: [], opens: 0, protocol: null, expiresAt: "" });
const client = new WebSocketClient({
  url: `ws://${location.host}/ws`,
  getToken: ({ reason }) => {
    log.reasons.push(reason);
    return reason === "connect" ? q.get("short") : q.get("fresh");
  },
  pingIntervalMs: 0,
});
client.on("welcome", (m) => log.kinds.push("welcome:" + m.data.granted.join(",")));
client.on("token_expiring", (m) => { log.kinds.push("token_expiring"); log.expiresAt = m.data.expires_at; });
client.on("refreshed", () => log.kinds.push("refreshed"));
client.on("execution.started", (m) => log.ids.push(m.id));
let socket = null;  // sockets opened: one, if the refresh kept the connection
client.onStatusChange(() => {
  if (client.state === "connected" && client.socket !== socket) {
    socket = client.socket;
    log.opens += 1;
    log.protocol = client.protocol;
  }
});
client.subscribe("executions");
client.connect();
</script>"""


async def page_html(request: Request) -> Response:
    return HTMLResponse(PAGE)


async def bundle(request: Request) -> Response:
    return Response(BUNDLE.read_bytes(), media_type="text/javascript")


async def test_the_browser_client_refreshes_its_token_in_band() -> None:
    if not await asyncio.to_thread(Path(CHROMIUM).exists):
        pytest.fail("chromium is not installed; the test command installs Debian's chromium")
    config = dataclasses.replace(
        Config(jwt_secret=SECRET, rate_limit=0), jwt_leeway=0.0, token_refresh_notice=2.0
    )
    log = MemoryLog(maxlen=1000)
    app = create_app(
        config, log=log, routes=[Route("/page", page_html), Route("/flowwire-client.js", bundle)]
    )
    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, config, "127.0.0.1", port))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        short, fresh = token("browser", ttl=4), token("browser", ttl=600)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"http://127.0.0.1:{port}/page?short={short}&fresh={fresh}")
            await _until(page, "window.__log && window.__log.kinds.includes('refreshed')")
            state = await page.evaluate("window.__log")
            assert state["protocol"] == "flowwire.v2.json"
            assert state["kinds"] == ["welcome:token_refresh", "token_expiring", "refreshed"]
            assert state["reasons"] == ["connect", "refresh"]
            await asyncio.sleep(3.5)  # past the first token's expiry (4 s after it was minted)
            payload = {"execution_id": "e1", "workflow_id": "w", "status": "running"}
            fields = encode_entry(make_event("execution.started", payload))
            event_id = (await log.append(fields)).decode()
            await _until(page, f"window.__log.ids.includes('{event_id}')")
            assert (await page.evaluate("window.__log.opens")) == 1
            assert errors == []
            await browser.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
