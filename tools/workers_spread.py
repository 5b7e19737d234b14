"""How the kernel spreads connections over ``flowwire serve --workers 2`` (SO_REUSEPORT).

    .venv/bin/python tools/workers_spread.py [RUNS] [CONNECTIONS]

Starts a private redis-server and the two workers (on loopback, free ports), opens
CONNECTIONS WebSocket connections, and prints each worker's count from the supervisor's
``--metrics-port``; RUNS times (default 5 x 200).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.deploy.test_workers import Workers
from tests.support.clients import open_ws, token
from tests.support.redis_server import RedisServer


async def main(runs: int, connections: int) -> None:
    redis = RedisServer()
    redis.start()
    try:
        for run in range(runs):
            workers = Workers(redis.url)
            try:
                workers.wait_ready()
                conns = [await open_ws(workers.url, token(f"u{i}")) for i in range(connections)]
                await asyncio.sleep(0.3)
                counts = (await asyncio.to_thread(workers.all_metrics))["flowwire_connections"]
                print(f"run {run}: {connections} connections, per worker {counts}")
                for conn in conns:
                    await conn.close()
            finally:
                workers.proc.send_signal(signal.SIGTERM)
                workers.proc.wait(30)
                workers.close()
    finally:
        redis.close()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(args + [5, 200][len(args) :])))
