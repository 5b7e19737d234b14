"""A blocking wrapper for scripts: the asyncio :class:`~client.aio.Client` on an event
loop in a daemon thread, iterated synchronously.

The loop keeps running between two ``next()`` calls, so the connection answers the
gateway's pings while the script works on an event.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from client.aio import Client, FiltersLike, Item

__all__ = ["BlockingClient"]

T = TypeVar("T")


class BlockingClient:
    """Same arguments as :class:`~client.aio.Client`; ``timeout`` (seconds, or ``None``)
    bounds each ``next()``, raising ``TimeoutError`` (the client stays usable)."""

    def __init__(self, urls: str | Sequence[str], *, timeout: float | None = None, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="flowwire-client", daemon=True)
        self._thread.start()
        self.timeout = timeout
        self.client: Client = self._run(self._make(urls, options))

    @staticmethod
    async def _make(urls: str | Sequence[str], options: dict[str, Any]) -> Client:
        return Client(urls, **options)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def subscribe(self, channel: str, filters: FiltersLike = None) -> None:
        self._run(self.client.subscribe(channel, filters))

    def unsubscribe(self, channel: str) -> None:
        self._run(self.client.unsubscribe(channel))

    def __iter__(self) -> Iterator[Item]:
        return self

    def __next__(self) -> Item:
        try:
            return self._run(self.client.__anext__(), self.timeout)
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self.client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
