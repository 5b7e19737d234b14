"""The event log contract, the same tests for the embedded log and the Redis log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gateway.log import EventLog
from gateway.log.memory import MemoryLog
from gateway.log.redis import RedisLog
from schemas.codec import ZERO_ID, parse_id
from tests.support.redis_server import RedisServer

F = {"type": b"execution.started", "data": b'{"execution_id":"e","workflow_id":"w","status":"running"}'}


@pytest.fixture(params=["memory", "redis"])
async def log(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[EventLog]:
    if request.param == "memory":
        yield MemoryLog(maxlen=100)
        return
    redis_log = RedisLog(redis_server.url, f"contract-{time.monotonic_ns()}", maxlen=100)
    yield redis_log
    await redis_log.aclose()


async def test_ids_are_ordered_stream_ids(log: EventLog) -> None:
    ids = [await log.append(F) for _ in range(20)]
    sids = [parse_id(i.decode()) for i in ids]
    assert sids == sorted(sids) and len(set(sids)) == 20
    assert abs(sids[0][0] - time.time() * 1000) < 5000  # milliseconds since the epoch


async def test_range_and_read_after_an_id(log: EventLog) -> None:
    ids = [await log.append(F) for _ in range(5)]
    after = parse_id(ids[1].decode())
    assert [e[0] for e in await log.range(after, 10)] == ids[2:]
    assert [e[0] for e in await log.range(after, 2)] == ids[2:4]
    assert [e[1][0] for e in await log.read((after,), 10, 100)] == ids[2:]
    entry = (await log.range(ZERO_ID, 1))[0]
    assert entry[1][b"type"] == b"execution.started"


async def test_read_blocks_until_an_append(log: EventLog) -> None:
    first = await log.append(F)
    reader = asyncio.create_task(log.read((parse_id(first.decode()),), 10, 5000))
    await asyncio.sleep(0.2)
    assert not reader.done()
    second = await log.append(F)
    assert [e[1][0] for e in await asyncio.wait_for(reader, 5)] == [second]


async def test_read_times_out_empty(log: EventLog) -> None:
    last = await log.append(F)
    start = time.monotonic()
    assert await log.read((parse_id(last.decode()),), 10, 200) == []
    assert 0.15 < time.monotonic() - start < 2


async def test_info_and_retention(log: EventLog) -> None:
    empty = await log.info()
    assert empty.length == 0 and empty.last == ZERO_ID and empty.floor == ZERO_ID
    ids = [await log.append(F) for _ in range(450)]
    info = await log.info()
    assert info.last == parse_id(ids[-1].decode())
    # Trimmed near the bound (Redis trims whole nodes: ~), the highest trimmed id known.
    assert 100 <= info.length < 300
    oldest = parse_id((await log.range(ZERO_ID, 1))[0][0].decode())
    # Every entry after the floor is held, and the floor is past what was trimmed.
    assert parse_id(ids[0].decode()) <= info.floor <= oldest
    held = [e[0] for e in await log.range(info.floor, 1000)]
    assert held == [i for i in ids if parse_id(i.decode()) > info.floor]
