"""``flowwire serve --workers 2`` (issue 16): two gateway processes on one port, each
with its own reader. Against a real redis-server: clients spread over both workers
(proved by each worker's own /metrics: its pid and its connection count), every client
gets every event once and in order, and SIGTERM to the supervisor drains all of them
with 1012 and exits 0."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from publisher import BlockingPublisher, RedisSettings, make_event
from tests.support.clients import assert_nothing_more, open_ws, recv_until, subscribe, token
from tests.support.gateway import SECRET
from tests.support.redis_server import free_port

EVENTS = 30
MAX_CLIENTS = 40


class Workers:
    def __init__(self, redis_url: str, workers: int = 2, **extra_env: str) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.log = Path(tempfile.mkstemp(prefix="flowwire-workers-", suffix=".log")[1])
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
        env.update(REDIS_URL=redis_url, JWT_SECRET=SECRET, DRAIN_WINDOW="1s", CLIENT_RATE_LIMIT="0")
        env.update(extra_env)
        self.ready_at = 0.0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--workers", str(workers),
                 "--host", "127.0.0.1", "--port", str(self.port), "--metrics-port", str(self.metrics_port)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def get(self, path: str) -> tuple[int, str]:
        """One request on a fresh connection: the kernel picks the worker."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    def scrape(self) -> tuple[int, float]:
        """(the answering worker's pid, its open connections)."""
        status, text = self.get("/metrics")
        assert status == 200
        pid, connections = 0, -1.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "flowwire_process_info":
                    pid = int(sample.labels["pid"])
                elif sample.name == "flowwire_connections":
                    connections = sample.value
        assert pid and connections >= 0, text
        return pid, connections

    def all_metrics(self) -> dict[str, dict[str, float]]:
        """The supervisor's --metrics-port: sample name -> {worker: value} (single series)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        out: dict[str, dict[str, float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "flowwire_process_info":
                    out.setdefault("pid", {})[sample.labels["worker"]] = float(sample.labels["pid"])
                elif set(sample.labels) == {"worker"}:
                    out.setdefault(sample.name, {})[sample.labels["worker"]] = sample.value
        return out

    def wait_ready(self, timeout: float = 30) -> None:
        """Until every worker answers (through the supervisor) and the port says ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                up = self.all_metrics().get("flowwire_worker_up", {})
                if up and all(up.values()) and self.get("/readyz")[0] == 200:
                    self.ready_at = time.monotonic()  # every worker started before this
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def workers(redis_url: str) -> Iterator[Workers]:
    w = Workers(redis_url)
    try:
        w.wait_ready()
        yield w
    finally:
        w.close()


def per_worker(w: Workers, rounds: int = 40) -> dict[int, float]:
    """Each worker's connection count, from scrapes until both have answered."""
    seen: dict[int, float] = {}
    for _ in range(rounds):
        pid, connections = w.scrape()
        seen[pid] = connections
        if len(seen) == 2:
            break
    return seen


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


async def test_two_workers_serve_one_port_deliver_each_event_once_in_order_and_drain_with_1012(
    workers: Workers, redis_url: str
) -> None:
    clients: list[ClientConnection] = []
    try:
        # Connect until both workers hold clients (the kernel spreads connections by a hash
        # of their addresses, so a few suffice; bounded all the same).
        counts: dict[int, float] = {}
        while len(clients) < MAX_CLIENTS:
            for _ in range(2):
                ws = await open_ws(workers.url, token(f"user-{len(clients)}"))
                await subscribe(ws, "executions")
                clients.append(ws)
            counts = await asyncio.to_thread(per_worker, workers)
            if len(clients) >= 6 and len(counts) == 2 and all(counts.values()):
                break
        assert len(counts) == 2, f"one worker answered every scrape: {counts}\n{workers.output()}"
        assert all(counts.values()), f"a worker holds no client: {counts}"
        assert sum(counts.values()) == len(clients), counts
        assert {parent_of(pid) for pid in counts} == {workers.proc.pid}  # the supervisor's workers
        # The supervisor's metrics port has both workers' series, labelled.
        merged = await asyncio.to_thread(workers.all_metrics)
        assert merged["flowwire_worker_up"] == {"0": 1.0, "1": 1.0}
        assert {int(merged["pid"][w]): merged["flowwire_connections"][w] for w in ("0", "1")} == counts
        assert set(merged["process_resident_memory_bytes"]) == {"0", "1"}

        with BlockingPublisher(RedisSettings(url=redis_url)) as pub:
            ids = [
                pub.publish(
                    make_event(
                        "execution.started",
                        {"execution_id": f"exec_{i:08x}", "workflow_id": "wf-1", "status": "running"},
                    )
                )
                for i in range(EVENTS)
            ]
        for ws in clients:
            got = await recv_until(ws, EVENTS, timeout=20)
            assert [e["id"] for e in got] == ids  # each event once, in stream order
            assert [e["data"]["execution_id"] for e in got] == [f"exec_{i:08x}" for i in range(EVENTS)]
            await assert_nothing_more(ws)

        workers.proc.send_signal(signal.SIGTERM)
        codes = []
        for ws in clients:
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(20):
                    while True:
                        assert "id" not in json.loads(await ws.recv())
            codes.append(ws.close_code)
        assert codes == [1012] * len(clients), codes
        assert await asyncio.to_thread(workers.proc.wait, 30) == 0, workers.output()
        assert not [pid for pid in counts if alive(pid)]  # the workers exited (and were reaped)
    finally:
        for ws in clients:
            await ws.close()


def test_workers_need_redis() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--workers", "2", "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--workers needs Redis" in done.stderr


def test_metrics_port_goes_with_workers() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--metrics-port", str(free_port())],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2 and "--metrics-port goes with --workers" in done.stderr


def test_a_port_in_use_is_a_clear_error_before_any_worker_starts(redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "serve", "--workers", "2", "--host", "127.0.0.1",
             "--port", str(port)],
            env={**env, "REDIS_URL": redis_url}, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "worker 0 started" not in done.stderr


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie not yet reaped by its new parent."""
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def test_workers_drain_and_exit_when_the_supervisor_is_killed(workers: Workers) -> None:
    pids = per_worker(workers)
    assert len(pids) == 2, pids
    workers.proc.kill()  # SIGKILL: no signal is forwarded; the workers see EOF on stdin
    workers.proc.wait()
    deadline = time.monotonic() + 30
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in pids), workers.output()
    assert workers.output().count("the supervisor is gone: draining") == 2


def test_a_worker_that_dies_is_restarted(workers: Workers) -> None:
    pids = workers.all_metrics()["pid"]
    # past the supervisor's start-up window (5 s from each worker's start, which preceded ready)
    time.sleep(max(0.0, workers.ready_at + 5.5 - time.monotonic()))
    os.kill(int(pids["0"]), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        now = workers.all_metrics()
        if now.get("flowwire_worker_up") == {"0": 1.0, "1": 1.0} and now["pid"]["0"] != pids["0"]:
            break
        assert time.monotonic() < deadline, workers.output()
        time.sleep(0.1)
    assert now["pid"]["1"] == pids["1"]  # the other worker was left alone
    assert parent_of(int(now["pid"]["0"])) == workers.proc.pid
    assert "worker 0 exited -9: restarting it" in workers.output()
    workers.proc.send_signal(signal.SIGTERM)
    assert workers.proc.wait(30) == 0, workers.output()


def test_a_worker_that_cannot_start_stops_all_instead_of_restarting(redis_url: str, tmp_path: Path) -> None:
    # Worker 1 dies as its interpreter starts (the supervisor sets FLOWWIRE_WORKER; it does not).
    (tmp_path / "sitecustomize.py").write_text(
        "import os\nif os.environ.get('FLOWWIRE_WORKER') == '1':\n    os._exit(3)\n"
    )
    w = Workers(redis_url, PYTHONPATH=str(tmp_path))
    try:
        assert w.proc.wait(30) == 1, w.output()
    finally:
        w.close()
    assert re.search(r"worker 1 exited 3 after [\d.]+s: stopping all workers", w.output()), w.output()
    assert "restarting" not in w.output()
