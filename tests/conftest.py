from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server for the session (never the shared one on 6379)."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


def _flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushall()
    finally:
        client.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The private server's URL, empty at the start of the test (it is ours alone)."""
    _flush(redis_server.url)
    yield redis_server.url
    _flush(redis_server.url)
