"""Idempotency keys on one server (issue 14): a key appends once within its window, for
both publishers, in a batch too; the keys are in the stream's slot and expire."""

from __future__ import annotations

import pytest
import redis

from publisher import BlockingPublisher, InvalidEvent, Publication, Publisher, RedisSettings, make_event
from publisher.connect import companion_key
from schemas.events import Event


def _event(tag: str) -> Event:
    return make_event(
        "execution.started", {"execution_id": f"exec_{tag}", "workflow_id": "wf", "status": "running"}
    )


async def test_async_key_appends_once(redis_url: str) -> None:
    async with Publisher(RedisSettings(url=redis_url, dedupe_window=60)) as pub:
        first = await pub.publish(_event("a"), idempotency_key="k-a")
        again = await pub.publish(_event("a"), idempotency_key="k-a")
        batch = await pub.publish_many(
            [Publication(_event("b"), idempotency_key="k-b"), Publication(_event("a"), idempotency_key="k-a")]
        )
    assert first == again == batch[1] != batch[0]
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.xlen("ws:events") == 2
        key = companion_key("ws:events", "dedupe:") + "k-a"
        assert client.get(key) == first.encode()
        assert 0 < int(client.pttl(key)) <= 60_000
    finally:
        client.close()


def test_blocking_key_appends_once_and_without_window_a_key_still_counts(redis_url: str) -> None:
    # Dedupe off by default: events without a key are plain XADDs; a given key is honoured.
    with BlockingPublisher(RedisSettings(url=redis_url)) as pub:
        plain = [pub.publish(_event("p")) for _ in range(2)]
        keyed = [pub.publish(_event("k"), idempotency_key="k") for _ in range(2)]
        with pytest.raises(InvalidEvent):
            pub.publish(_event("e"), idempotency_key="")
    assert plain[0] != plain[1]
    assert keyed[0] == keyed[1]
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.xlen("ws:events") == 3
    finally:
        client.close()
