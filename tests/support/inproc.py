"""A gateway under real uvicorn in this process, on a free port, over either event log
(the embedded one or Redis), so that one test runs against both. On Redis,
``stream_partitions=P`` gives a partitioned log (events go to their execution's
partition)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.routing import BaseRoute

from gateway.app import FlowwireApp, create_app
from gateway.config import Config
from gateway.log import EventLog
from gateway.log.memory import MemoryLog
from gateway.log.redis import RedisLog
from gateway.server import uvicorn_config
from schemas.events import make_event
from schemas.partition import partition_of
from schemas.stream import encode_entry, entry_execution_id
from tests.support.checker import Appended
from tests.support.gateway import SECRET
from tests.support.redis_server import free_port

__all__ = ["Served", "serve"]


@dataclass
class Served:
    app: FlowwireApp
    log: EventLog
    port: int
    appended: list[Appended]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def append(
        self, event_type: str, data: dict[str, Any], *, org: str | None = None, user: str | None = None
    ) -> str:
        entry_id = (
            await self.log.append(encode_entry(make_event(event_type, data), org=org, user=user))
        ).decode()
        self.appended.append(Appended(entry_id, event_type, json.loads(json.dumps(data)), org, user))
        return entry_id

    async def append_burst(self, event_type: str, data: dict[str, Any], count: int) -> list[str]:
        """``count`` events appended at once (one pipeline on Redis): the reader gets them
        in one batch."""
        fields = encode_entry(make_event(event_type, data))
        return await self._append_all([fields] * count, [dict(data)] * count, event_type)

    async def append_each(self, event_type: str, datas: Sequence[dict[str, Any]]) -> list[str]:
        """One event per payload, appended at once as :meth:`append_burst`'s."""
        entries = [encode_entry(make_event(event_type, data)) for data in datas]
        return await self._append_all(entries, [dict(data) for data in datas], event_type)

    async def _append_all(
        self, entries: list[dict[str, bytes]], datas: list[dict[str, Any]], event_type: str
    ) -> list[str]:
        if isinstance(self.log, RedisLog):
            pipe = self.log.client.pipeline(transaction=False)
            for fields in entries:
                key = self.log.keys[partition_of(entry_execution_id(fields), self.log.partitions)]
                pipe.xadd(key, fields)  # type: ignore[arg-type]
            ids = [i.decode() for i in await pipe.execute()]
        else:
            ids = [(await self.log.append(fields)).decode() for fields in entries]
        self.appended += [Appended(i, event_type, data) for i, data in zip(ids, datas, strict=True)]
        return ids


@asynccontextmanager
async def serve(
    kind: str, redis_url: str | None = None, *, routes: Sequence[BaseRoute] = (), **settings: Any
) -> AsyncIterator[Served]:
    """Config settings as keywords; ``routes``: HTTP routes served beside the gateway's."""
    config = dataclasses.replace(Config(jwt_secret=SECRET, rate_limit=0), **settings)
    log: EventLog
    if kind == "memory":
        log = MemoryLog(maxlen=config.stream_maxlen)
    else:
        assert redis_url is not None
        log = RedisLog(
            redis_url,
            f"ws:events:{time.monotonic_ns()}",
            maxlen=config.stream_maxlen,
            partitions=config.stream_partitions,
        )
    app = create_app(config, log=log, routes=routes)
    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, config, "127.0.0.1", port))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    try:
        yield Served(app, log, port, [])
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
