from __future__ import annotations

from collections.abc import Iterator

import pytest

from publisher import BlockingPublisher, RedisSettings
from tests.support.gateway import GatewayProcess
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_mod() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def gateway(redis_mod: RedisServer) -> Iterator[GatewayProcess]:
    """A gateway with the default settings, shared by a module's tests."""
    gw = GatewayProcess({"REDIS_URL": redis_mod.url, "CLIENT_RATE_LIMIT": "0"})
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def publisher(redis_mod: RedisServer) -> Iterator[BlockingPublisher]:
    with BlockingPublisher(RedisSettings(url=redis_mod.url)) as pub:
        yield pub
