from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support.gateway import KILLED
from tests.support.redis_server import RedisServer


@pytest.fixture(autouse=True)
def _gateways_exit_on_sigterm() -> Iterator[None]:
    """Every ``flowwire serve`` a test stops exits within 15 s of SIGTERM, whatever Redis
    is doing (issue 11): one that had to be SIGKILLed fails the test, with its log. (A
    Cluster lane's retry loop once outlived its cancellation this way.)"""
    KILLED.clear()
    yield
    if KILLED:
        killed = "\n".join(KILLED)
        KILLED.clear()
        pytest.fail(f"a gateway did not exit within 15 s of SIGTERM and was killed:\n{killed}")


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
