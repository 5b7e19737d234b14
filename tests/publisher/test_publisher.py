"""The publisher against a real, private redis-server."""

from __future__ import annotations

import json
import socket
import time

import pytest
import redis

from publisher import (
    BlockingPublisher,
    InvalidEvent,
    Publication,
    Publisher,
    PublishError,
    PublisherUnavailable,
    RedisSettings,
    make_event,
)
from publisher.settings import SettingError, parse_duration
from schemas.events import Event, ExecutionPayload
from tests.support.redis_server import free_port, read_stream


def _event(n: int = 0, status: str = "running") -> Event:
    return make_event(
        "execution.started",
        {"execution_id": f"exec_{n:08d}", "workflow_id": "wf", "status": status},
    )


def test_entries_have_the_contract_layout(redis_url: str) -> None:
    with BlockingPublisher(RedisSettings(url=redis_url)) as pub:
        entry_id = pub.publish(_event(1), org="acme", user="u-7")
    [(eid, fields)] = read_stream(redis_url)
    assert eid == entry_id
    assert fields[b"type"] == b"execution.started"
    assert json.loads(fields[b"data"]) == {
        "execution_id": "exec_00000001", "workflow_id": "wf", "status": "running"}  # fmt: skip
    assert fields[b"org"] == b"acme"
    assert fields[b"user"] == b"u-7"
    assert b"ts" not in fields


async def test_async_publish_many_is_one_round_trip(redis_url: str) -> None:
    events = [_event(i) for i in range(50)]
    async with Publisher(RedisSettings(url=redis_url, stream_key="s1")) as pub:
        await pub.publish(_event(0))  # connect first so the handshake is not counted
        client = redis.Redis.from_url(redis_url)
        before = client.info("stats")["total_commands_processed"]
        ids = await pub.publish_many([*events[:49], Publication(events[49], org="o")])
        after = client.info("stats")["total_commands_processed"]
        assert client.xlen("s1") == 51
        client.close()
    assert len(ids) == 50
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    # 50 XADDs and INFO: the pipeline delivered them in one batch, no extra commands.
    assert after - before == 51


def test_blocking_publish_many_returns_ids_in_order(redis_url: str) -> None:
    with BlockingPublisher(RedisSettings(url=redis_url)) as pub:
        ids = pub.publish_many([_event(i) for i in range(10)])
        assert pub.publish_many([]) == []
    assert [eid for eid, _ in read_stream(redis_url)] == ids


def test_trimming_holds_the_stream_near_its_bound(redis_url: str) -> None:
    with BlockingPublisher(RedisSettings(url=redis_url, maxlen=1000)) as pub:
        for _ in range(10):
            pub.publish_many([_event(i) for i in range(500)])
    client = redis.Redis.from_url(redis_url)
    length = client.xlen("ws:events")
    client.close()
    # MAXLEN ~ trims whole macro nodes (100 entries by default): near, never far.
    assert 1000 <= length < 1000 + 200


def test_invalid_event_writes_nothing(redis_url: str) -> None:
    bad = Event(
        type="execution.started",
        data=ExecutionPayload(execution_id="e", workflow_id="w", status="bogus"),  # type: ignore[arg-type]
    )
    with BlockingPublisher(RedisSettings(url=redis_url)) as pub:
        with pytest.raises(InvalidEvent, match="status"):
            pub.publish(bad)
        with pytest.raises(InvalidEvent):
            pub.publish_many([_event(1), bad])
        with pytest.raises(InvalidEvent):
            pub.publish("execution.started")  # type: ignore[arg-type]
    client = redis.Redis.from_url(redis_url)
    assert client.exists("ws:events") == 0
    client.close()


def _dead_port() -> int:
    return free_port()  # nothing listens there


def test_unreachable_redis_blocking_gives_typed_error_in_time() -> None:
    settings = RedisSettings(url=f"redis://127.0.0.1:{_dead_port()}/0", timeout=0.5)
    with BlockingPublisher(settings) as pub:
        start = time.monotonic()
        with pytest.raises(PublisherUnavailable) as info:
            pub.publish(_event())
        elapsed = time.monotonic() - start
    assert info.value.retryable
    assert elapsed <= 0.5 + 0.1


async def test_unreachable_redis_async_gives_typed_error_in_time() -> None:
    settings = RedisSettings(url=f"redis://127.0.0.1:{_dead_port()}/0", timeout=0.5)
    async with Publisher(settings) as pub:
        start = time.monotonic()
        with pytest.raises(PublisherUnavailable):
            await pub.publish(_event())
        assert time.monotonic() - start <= 0.5 + 0.1


def test_silent_redis_is_bounded_too() -> None:
    # A peer that accepts connections but never answers: the socket timeout bounds it.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        settings = RedisSettings(url=f"redis://127.0.0.1:{port}/0", timeout=0.4)
        with BlockingPublisher(settings) as pub:
            start = time.monotonic()
            with pytest.raises(PublisherUnavailable):
                pub.publish(_event())
            assert time.monotonic() - start <= 0.4 + 0.1


def test_settings_from_env() -> None:
    s = RedisSettings.from_env(
        {"REDIS_HOST": "h", "REDIS_PORT": "7000", "REDIS_PASSWORD": "p@ss", "REDIS_DB": "2",
         "STREAM_KEY": "k", "STREAM_MAXLEN": "10", "PUBLISH_TIMEOUT": "250ms"}
    )  # fmt: skip
    assert s == RedisSettings(url="redis://:p%40ss@h:7000/2", stream_key="k", maxlen=10, timeout=0.25)
    assert RedisSettings.from_env({"REDIS_URL": "redis://x:1/0", "REDIS_HOST": "h"}).url == "redis://x:1/0"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"REDIS_PORT": "x", "REDIS_HOST": "h"}, "REDIS_PORT"),
        ({"REDIS_PORT": "70000", "REDIS_HOST": "h"}, "REDIS_PORT"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"STREAM_MAXLEN": "-1"}, "STREAM_MAXLEN"),
        ({"PUBLISH_TIMEOUT": "soon"}, "PUBLISH_TIMEOUT"),
        ({"PUBLISH_TIMEOUT": "0"}, "PUBLISH_TIMEOUT"),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingError, match=name):
        RedisSettings.from_env(env)


def test_parse_duration() -> None:
    assert parse_duration("X", "15s") == 15
    assert parse_duration("X", "500ms") == 0.5
    assert parse_duration("X", "2m") == 120
    assert parse_duration("X", "3") == 3
    with pytest.raises(SettingError, match="X"):
        parse_duration("X", "-1s")


def test_pack_xadd_is_the_resp_redis_expects() -> None:
    from publisher.client import pack_xadd

    packed = pack_xadd(b"k", 10, {"type": b"t", "data": b"{}"})
    assert packed == (
        b"*10\r\n$4\r\nXADD\r\n$1\r\nk\r\n$6\r\nMAXLEN\r\n$1\r\n~\r\n$2\r\n10\r\n$1\r\n*\r\n"
        b"$4\r\ntype\r\n$1\r\nt\r\n$4\r\ndata\r\n$2\r\n{}\r\n"
    )
    assert pack_xadd(b"k", 0, {"type": b"t"}).startswith(b"*5\r\n$4\r\nXADD\r\n$1\r\nk\r\n$1\r\n*\r\n")


async def test_async_error_reply_does_not_poison_the_connection(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("not-a-stream", "x")  # XADD on it answers WRONGTYPE
    client.close()
    async with Publisher(RedisSettings(url=redis_url, stream_key="not-a-stream")) as bad:
        with pytest.raises(PublishError, match="WRONGTYPE") as info:
            await bad.publish(_event(1))
        assert not info.value.retryable
    with (
        BlockingPublisher(RedisSettings(url=redis_url, stream_key="not-a-stream")) as blocking,
        pytest.raises(PublishError, match="WRONGTYPE"),
    ):
        blocking.publish(_event(1))
    async with Publisher(RedisSettings(url=redis_url)) as pub:
        ids = await pub.publish_many([_event(i) for i in range(3)])
        assert len(ids) == 3
        assert await pub.publish(_event(4))
