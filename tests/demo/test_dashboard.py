"""The demo dashboard in headless Chromium (Debian's, driven by Playwright; no browser
download), at 1400 and 420 px wide: nothing cut off or off-screen, the feed's scrollbar
in the theme's colours; executions appear and change status live; the delivery panel's
cursor, counters and "Drop the connection" button: the page reconnects, resumes with
`since`, and shows 0 gaps (checked against a replay) and 0 duplicates, which the test
confirms against the gateway's own log; the latency chart and the gateway's
deliveries/s; executions first seen mid-way get their history. A screenshot of each
width is kept in test-artifacts/."""

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
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

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
        while not (match := re.search(r"second user: +(http://\S+)", self.log.read_text())):
            assert time.monotonic() < deadline and self.proc.poll() is None, self.log.read_text()
            time.sleep(0.05)
        self.guest_url = match[1]  # the same organization, user demo-guest
        self.guest_token = self.guest_url.split("token=")[1]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed; the test command installs Debian's chromium")
    d = Demo()
    time.sleep(3)  # executions are under way when the first page opens
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


# Everything on the page must be within the viewport's width, and no box may cut its own
# content (a cell narrower than its text, a panel wider than the screen).
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > width) {
    problems.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`);
  }
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : '');
  for (const el of document.querySelectorAll('header, header *, main, main *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || el.closest('svg') && el.tagName !== 'svg') continue;
    if (r.left < -0.5 || r.right > width + 0.5) {
      problems.push(`${name(el)} off-screen: ${r.left}..${r.right}`);
    }
  }
  const boxes = 'section, aside, td, th, dd, dt, li, h1, h2, p, button, .figures';
  for (const el of document.querySelectorAll(boxes)) {
    if (el.getBoundingClientRect().width === 0) continue;
    if (el.scrollWidth > el.clientWidth + 1) {
      problems.push(`${name(el)} cuts its content: ${el.scrollWidth} > ${el.clientWidth}`);
    }
  }
  return problems.slice(0, 20);
}"""

CHART_POINTS = "(n => n >= 10 && n)(+document.getElementById('lat-chart').dataset.points)"
RATE = "(t => /^\\d/.test(t) && t)(document.getElementById('rate').textContent)"
MID_ROWS = "[...document.querySelectorAll('tr[data-first-seen=mid]')]"
HISTORY_SETTLED = f"!{MID_ROWS}.some(r => r.dataset.history === 'loading')"
MID_HISTORY = f"{MID_ROWS}.map(r => [r.dataset.history, r.dataset.knownFirst, r.dataset.inferred])"

CELLS = """[...document.querySelectorAll('#executions tr:first-child td')]
  .filter(td => ['Approval', 'Updated'].includes(td.dataset.label))
  .map(td => { const r = td.getBoundingClientRect();
               return [td.dataset.label, r.left, r.right, td.scrollWidth, td.clientWidth]; })"""

STATUSES = """Object.fromEntries([...document.querySelectorAll('#executions tr')]
  .map(r => [r.dataset.execution, r.dataset.status]))"""

WORKFLOWS = ("wf-order-fulfilment", "wf-invoice-approval", "wf-user-onboarding")


async def _until(page: Page, expression: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await page.evaluate(expression)):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        await asyncio.sleep(0.2)
    return value


@pytest.mark.parametrize("width", [1400, 420])
async def test_dashboard_shows_the_guarantees(demo: Demo, width: int) -> None:
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page(viewport={"width": width, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(demo.page_url)
        await page.wait_for_selector("#conn[data-state=connected]", timeout=15_000)
        # Executions appear...
        await page.wait_for_selector("#executions tr", timeout=15_000)
        # ... and change status. The table keeps the newest 50 executions, so a row may
        # leave it while we wait: compare the rows present in both snapshots.
        rows_before: dict[str, str] = await page.evaluate(STATUSES)
        deadline = time.monotonic() + 20
        while not any(
            rows_before.get(e) not in (None, s) for e, s in (await page.evaluate(STATUSES)).items()
        ):
            assert time.monotonic() < deadline, f"no execution changed status: {rows_before}"
            await asyncio.sleep(0.2)

        # Layout: nothing cut off or off-screen; the feed's scrollbar in the theme's colours.
        assert await page.evaluate(LAYOUT_PROBLEMS) == []
        feed_box = await page.locator(".feed").bounding_box()
        assert feed_box is not None and feed_box["x"] >= 0 and feed_box["x"] + feed_box["width"] <= width
        # The columns that were cut at 420 px: inside the screen, their content whole.
        cells = await page.evaluate(CELLS)
        assert [c[0] for c in cells] == ["Approval", "Updated"]
        for label, left, right, scroll, client in cells:
            assert left >= 0 and right <= width and scroll <= client, (label, left, right, scroll, client)
        scrollbar = await page.evaluate("getComputedStyle(document.getElementById('feed')).scrollbarColor")
        assert scrollbar == "rgb(58, 70, 84) rgb(24, 32, 41)", scrollbar  # --thumb on --panel

        # Latency: a point per event on the chart, figures, and the gateway's deliveries/s.
        points = int(await _until(page, CHART_POINTS))
        assert points <= 120
        assert re.fullmatch(r"\d+(\.\d)? ms", await page.inner_text("#lat-p50"))
        rate = await _until(page, RATE)
        assert float(rate) > 0

        # Executions first seen mid-way show their history, from their own channel's replay.
        mid = await page.evaluate(f"{MID_ROWS}.map(r => r.dataset.execution)")
        assert mid, "the demo ran before the page opened: some executions must be first seen mid-way"
        await _until(page, HISTORY_SETTLED)
        rows = await page.evaluate(MID_HISTORY)
        loaded = [r for r in rows if r[0] == "loaded"]
        assert loaded and all(r[1:] == ["execution.created", "false"] for r in loaded), rows
        # One of them, against the gateway's own log: every event of the execution, once.
        known = await page.evaluate(
            f"{MID_ROWS}.filter(r => r.dataset.history === 'loaded')[0].dataset.execution"
        )
        known_ids: list[str] = await page.evaluate("id => window.flowwireDemo.executionIds(id)", known)
        truth = await _ground_truth(demo, [f"executions:{known}"], "0-0", known_ids[-1])
        assert known_ids == truth, (known, known_ids, truth)

        # Delivery: the cursor is the last id; drop the connection with the page's button.
        await _until(
            page, "document.getElementById('cursor').textContent === window.flowwireDemo.client.lastEventId"
        )
        counters = await page.evaluate("window.flowwireDemo.counters()")
        before = counters["received"]
        assert before > 0 and counters["reconnects"] == 0
        await page.click("#drop")
        # The page counts a reconnect once its client is connected again after being away:
        # the time away can be shorter than a frame (the reconnect delay is jittered from
        # zero), too short to be seen by waiting for a not-connected state.
        await _until(page, "window.flowwireDemo.counters().reconnects === 1")
        await page.wait_for_selector("#conn[data-state=connected]", timeout=20_000)
        await page.wait_for_selector("#resume[data-since]", timeout=10_000)
        resume = await page.inner_text("#resume")
        since = await page.get_attribute("#resume", "data-since")
        assert "recovered" in resume and "NOT" not in resume, resume
        # The page's own gap check, run past the resume point.
        deadline = time.monotonic() + 40
        while True:
            result = await page.evaluate("window.flowwireDemo.audit()")
            checked = await page.get_attribute("#audit", "data-checked")
            if checked and checked != "0" and since and _sid(checked) > _sid(since):
                break
            assert time.monotonic() < deadline, (result, checked, since)
            await asyncio.sleep(0.5)
        counters = await page.evaluate("window.flowwireDemo.counters()")
        assert counters["reconnects"] == 1
        assert counters["received"] > before
        assert (await page.inner_text("#gaps"), await page.inner_text("#dups")) == ("0", "0")
        assert await page.inner_text("#reconnects") == "1"
        feed: list[str] = await page.evaluate("[...window.flowwireDemo.feedIds]")
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}.png"))
        await page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}-full.png"), full_page=True)
        assert await page.evaluate(LAYOUT_PROBLEMS) == []

        # An execution first seen from a step or approval event with no history to load
        # shows an inferred status until an execution event says it. (The feed was read
        # before these probes: they are not in it.)
        statuses = []
        for kind, extra in (
            ("step.started", {"step_id": "s1"}),
            ("approval.required", {"approval_id": "a1"}),
        ):
            data = {"execution_id": f"probe-{kind}", "workflow_id": "wf-x", "status": "pending", **extra}
            message = {"type": kind, "id": "1-1", "timestamp": "2026-01-01T00:00:00Z", "data": data}
            await page.evaluate("m => window.flowwireDemo.record(m)", message)
            row = f'tr[data-execution="probe-{kind}"]'
            await page.wait_for_selector(f"{row}:not([data-history=loading])", timeout=10_000)
            statuses.append(await page.get_attribute(row, "data-status"))
        await browser.close()
    assert not errors, errors
    assert statuses == ["running", "waiting"]
    # The feed is exactly the gateway's log for the page's channels: none lost, none twice.
    truth = await _ground_truth(demo, [f"workflows:{wf}" for wf in WORKFLOWS], "0-0", feed[-1])
    truth = [i for i in truth if _sid(i) >= _sid(feed[0])]
    report = check(feed, truth)
    assert report.exact, str(report)
