"""Process metrics in ``/metrics``: memory, file descriptors, CPU, the event loop's lag.

prometheus-client's ``ProcessCollector`` reads ``/proc/self`` at scrape time (Linux; on
other systems it exports nothing): ``process_resident_memory_bytes``,
``process_virtual_memory_bytes``, ``process_open_fds``, ``process_max_fds``,
``process_cpu_seconds_total``, ``process_start_time_seconds``.

The event loop's lag is measured by a small timer task (:meth:`ProcessMetrics.run`)
that sleeps ``interval`` and records how late it woke: a loop busy with a long callback
(a burst of deliveries, a blocking call) wakes it late. ``flowwire_event_loop_lag_seconds``
is the latest measure, ``flowwire_event_loop_lag_max_seconds`` the largest since the
previous scrape (a spike between two scrapes is not lost). The task is one of the
gateway's background tasks: started with the reader, cancelled at shutdown.

``flowwire_process_info{pid, worker}`` names the process: with ``flowwire serve
--workers N`` a scrape on the shared port reaches one worker (``worker`` is its index,
``0`` without ``--workers``); ``--metrics-port`` gathers them all.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["WORKER_ENV", "ProcessMetrics"]

#: set by the ``--workers`` supervisor in each worker's environment: its index
WORKER_ENV = "FLOWWIRE_WORKER"


class ProcessMetrics(Collector):
    """Registers the process collector and the loop-lag gauges on ``registry``."""

    def __init__(self, registry: CollectorRegistry, *, interval: float = 0.5) -> None:
        self.interval = interval
        self.lag = 0.0
        self.lag_max = 0.0
        self.worker = os.environ.get(WORKER_ENV, "0")
        ProcessCollector(registry=registry)
        registry.register(self)

    async def run(self) -> None:
        """Sleep ``interval``, record the lateness of the wake-up; until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.observe(max(0.0, loop.time() - due))

    def observe(self, lag: float) -> None:
        self.lag = lag
        self.lag_max = max(self.lag_max, lag)

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "flowwire_event_loop_lag_seconds",
            f"how late the event loop ran a timer due {self.interval:g}s after it was set (latest)",
            value=self.lag,
        )
        lag_max, self.lag_max = self.lag_max, self.lag  # reset by the scrape
        yield GaugeMetricFamily(
            "flowwire_event_loop_lag_max_seconds",
            "the largest event loop lag measured since the previous scrape",
            value=lag_max,
        )
        info = GaugeMetricFamily("flowwire_process_info", "this gateway process", labels=["pid", "worker"])
        info.add_metric([str(os.getpid()), self.worker], 1.0, timestamp=None)
        yield info

    def describe(self) -> Iterator[Metric]:
        # Without describe(), register() would call collect() (resetting lag_max).
        return iter(())
