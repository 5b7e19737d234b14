"""The publisher while Redis restarts (issue 4, item 6): every call returns within its
bound; every id it returned is in the stream afterwards."""

from __future__ import annotations

import threading
import time

from publisher import BlockingPublisher, PublisherUnavailable, RedisSettings, make_event
from tests.support.redis_server import RedisServer, read_stream


def test_bounded_and_nothing_reported_is_lost_across_a_restart() -> None:
    server = RedisServer()
    server.start()
    try:
        timeout = 0.5
        published: list[str] = []
        failures = 0
        slowest = 0.0
        stop = threading.Event()

        def restart() -> None:
            time.sleep(0.5)
            server.restart(keep_data=True, downtime=1.0)  # SHUTDOWN SAVE, then start again
            time.sleep(0.5)
            stop.set()

        restarter = threading.Thread(target=restart)
        restarter.start()
        with BlockingPublisher(RedisSettings(url=server.url, timeout=timeout)) as pub:
            n = 0
            while not stop.is_set():
                event = make_event(
                    "execution.started",
                    {"execution_id": f"exec_{n:08d}", "workflow_id": "w", "status": "running"},
                )
                start = time.monotonic()
                try:
                    published.append(pub.publish(event))
                except PublisherUnavailable:
                    failures += 1
                slowest = max(slowest, time.monotonic() - start)
                n += 1
        restarter.join()
        stored = {eid for eid, _ in read_stream(server.url)}
        assert failures > 0, "Redis was never seen down: the test did not test anything"
        assert len(published) > 100
        assert slowest <= timeout + 0.15, f"a publish blocked {slowest:.3f}s"
        assert set(published) <= stored, "an event reported as published was lost"
    finally:
        server.close()
