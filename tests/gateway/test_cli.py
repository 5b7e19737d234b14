"""The flowwire command: publish, token, api-key, tail, schema (real processes)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.clients import subscribe
from tests.support.gateway import SECRET, GatewayProcess
from tests.support.redis_server import RedisServer, free_port, read_stream


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


def test_publish_count_appends_copies_in_one_call(redis_url: str) -> None:
    data = {"execution_id": "exec_cli00002", "workflow_id": "wf", "status": "running"}
    result = flowwire("publish", "execution.started", "--data", json.dumps(data), "--count", "50",
                      env={"REDIS_URL": redis_url})  # fmt: skip
    assert result.returncode == 0, result.stderr
    entries = read_stream(redis_url)
    assert result.stdout.split() == [entry_id for entry_id, _ in entries] and len(entries) == 50
    assert all(json.loads(fields[b"data"]) == data for _, fields in entries)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["execution.started", "--data", "{}", "--count", "0"], "--count"),
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
    assert re.search(r"created=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", listed.strip()), listed
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


@pytest.mark.parametrize(
    "args",
    [
        [
            "publish",
            "execution.started",
            "--data",
            '{"execution_id":"e","workflow_id":"w","status":"running"}',
        ],
        ["api-key", "list"],
        ["api-key", "create", "--user", "u"],
    ],
)
def test_commands_that_need_redis_refuse_without_it(args: list[str]) -> None:
    # Before: publish wrote to redis://127.0.0.1:6379/0, whoever's Redis that was.
    result = flowwire(*args, env={"JWT_SECRET": SECRET})
    assert result.returncode == 2, result
    assert "REDIS_URL" in result.stderr and "REDIS_HOST" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("ttl", ["0", "0s", "0ms", "-5m"])
def test_token_refuses_a_lifetime_that_is_not_positive(ttl: str) -> None:
    result = flowwire("token", "--user", "u", f"--ttl={ttl}", env={"JWT_SECRET": SECRET})
    assert result.returncode == 2 and result.stdout == ""
    assert "--ttl" in result.stderr


def _tail(*args: str, token: str = "", timeout: float = 60) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "FLOWWIRE_"))}
    if token:
        env["FLOWWIRE_TOKEN"] = token
    return subprocess.Popen([sys.executable, "-m", "gateway", "tail", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip


def _publish(redis_url: str, etype: str, status: str, n: int = 1) -> None:
    data = {"execution_id": f"exec_{n}", "workflow_id": "w", "status": status}
    assert (
        flowwire("publish", etype, "--data", json.dumps(data), env={"REDIS_URL": redis_url}).returncode == 0
    )


def test_tail_resumes_across_a_drain(redis_server: RedisServer) -> None:
    gws = [GatewayProcess({"REDIS_URL": redis_server.url, "DRAIN_WINDOW": "1s"}) for _ in range(2)]
    for gw in gws:
        gw.start()
    tok = flowwire("token", "--user", "tailer", env={"JWT_SECRET": SECRET}).stdout.strip()
    tail = _tail("executions", "--url", gws[0].url, "--url", gws[1].url, "--count", "2", token=tok)
    try:
        assert tail.stdout is not None
        assert json.loads(tail.stdout.readline())["type"] == "subscribed"
        _publish(redis_server.url, "execution.started", "running", 1)
        first = json.loads(tail.stdout.readline())
        gws[0].signal(signal.SIGTERM)  # tail was on the first URL: 1012, resume on the second
        assert gws[0].wait(30) == 0
        _publish(redis_server.url, "execution.failed", "failed", 2)
        out, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
        for gw in gws:
            gw.stop()
    lines = [json.loads(line) for line in out.splitlines()]  # every stdout line is JSON
    events = [first, *(d for d in lines if "id" in d)]
    assert [e["data"]["execution_id"] for e in events] == ["exec_1", "exec_2"]
    assert lines[0]["type"] == "subscribed" and lines[0]["data"]["recovered"] is True
    assert tail.returncode == 0 and "1012" in err


def test_tail_error_reply_exits_1_with_the_code(gateway: GatewayProcess) -> None:
    tok = flowwire("token", "--user", "tailer", env={"JWT_SECRET": SECRET}).stdout.strip()
    tail = _tail("users:somebody-else", "--url", gateway.url, token=tok)
    out, err = tail.communicate(timeout=30)  # before: ran on forever after the error
    assert tail.returncode == 1 and out == ""
    assert err.strip().splitlines() == [
        "flowwire: error reply FORBIDDEN (users:somebody-else): users channels are for their own user only"
    ]


@pytest.mark.parametrize("tok", ["not-a-jwt", ""])
def test_tail_auth_refusal_is_one_clear_line(gateway: GatewayProcess, tok: str) -> None:
    tail = _tail("executions", "--url", gateway.url, token=tok)
    out, err = tail.communicate(timeout=30)
    assert tail.returncode == 1 and out == ""
    [line] = err.strip().splitlines()  # before: HTTP 401 b'{"error": ...}'
    assert line.startswith("flowwire: authentication refused (HTTP 401): ")
    assert "b'" not in line and "bytearray" not in line and "{" not in line


def test_tail_gives_up_on_an_unreachable_gateway() -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws"
    tail = _tail("executions", "--url", url, "--retries", "2", token="x")
    out, err = tail.communicate(timeout=30)
    assert tail.returncode == 1 and out == ""
    *notices, last = err.strip().splitlines()
    assert last.startswith("flowwire: no gateway reachable after 2 attempts")
    assert notices and all(n.startswith(f"flowwire: cannot connect to {url} (") for n in notices)
    assert "Error" not in err  # no exception class names (ConnectionRefusedError)


def test_redis_settings_from_env_never_invents_a_url() -> None:
    from publisher.settings import MissingSetting, RedisSettings, SettingError

    with pytest.raises(MissingSetting, match=r"REDIS_URL is not set.*REDIS_HOST"):
        RedisSettings.from_env({})
    with pytest.raises(SettingError, match="STREAM_MAXLEN"):  # an invalid value is named first
        RedisSettings.from_env({"STREAM_MAXLEN": "-1"})
    assert RedisSettings().url == "redis://127.0.0.1:6379/0"  # in code, the default stays explicit
