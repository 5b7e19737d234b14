"""The asyncio client: connect, subscribe, iterate events, reconnect and resume.

Theory of operation. The client is a pull iterator with no task of its own: each
``__anext__`` reads the socket, so an application that stops reading stops the reads,
the gateway's outbox for it fills and the gateway closes it with 4008; the client then
resumes from its cursor. Memory stays bounded by the ``websockets`` receive queue.

- **Cursor.** The id of the last event handed to the application (before the first
  event: the ``position`` of the first ``subscribed``). Every (re)connect sends all the
  subscriptions in one burst, each with ``"since": <cursor>``, so they resume together
  in one ordered replay. An event whose id is not above the cursor is dropped: the
  application never sees an event twice or out of order.
- **Reconnects.** Any disconnect but a fatal one (see :mod:`client.errors`) reconnects
  to the next URL of the list, after the delay a drain (1012) names, or else after a
  jittered exponential backoff (``gateway.core.backoff``: full jitter, capped) that
  restarts from zero once a connection was subscribed. A token callback is called
  before every connect (so after a 4001, with a fresh token).
- **Gaps.** A ``subscribed`` with ``recovered: false`` is yielded as a
  :class:`~client.errors.ResumeGap`. When its ``position`` is below the cursor the
  stream began again (Redis lost its data): the cursor moves back to it, or every later
  event would be dropped as old.
- **Partitioned streams.** When frames carry a ``cursor`` (the gateway's
  ``STREAM_PARTITIONS`` > 1), that opaque cursor of the last event handed out (or the
  ``position``, a cursor too) is the resume cursor, sent back as ``since``; ids of
  different partitions are not comparable, so none is dropped by id then (the gateway
  delivers each once per connection, and a resume from the cursor repeats none).
- **Protocol version 2** (``protocol``, docs/protocol.md "Protocol version 2"; the
  default is ``"v2.json"``; ``"v2.msgpack"`` carries the same messages in 0.84x the
  bytes; ``"v1"`` is the original protocol). A gateway that selects no subprotocol is
  spoken to in version 1. With a token callback, the first message is a ``hello`` asking
  for ``token_refresh``: a ``token_expiring`` notice calls the callback (in a task of its
  own, so also while the application is busy) and sends the new token in a ``refresh``;
  the connection, its subscriptions and cursor stay (a refused refresh is logged and
  counted, and the 4001 that follows reconnects as in version 1). Approvals may overtake
  a backlog: frames written meanwhile carry a ``cursor`` (also with one partition), and
  the rule is the same as for partitioned streams: the last frame's ``cursor``, else its
  ``id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import re
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias, get_args

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from client.errors import (
    AuthRefused,
    ConnectFailed,
    ProtocolFailure,
    ResumeGap,
    ServerError,
    SubscriptionRefused,
)

# gateway.core is stdlib-only and gateway/__init__.py imports nothing: this pulls in no
# server dependency (tests/client/test_light.py checks it).
from gateway.core.backoff import Backoff
from schemas.channels import parse_channel
from schemas.codec import StreamId, format_id, parse_id
from schemas.control import (
    ErrorMessage,
    Filters,
    Pong,
    Refreshed,
    Subscribed,
    TokenExpiring,
    Unsubscribed,
    Welcome,
)
from schemas.envelope import server_decoder, server_decoder_v2, server_msgpack_decoder
from schemas.events import ApprovalPayload, ExecutionPayload, StepPayload
from schemas.partition import CURSOR_PREFIX

__all__ = ["Client", "Control", "Event", "FiltersLike", "Item", "ProtocolChoice", "TokenSource"]

logger = logging.getLogger("flowwire.client")

TokenSource: TypeAlias = "str | Callable[[], str | Awaitable[str]]"
FiltersLike: TypeAlias = "Filters | Mapping[str, Sequence[str]] | None"
#: ``Client(protocol=...)``: the protocol asked for (docs/protocol.md "Protocol version 2")
ProtocolChoice: TypeAlias = Literal["v2.json", "v2.msgpack", "v1"]
_SUBPROTOCOLS: Final[dict[str, str]] = {"v2.json": "flowwire.v2.json", "v2.msgpack": "flowwire.v2.msgpack"}
#: ``error`` codes answering a ``refresh``: the connection is unchanged (it expires as before)
_REFRESH_REFUSED: Final = frozenset({"INVALID_TOKEN", "TOKEN_MISMATCH", "REFRESH_NOT_SUPPORTED"})


class Event(msgspec.Struct, frozen=True):
    """One event, as the gateway sent it; ``data`` is the payload Struct of its category."""

    id: str
    type: str
    timestamp: str
    data: ExecutionPayload | StepPayload | ApprovalPayload
    #: the resume cursor after this event, when the frame had one (partitioned streams;
    #: version 2 while an approval is ahead of stream order)
    cursor: str | None = None


Control: TypeAlias = Subscribed | Unsubscribed | Pong | Welcome | TokenExpiring | Refreshed
#: What the iteration yields: events and gaps; control replies too with ``control=True``.
Item: TypeAlias = Event | ResumeGap | Control

_FATAL_HTTP: Final = frozenset({400, 404, 405, 426})
_PROTOCOL_CLOSES: Final = frozenset({1002, 1003, 1007, 1009})
_AFTER_RE: Final = re.compile(r"after (\d+(?:\.\d+)?)s")


class _Probe(msgspec.Struct):
    id: str | None = None


_probe: Final = msgspec.json.Decoder(_Probe)
_probe_msgpack: Final = msgspec.msgpack.Decoder(_Probe)
_encode: Final = msgspec.json.encode
_encode_msgpack: Final = msgspec.msgpack.encode


def _filters(value: FiltersLike) -> Filters | None:
    if value is None or isinstance(value, Filters):
        return value
    try:
        return msgspec.convert(dict(value), Filters)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid filters: {exc}") from None


class Client:
    """A resuming client of one or more gateways (``urls``: rotated on reconnect).

    Credentials: ``token`` (a JWT, or a callable returning one, sync or async, called
    before every connect) sent as ``Authorization: Bearer``; or ``api_key``
    (``X-API-Key``). ``since`` resumes the first connect too. ``max_attempts`` bounds
    the consecutive failed connects before :class:`ConnectFailed` (``None``: forever).
    ``control=True`` also yields the ``subscribed``, ``unsubscribed`` and ``pong``
    replies (and version 2's ``welcome``, ``token_expiring``, ``refreshed``).
    ``max_size`` bounds one frame (bytes): a larger one is a :class:`ProtocolFailure`,
    not a reconnect loop. ``protocol``: ``"v2.json"`` (default), ``"v2.msgpack"`` or
    ``"v1"`` (module docstring).
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        token: TokenSource | None = None,
        api_key: str | None = None,
        since: str | None = None,
        control: bool = False,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        open_timeout: float = 10.0,
        max_size: int = 16 * 2**20,
        rand: Callable[[], float] = random.random,
        protocol: ProtocolChoice = "v2.json",
    ) -> None:
        if protocol not in get_args(ProtocolChoice):
            raise ValueError(f"protocol={protocol!r}: expected one of {', '.join(get_args(ProtocolChoice))}")
        self.protocol = protocol
        #: the subprotocol of the current (or last) connection: None is version 1
        self.subprotocol: str | None = None
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls:
            raise ValueError("give at least one gateway URL")
        if token is not None and api_key is not None:
            raise ValueError("give a token or an API key, not both")
        self._token = token
        self._api_key = api_key
        self._control = control
        self.backoff = backoff or Backoff(base=0.1, cap=10.0)
        self.max_attempts = max_attempts
        self.open_timeout = open_timeout
        self.max_size = max_size
        self._rand = rand
        #: partitioned streams: the last cursor (module docstring); else ``_cursor``, an id
        self._vector: str | None = since if since and since.startswith(CURSOR_PREFIX) else None
        if self._vector is not None:
            for part in self._vector.removeprefix(CURSOR_PREFIX).split("."):
                parse_id(part)  # ValueError: not a cursor
        self._cursor: StreamId | None = parse_id(since) if since and self._vector is None else None
        self._subs: dict[str, Filters | None] = {}
        self._ws: ClientConnection | None = None
        self._next_url = 0
        self._attempt = 0  # backoff attempt; 0 again once a connection was subscribed
        self._delay = 0.0  # before the next connect
        self._pending: deque[Item] = deque()
        self._unconfirmed: dict[str, str | None] = {}  # sent, no reply yet: channel -> since
        self._tasks: set[asyncio.Task[None]] = set()
        self._resending = False
        self._closed = False
        #: Counters for the curious: connects, events dropped as already seen, frames
        #: that could not be decoded (skipped, logged).
        self.connects = 0
        self.duplicates_dropped = 0
        self.undecodable = 0
        self.last_close: tuple[int | None, str] | None = None
        #: version 2: tokens the gateway accepted in-band (``refreshed``), and refused
        self.refreshes = 0
        self.refresh_failures = 0
        #: version 2: when the connection closes with 4001 unless refreshed (RFC 3339)
        self.expires_at: str | None = None

    @property
    def cursor(self) -> str | None:
        """The resume cursor: the last event id handed out (or the first position); with
        partitioned streams, the last ``cursor``."""
        if self._vector is not None:
            return self._vector
        return None if self._cursor is None else format_id(self._cursor)

    @property
    def url(self) -> str:
        """The URL of the current (or last tried) gateway."""
        return self.urls[(self._next_url - 1) % len(self.urls)]

    # -- subscriptions ---------------------------------------------------------------

    async def subscribe(self, channel: str, filters: FiltersLike = None) -> None:
        """Hold ``channel`` (again: replace its filters). Sent now when connected, else
        with the next connect; the ``subscribed`` reply comes through the iteration."""
        parse_channel(channel)  # ValueError for a name the gateway would refuse
        flt = _filters(filters)
        self._subs[channel] = flt
        if self._ws is not None:
            # A channel added on a live connection starts live (nothing to resume yet). A
            # send on a closing socket is not an error: the next read reports the close
            # and the reconnect sends every held channel again.
            with contextlib.suppress(ConnectionClosed):
                await self._send_subscribe(self._ws, channel, flt, since=None)

    async def unsubscribe(self, channel: str) -> None:
        if self._subs.pop(channel, None) is not None or channel in self._unconfirmed:
            self._unconfirmed.pop(channel, None)
            if self._ws is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self._send(self._ws, {"type": "unsubscribe", "data": {"channel": channel}})

    @property
    def channels(self) -> dict[str, Filters | None]:
        return dict(self._subs)

    # -- iteration -------------------------------------------------------------------

    def __aiter__(self) -> Client:
        return self

    async def __anext__(self) -> Item:
        while True:
            if self._pending:
                return self._pending.popleft()
            if self._closed:
                raise StopAsyncIteration
            ws = self._ws
            if ws is None:
                ws = await self._connect()
            try:
                frame = await ws.recv()
            except ConnectionClosed as exc:
                self._disconnected(ws, exc)
                continue
            item = self._handle(frame)
            if item is not None:
                return item

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- connecting ------------------------------------------------------------------

    async def _headers(self) -> dict[str, str]:
        if self._api_key is not None:
            return {"X-API-Key": self._api_key}
        token = self._token
        if token is None:
            return {}
        if callable(token):
            value = token()
            token = await value if inspect.isawaitable(value) else value
        return {"Authorization": f"Bearer {token}"}

    async def _connect(self) -> ClientConnection:
        failures, auth_refusals = 0, 0
        while True:
            if self._delay > 0:
                await asyncio.sleep(self._delay)
            url = self.urls[self._next_url % len(self.urls)]
            self._next_url += 1
            try:
                offered = _SUBPROTOCOLS.get(self.protocol)
                ws = await connect(
                    url,
                    additional_headers=await self._headers(),
                    subprotocols=None if offered is None else [Subprotocol(offered)],
                    open_timeout=self.open_timeout,
                    max_size=self.max_size,
                )
            except InvalidStatus as exc:
                status, body = exc.response.status_code, exc.response.body or b""
                detail = body.decode("utf-8", "replace")[:200]
                if status in (401, 403):
                    auth_refusals += 1
                    # A token callback gets one more chance: a fresh token, a new connect.
                    if status == 403 or not callable(self._token) or auth_refusals > 1:
                        self._closed = True
                        raise AuthRefused(status, detail) from None
                elif status in _FATAL_HTTP:
                    self._closed = True
                    raise ConnectFailed(f"{url}: HTTP {status} {detail}") from None
                error: str = f"HTTP {status} {detail}"
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                if isinstance(exc, InvalidURI):
                    self._closed = True
                    raise ConnectFailed(str(exc)) from None
                # What happened, in words (not an exception class name): it ends up in logs
                # and in ``flowwire tail``'s one-line messages.
                error = str(exc) or ("timed out" if isinstance(exc, TimeoutError) else "handshake failed")
            else:
                self.connects += 1
                self._delay = 0.0
                self._ws = ws
                self.subprotocol = ws.subprotocol
                self._unconfirmed.clear()
                try:
                    await self._hello(ws)
                    await self._resubscribe(ws)
                except BaseException:  # cancelled (a BlockingClient timeout): not half-subscribed
                    self._ws = None
                    ws.transport.abort()
                    raise
                return ws
            failures += 1
            if self.max_attempts is not None and failures >= self.max_attempts:
                self._closed = True
                raise ConnectFailed(f"no gateway reachable after {failures} attempts; last: {url}: {error}")
            logger.warning("cannot connect to %s (%s)", url, error)
            self._delay = self._next_backoff()

    def _next_backoff(self) -> float:
        delay = self.backoff.delay(self._attempt, self._rand())
        self._attempt += 1
        return delay

    async def _send(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        """One message, in the connection's format (msgpack: a binary frame)."""
        if self.subprotocol == _SUBPROTOCOLS["v2.msgpack"]:
            await ws.send(_encode_msgpack(message))
        else:
            await ws.send(_encode(message).decode())

    async def _hello(self, ws: ClientConnection) -> None:
        """Version 2 with a token callback: ask for ``token_refresh`` first."""
        if self.subprotocol is not None and callable(self._token) and self._api_key is None:
            with contextlib.suppress(ConnectionClosed):  # the next recv reports it
                await self._send(ws, {"type": "hello", "data": {"features": ["token_refresh"]}})

    async def _resubscribe(self, ws: ClientConnection) -> None:
        since = self.cursor
        with contextlib.suppress(ConnectionClosed):  # the next recv reports it
            for channel, flt in list(self._subs.items()):
                await self._send_subscribe(ws, channel, flt, since)

    async def _send_subscribe(
        self, ws: ClientConnection, channel: str, flt: Filters | None, since: str | None
    ) -> None:
        data: dict[str, Any] = {"channel": channel}
        if flt is not None:
            data["filters"] = flt
        if since is not None:
            data["since"] = since
        self._unconfirmed[channel] = since
        await self._send(ws, {"type": "subscribe", "data": data})

    def _disconnected(self, ws: ClientConnection, exc: ConnectionClosed) -> None:
        """Decide what a close means: raise when fatal, else set the reconnect delay."""
        if self._ws is ws:
            self._ws = None
        code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd is not None else (None, "")
        self.last_close = (code, reason)
        if self._closed:
            return
        logger.info("disconnected from %s (%s %r); resuming after %s", self.url, code, reason, self.cursor)
        if code in _PROTOCOL_CLOSES:
            self._closed = True
            raise ProtocolFailure(code, reason)
        if exc.sent is not None and exc.sent.code in _PROTOCOL_CLOSES:
            # We closed it: a frame above max_size (1009), or not UTF-8 (1007). A resume
            # would fetch the same frame again, forever.
            self._closed = True
            raise ProtocolFailure(exc.sent.code, exc.sent.reason)
        if code in (1008, 4001) and not callable(self._token):
            self._closed = True
            raise AuthRefused(code, reason or "token expired")
        if code == 1012 and (match := _AFTER_RE.search(reason)):
            # A drain names the (already jittered) delay; the next URL is another pod.
            self._delay = min(float(match[1]), self.backoff.cap)
        else:
            self._delay = self._next_backoff()

    # -- frames ----------------------------------------------------------------------

    def _decode(self, frame: str | bytes) -> Any:
        if self.subprotocol is None:
            return server_decoder.decode(frame)
        if isinstance(frame, bytes) and self.subprotocol == _SUBPROTOCOLS["v2.msgpack"]:
            return server_msgpack_decoder.decode(frame)
        return server_decoder_v2.decode(frame)

    def _handle(self, frame: str | bytes) -> Item | None:
        try:
            message = self._decode(frame)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            self._undecodable(frame, exc)
            return None
        match message:
            case Subscribed(data=data):
                return self._subscribed(message, data.channel, data.position, data.recovered)
            case ErrorMessage(data=data):
                self._error(data.code, data.message, data.channel, data.retry_after_ms)
                return None
            case TokenExpiring():
                self._refresh()
                return message if self._control else None
            case Refreshed(data=data):
                self.refreshes += 1
                self.expires_at = data.expires_at
                return message if self._control else None
            case Welcome() | Pong() | Unsubscribed():
                return message if self._control else None
        if not hasattr(message, "id"):
            return None  # a reply to nothing this client sends (presence)
        tag: str = type(message).__struct_config__.tag
        if message.cursor is not None:  # no id comparison (module docstring)
            self._vector = message.cursor
            return Event(message.id, tag, message.timestamp, message.data, message.cursor)
        if self._vector is not None and "~" in self._vector:
            # The priority window closed (one partition): this id is the resume point.
            self._vector = None
            self._cursor = parse_id(message.id)
            return Event(id=message.id, type=tag, timestamp=message.timestamp, data=message.data)
        sid = parse_id(message.id)
        if self._cursor is not None and sid <= self._cursor:
            self.duplicates_dropped += 1
            return None
        self._cursor = sid
        return Event(id=message.id, type=tag, timestamp=message.timestamp, data=message.data)

    def _undecodable(self, frame: str | bytes, exc: Exception) -> None:
        # A frame this client's schemas do not know (a newer gateway?): skipped, logged,
        # counted; an event's id still advances the cursor so a resume does not loop on it.
        self.undecodable += 1
        with contextlib.suppress(msgspec.ValidationError, msgspec.DecodeError):
            probe = _probe_msgpack.decode(frame) if isinstance(frame, bytes) else _probe.decode(frame)
            if probe.id is not None:
                sid = parse_id(probe.id)
                if self._cursor is None or sid > self._cursor:
                    self._cursor = sid
        logger.warning("skipped a frame this client cannot decode (%s): %.200r", exc, frame)

    def _subscribed(
        self, message: Subscribed, channel: str, position: str | None, recovered: bool | None
    ) -> Item | None:
        since = self._unconfirmed.pop(channel, None)
        self._attempt = 0  # a healthy connection: the backoff starts over
        if position is not None and position.startswith(CURSOR_PREFIX):
            return self._subscribed_partitioned(message, channel, since, position, recovered)
        pos = parse_id(position) if position else None
        gap: ResumeGap | None = None
        if recovered is False and pos is not None:
            gap = ResumeGap(channel, since or self.cursor or "0-0", format_id(pos))
            if self._cursor is not None and pos < self._cursor:
                self._cursor = pos  # the stream began again: its ids are below ours
        elif self._cursor is None and pos is not None:
            self._cursor = pos
        return self._answer(message, gap)

    def _subscribed_partitioned(
        self, message: Subscribed, channel: str, since: str | None, position: str, recovered: bool | None
    ) -> Item | None:
        gap: ResumeGap | None = None
        if recovered is False:
            gap = ResumeGap(channel, since or self.cursor or "0-0", position)
            self._vector = position
        elif self._vector is None and self._cursor is None:
            self._vector = position
        return self._answer(message, gap)

    def _answer(self, message: Subscribed, gap: ResumeGap | None) -> Item | None:
        if self._control:
            if gap is None:
                return message
            self._pending.append(message)
        return gap

    def _error(self, code: str, text: str, channel: str | None, retry_after_ms: int | None) -> None:
        if code in _REFRESH_REFUSED:
            # A refresh was refused: the connection is unchanged and closes 4001 when its
            # token expires; the reconnect then calls the token callback again.
            self.refresh_failures += 1
            logger.warning("token refresh refused (%s): %s", code, text)
            return
        if code == "RATE_LIMITED":
            # The reply does not say which message was refused: send again, later, every
            # subscribe of this connection not confirmed yet.
            self._retry_later((retry_after_ms or 1000) / 1000)
            return
        if channel is not None:
            self._subs.pop(channel, None)
            self._unconfirmed.pop(channel, None)
            raise SubscriptionRefused(code, text, channel)
        raise ServerError(code, text)

    def _retry_later(self, delay: float) -> None:
        ws = self._ws
        if self._resending:  # one resend at a time covers every refusal of the burst
            return
        self._resending = True

        async def resend() -> None:
            try:
                await asyncio.sleep(delay)
                if ws is self._ws and ws is not None:
                    with contextlib.suppress(ConnectionClosed):
                        for channel in list(self._unconfirmed):
                            if channel in self._subs:
                                await self._send_subscribe(ws, channel, self._subs[channel], self.cursor)
            finally:
                self._resending = False

        self._spawn(resend())

    def _refresh(self) -> None:
        """``token_expiring``: a fresh token from the callback, sent in a ``refresh``."""
        ws, source = self._ws, self._token
        if ws is None or not callable(source):
            return

        async def refresh() -> None:
            try:
                value = source()
                token = await value if inspect.isawaitable(value) else value
            except Exception:
                self.refresh_failures += 1
                logger.exception("the token callback failed; the connection closes when its token expires")
                return
            if ws is self._ws:
                with contextlib.suppress(ConnectionClosed):
                    await self._send(ws, {"type": "refresh", "data": {"token": token}})

        self._spawn(refresh())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
