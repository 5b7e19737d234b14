"""The TypeScript client (web/) against a real `flowwire serve` and Redis: subscribe,
receive, the connection killed, resume without loss; the original app's page and the
design document's examples with only their imports changed; protocol version 2's in-band
token refresh; priority and conflation with a client that stops reading
(web/test/integration/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.clients import token
from tests.support.gateway import SECRET, GatewayProcess
from tests.support.redis_server import RedisServer

WEB = Path(__file__).resolve().parents[2] / "web"


@pytest.mark.parametrize("partitions", [1, 3])
def test_web_client_resumes_against_a_real_gateway(redis_server: RedisServer, partitions: int) -> None:
    """With 3 partitions (STREAM_PARTITIONS) frames carry a `cursor`: the client keeps it
    and resumes from it."""
    npm = shutil.which("npm")
    if npm is None or not (WEB / "node_modules").exists():
        pytest.fail("web/node_modules missing: the test command runs `npm ci` in web/ first")
    # TOKEN_REFRESH_NOTICE 5 s and a token of 3 s (+ JWT_LEEWAY 5 s) minted by the test:
    # the version 2 client is told its token expires at once, and refreshes in-band.
    stream = f"web-it-{partitions}"
    settings = {
        "REDIS_URL": redis_server.url,
        "STREAM_KEY": stream,
        "STREAM_PARTITIONS": str(partitions),
        "TOKEN_REFRESH_NOTICE": "5s",
    }
    # lanes.test.ts: 50 kB events fill the 4 MiB outbox before its event count (256); its
    # client stops reading while it publishes (a few seconds, a loaded machine: more).
    gw = GatewayProcess({**settings, "CLIENT_SEND_BUFFER_BYTES": "4194304", "SERVER_WRITE_TIMEOUT": "60s"})
    gw.start()
    try:
        flowwire = Path(sys.executable).with_name("flowwire")
        publish_env = " ".join(f"{name}={value}" for name, value in settings.items())
        env = {
            **os.environ,
            "FLOWWIRE_URL": gw.url,
            "FLOWWIRE_TOKEN": token("web-it"),
            "FLOWWIRE_TOKEN_2": token("web-it-2"),  # presence: another user
            "FLOWWIRE_JWT_SECRET": SECRET,
            "FLOWWIRE_PUBLISH": f"env {publish_env} {flowwire} publish",
        }
        result = subprocess.run(
            [npm, "run", "test:integration"], cwd=WEB, env=env, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert "5 passed" in result.stdout and "failed" not in result.stdout
    finally:
        gw.stop()
