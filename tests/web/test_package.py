"""@flowwire/client as a user gets it: ``npm pack`` makes a tarball; a new Vite + React
app (tests/web/fresh_app, copied to a temporary folder, its own dependencies locked by its
package-lock.json) installs it, typechecks the original client's declarations against
its type declarations, builds with ``VITE_WS_URL`` a bare host, and runs the original
app's execution page in Chromium against a live gateway: Live, then each status.

Bounded: every npm step has a timeout; the page has 20 s per expectation.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import os
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from publisher import Publisher, RedisSettings, make_event
from tests.demo.test_dashboard import ARTIFACTS, CHROMIUM, FLAGS
from tests.support.clients import token
from tests.support.gateway import GatewayProcess
from tests.support.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
FRESH_APP = Path(__file__).resolve().parent / "fresh_app"
EXEC = "exec_pk000001"


def _run(args: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, (
        f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    npm = shutil.which("npm")
    if npm is None or not (WEB / "node_modules").exists():
        pytest.fail("web/node_modules missing: the test command runs `npm ci` in web/ first")
    out = tmp_path_factory.mktemp("pack")
    printed = _run([npm, "pack", "--json", "--pack-destination", str(out)], WEB, 180)
    name: str = json.loads(printed[printed.index("[") :])[0]["filename"]
    return out / name


def test_the_tarball_is_a_publishable_esm_package_with_types(tarball: Path) -> None:
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("package/package.json"))  # type: ignore[arg-type]
    assert "private" not in manifest
    assert manifest["type"] == "module"
    assert manifest["peerDependenciesMeta"]["react"]["optional"] is True
    assert "dependencies" not in manifest  # no runtime dependency
    for entry in manifest["exports"].values():
        if isinstance(entry, dict):
            for target in (entry["types"], entry["import"]):
                assert f"package/{target.removeprefix('./')}" in names, target
    assert "package/README.md" in names
    assert not any("/test/" in n or n.endswith(".test.ts") for n in names)


class _Static:
    """The built app, served over HTTP on a free loopback port."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fresh_app(tarball: Path, tmp_path: Path) -> Path:
    npm = shutil.which("npm")
    assert npm is not None
    app = tmp_path / "app"
    shutil.copytree(FRESH_APP, app)
    # The original app's page and the original declarations, as they are in web/test.
    for name in ("ExecutionDetailPage.tsx", "ui.tsx"):
        shutil.copy(WEB / "test" / "original-app" / name, app / "src" / name)
    shutil.copy(WEB / "test" / "compat" / "original.d.ts", app / "src" / "original.d.ts")
    shutil.copy(WEB / "test" / "compat" / "surface.ts", app / "src" / "surface.ts")
    _run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], app, 300)
    _run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefer-offline", str(tarball)], app, 180)
    return app


async def test_a_fresh_vite_app_installs_builds_and_runs_it(
    fresh_app: Path, redis_server: RedisServer
) -> None:
    npm = shutil.which("npm")
    assert npm is not None
    installed = json.loads((fresh_app / "node_modules/@flowwire/client/package.json").read_text())
    assert installed["name"] == "@flowwire/client"
    # The package's declarations: the original surface typechecks against them.
    await asyncio.to_thread(_run, [npm, "run", "typecheck"], fresh_app, 120)
    gw_port = free_port()
    # Built with the original's configuration: VITE_WS_URL a bare host:port.
    env = {**_env(), "VITE_WS_URL": f"127.0.0.1:{gw_port}"}
    await asyncio.to_thread(_run, [npm, "run", "build"], fresh_app, 180, env)
    static = _Static(fresh_app / "dist")
    gw = GatewayProcess({"REDIS_URL": redis_server.url, "ALLOWED_ORIGINS": static.origin}, port=gw_port)
    try:
        await asyncio.to_thread(gw.start)
        await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = await browser.new_page(viewport={"width": 900, "height": 600})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # The original app kept its token in localStorage 'auth_token'.
            tok = token("fresh-app")
            await page.add_init_script(f"localStorage.setItem('auth_token', {json.dumps(tok)})")
            await page.goto(f"{static.origin}/?id={EXEC}")
            await page.get_by_text("Live").wait_for(timeout=20_000)
            settings = RedisSettings(url=redis_server.url)
            async with Publisher(settings) as pub:
                for event_type, status in (
                    ("execution.started", "running"),
                    ("execution.completed", "completed"),
                ):
                    await pub.publish(
                        make_event(
                            event_type, {"execution_id": EXEC, "workflow_id": "wf-pk", "status": status}
                        )
                    )
                    await page.get_by_text(f"Status: {status}").wait_for(timeout=20_000)
            await page.screenshot(path=str(ARTIFACTS / "fresh-app.png"))
            await browser.close()
        assert not errors, errors
    finally:
        static.close()
        await asyncio.to_thread(gw.stop)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VITE_")}
