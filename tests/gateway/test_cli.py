"""The flowwire command: publish, token, api-key, tail, schema (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.clients import subscribe
from tests.support.gateway import SECRET, GatewayProcess
from tests.support.redis_server import RedisServer, read_stream


def flowwire(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, env=full, timeout=timeout
    )


def test_publish_puts_a_contract_entry(redis_url: str) -> None:
    data = {"execution_id": "exec_cli00001", "workflow_id": "wf", "status": "failed", "error_message": "x"}
    result = flowwire("publish", "execution.failed", "--data", json.dumps(data), "--org", "acme",
                      env={"REDIS_URL": redis_url})  # fmt: skip
    assert result.returncode == 0, result.stderr
    [(entry_id, fields)] = read_stream(redis_url)
    assert result.stdout.strip() == entry_id
    assert json.loads(fields[b"data"]) == data
    assert fields[b"type"] == b"execution.failed" and fields[b"org"] == b"acme"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["execution.exploded", "--data", "{}"], "unknown event type"),
        (["execution.started", "--data", "{nope"], "not JSON"),
        (["execution.started", "--data", "[1]"], "JSON object"),
        (["execution.started", "--data", '{"execution_id":"e","workflow_id":"w","status":"bad"}'], "status"),
    ],
)
def test_publish_rejects_bad_input_with_status_2(redis_url: str, args: list[str], message: str) -> None:
    result = flowwire("publish", *args, env={"REDIS_URL": redis_url})
    assert result.returncode == 2
    assert message in result.stderr
    assert read_stream(redis_url) == []


def test_publish_redis_down_is_status_1() -> None:
    result = flowwire("publish", "execution.started", "--data",
                      '{"execution_id":"e","workflow_id":"w","status":"running"}',
                      env={"REDIS_URL": "redis://127.0.0.1:1/0", "PUBLISH_TIMEOUT": "300ms"})  # fmt: skip
    assert result.returncode == 1
    assert "unavailable" in result.stderr


def test_bad_setting_names_it() -> None:
    data = '{"execution_id":"e","workflow_id":"w","status":"running"}'
    result = flowwire(
        "publish", "execution.started", "--data", data, env={"REDIS_PORT": "x", "REDIS_HOST": "h"}
    )
    assert result.returncode == 2 and "REDIS_PORT" in result.stderr


def test_schema_check() -> None:
    assert flowwire("schema", "--check").returncode == 0


async def test_token_and_api_keys(redis_server: RedisServer) -> None:
    env = {"REDIS_URL": redis_server.url, "JWT_SECRET": SECRET}
    tok = flowwire("token", "--user", "cli-user", "--org", "acme", "--ttl", "5m", env=env)
    assert tok.returncode == 0, tok.stderr
    created = flowwire(
        "api-key", "create", "--user", "svc-billing", "--org", "acme", "--label", "billing", env=env
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    listed = flowwire("api-key", "list", env=env).stdout
    assert "svc-billing" in listed and key not in listed
    gw = GatewayProcess({"REDIS_URL": redis_server.url})
    gw.start()
    try:
        async with connect(f"{gw.url}?token={tok.stdout.strip()}") as ws:
            await subscribe(ws, "users:cli-user")
        async with connect(gw.url, additional_headers={"X-API-Key": key}) as ws:
            await subscribe(ws, "users:svc-billing")
        prefix = listed.split()[0]
        assert flowwire("api-key", "revoke", prefix, env=env).returncode == 0
        with pytest.raises(InvalidStatus) as info:
            await connect(gw.url, additional_headers={"X-API-Key": key})
        assert info.value.response.status_code == 401
        assert key not in gw.output()
    finally:
        gw.stop()


def test_tail_prints_events(redis_server: RedisServer) -> None:
    gw = GatewayProcess({"REDIS_URL": redis_server.url})
    gw.start()
    try:
        tok = flowwire("token", "--user", "tailer", env={"JWT_SECRET": SECRET}).stdout.strip()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}, "FLOWWIRE_TOKEN": tok}
        tail = subprocess.Popen(
            [sys.executable, "-m", "gateway", "tail", "executions", "--filter", "statuses=failed",
             "--url", gw.url, "--count", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            lines: list[dict[str, Any]] = []
            assert tail.stdout is not None
            lines.append(json.loads(tail.stdout.readline()))  # subscribed: it is live now
            for status in ("running", "failed"):
                data = {"execution_id": "exec_t", "workflow_id": "w", "status": status}
                etype = "execution.started" if status == "running" else "execution.failed"
                assert flowwire("publish", etype, "--data", json.dumps(data),
                                env={"REDIS_URL": redis_server.url}).returncode == 0  # fmt: skip
            out, _ = tail.communicate(timeout=20)
            lines += [json.loads(line) for line in out.splitlines()]
        finally:
            tail.kill()
        assert lines[0]["type"] == "subscribed"
        assert [d["type"] for d in lines[1:]] == ["execution.failed"]
        assert tail.returncode == 0
    finally:
        gw.stop()


def test_serve_with_invalid_jwt_config_exits_2() -> None:
    result = flowwire("serve", env={"JWT_ALGORITHMS": "RS256"}, timeout=20)
    assert result.returncode == 2 and "JWT_PUBLIC_KEY_FILE" in result.stderr
