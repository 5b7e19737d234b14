"""Process metrics in /metrics (issue 16, Observability): RSS, open fds, CPU, the event
loop's lag, measured by a timer task that is cancelled at shutdown."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.inproc import serve


async def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    assert name in samples, f"{name} not exported: {sorted(samples)}"
    ((_, v),) = samples[name]
    return v


async def test_process_metrics_are_exported() -> None:
    async with serve("memory") as gw:
        samples = await scrape(gw.port)
    assert value(samples, "process_resident_memory_bytes") > 10_000_000  # a Python process
    assert value(samples, "process_open_fds") >= 3
    assert value(samples, "process_max_fds") >= value(samples, "process_open_fds")
    assert value(samples, "process_cpu_seconds_total") > 0
    assert value(samples, "process_start_time_seconds") <= time.time()
    assert value(samples, "flowwire_event_loop_lag_seconds") >= 0
    ((labels, one),) = samples["flowwire_process_info"]
    assert labels == {"pid": str(os.getpid()), "worker": "0"} and one == 1


async def test_loop_lag_reports_a_blocked_loop_and_its_task_ends_with_the_gateway() -> None:
    async with serve("memory") as gw:
        interval = gw.app.gateway.process_metrics.interval
        assert [t for t in asyncio.all_tasks() if t.get_name() == "flowwire-loop-lag"]
        await asyncio.sleep(interval)  # the timer is running
        time.sleep(interval + 0.5)  # noqa: ASYNC251 - block the loop on purpose: the timer wakes >= 0.5 s late
        await asyncio.sleep(interval * 2)  # let it wake and record
        samples = await scrape(gw.port)
        assert value(samples, "flowwire_event_loop_lag_max_seconds") >= 0.5
        # A scrape resets the maximum to the latest measure (no await in between here).
        metrics = gw.app.gateway.process_metrics
        metrics.observe(0.75)
        list(metrics.collect())
        assert metrics.lag_max == metrics.lag == 0.75
        metrics.observe(0.25)
        assert metrics.lag_max == 0.75
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "flowwire-loop-lag"]
