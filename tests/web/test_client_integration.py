"""The TypeScript client (web/) against a real `flowwire serve` and Redis: subscribe,
receive, the connection killed, resume without loss (web/test/integration/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.clients import token
from tests.support.gateway import GatewayProcess
from tests.support.redis_server import RedisServer

WEB = Path(__file__).resolve().parents[2] / "web"


def test_web_client_resumes_against_a_real_gateway(redis_server: RedisServer) -> None:
    npm = shutil.which("npm")
    if npm is None or not (WEB / "node_modules").exists():
        pytest.fail("web/node_modules missing: the test command runs `npm ci` in web/ first")
    gw = GatewayProcess({"REDIS_URL": redis_server.url})
    gw.start()
    try:
        flowwire = Path(sys.executable).with_name("flowwire")
        env = {
            **os.environ,
            "FLOWWIRE_URL": gw.url,
            "FLOWWIRE_TOKEN": token("web-it"),
            "FLOWWIRE_PUBLISH": f"env REDIS_URL={redis_server.url} {flowwire} publish",
        }
        result = subprocess.run(
            [npm, "run", "test:integration"], cwd=WEB, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert "1 passed" in result.stdout
    finally:
        gw.stop()
