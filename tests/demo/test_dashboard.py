"""The demo dashboard in headless Chromium (Debian's, driven by Playwright; no browser
download): executions appear and change status live; the WebSocket is cut; the
dashboard resumes with no event missing from its feed."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.support.checker import check
from tests.support.clients import recv_json
from tests.support.redis_server import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("FLOWWIRE_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


class Demo:
    def __init__(self) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
        env["PYTHONUNBUFFERED"] = "1"
        self.log = Path(tempfile.mkstemp(prefix="flowwire-demo-", suffix=".log")[1])
        with self.log.open("wb") as out:  # a file, not a pipe nobody drains
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "demo",
                    "--port",
                    str(self.port),
                    "--rate",
                    "3",
                    "--seed",
                    "7",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while not (match := re.search(r"(http://\S+)", self.log.read_text())):
            assert time.monotonic() < deadline and self.proc.poll() is None, self.log.read_text()
            time.sleep(0.05)
        self.page_url = match[1]
        self.token = self.page_url.split("token=")[1]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


@pytest.fixture
def demo() -> Iterator[Demo]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed; the test command installs Debian's chromium")
    d = Demo()
    yield d
    d.stop()


def _sid(text: str) -> tuple[int, ...]:
    return tuple(map(int, text.split("-")))


async def _ground_truth(demo: Demo, channels: list[str], since: str, until: str) -> list[str]:
    """Every event of the dashboard's channels in (since, until], from the gateway itself."""
    from websockets.asyncio.client import connect

    ids: list[str] = []
    async with connect(f"ws://127.0.0.1:{demo.port}/ws?token={demo.token}") as ws:
        for ch in channels:
            await ws.send(json.dumps({"type": "subscribe", "data": {"channel": ch, "since": since}}))
        # The demo keeps running: read until past `until`.
        while not ids or _sid(ids[-1]) < _sid(until):
            doc = await recv_json(ws, 10)
            if "id" in doc:
                ids.append(doc["id"])
    return [i for i in ids if _sid(i) <= _sid(until)]


async def test_dashboard_live_and_resumes_after_a_cut(demo: Demo) -> None:
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(demo.page_url)
        await page.wait_for_selector("#conn[data-state=connected]", timeout=15_000)
        # Executions appear...
        await page.wait_for_selector("#executions tr", timeout=15_000)
        first_row = await page.get_attribute("#executions tr:last-child", "data-execution")
        status_before = await page.get_attribute(f"tr[data-execution={first_row}]", "data-status")
        # ... and change status.
        deadline = time.monotonic() + 20
        while await page.get_attribute(f"tr[data-execution={first_row}]", "data-status") == status_before:
            assert time.monotonic() < deadline, f"{first_row} stayed {status_before}"
            await asyncio.sleep(0.2)
        before_cut = await page.evaluate("window.flowwireDemo.feedIds.length")
        # Cut the WebSocket: the client reconnects by itself and resumes with `since`.
        await page.evaluate("window.flowwireDemo.dropConnection()")
        await page.wait_for_selector("#conn:not([data-state=connected])", timeout=5_000)
        await asyncio.sleep(1.5)  # events keep coming while it is away
        await page.wait_for_selector("#conn[data-state=connected]", timeout=20_000)
        await asyncio.sleep(2.0)
        feed: list[str] = await page.evaluate("[...window.flowwireDemo.feedIds]")
        await page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
        # An execution first seen mid-way (from a step or approval event) shows an
        # inferred status until an execution event says it. (The feed was read before
        # these probes: they are not in it.)
        statuses = []
        for kind, extra in (
            ("step.started", {"step_id": "s1"}),
            ("approval.required", {"approval_id": "a1"}),
        ):
            data = {"execution_id": f"probe-{kind}", "workflow_id": "wf-x", "status": "pending", **extra}
            message = {"type": kind, "id": "1-1", "timestamp": "2026-01-01T00:00:00Z", "data": data}
            await page.evaluate("m => window.flowwireDemo.record(m)", message)
            row = f'tr[data-execution="probe-{kind}"]'
            await page.wait_for_selector(row, timeout=5_000)
            statuses.append(await page.get_attribute(row, "data-status"))
        await browser.close()
    assert len(feed) > before_cut > 0
    assert not errors, errors
    assert statuses == ["running", "waiting"]
    channels = [
        f"workflows:{wf}" for wf in ("wf-order-fulfilment", "wf-invoice-approval", "wf-user-onboarding")
    ]
    truth = await _ground_truth(demo, channels, "0-0", feed[-1])  # the whole log, replayed
    truth = [i for i in truth if _sid(i) >= _sid(feed[0])]
    report = check(feed, truth)
    assert report.exact, str(report)
