"""Limits of the HTTP server against slow and oversized clients.

aiohttp closes idle keep-alive connections, but it gives a client all the time it wants to send
a request's headers or body, and it accepts connections until the process runs out of file
descriptors. ConnectionGuard adds what is missing: it stands between every accepted socket and
aiohttp's RequestHandler (so it sees bytes arrive), its middleware learns when a request's
headers are complete, and `read_unsigned_body` reads a POST body under a byte cap and a deadline,
before the signature can be checked. Past the connection cap, the connection that has waited
longest without a request being worked on is closed to make room: a flood of slow clients then
costs the flood its own connections, never the health checks."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from bot.settings import BotSettings

log = logging.getLogger("bot.http")

# How long aiohttp goes on reading (and discarding) the rest of a body it answered early (413,
# 408): long enough for a client that is still sending to read the answer rather than a reset
# connection, short enough to cost nothing.
_LINGER_SECONDS = 2.0


class BodyRefused(Exception):
    """A request body that was not read whole: too large, too slow, or cut off."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> web.Response:
        """The answer; the connection closes after it, since the rest of the body is unread."""
        response = web.Response(status=self.status, text=self.reason)
        response.force_close()
        return response


class _Phase(enum.Enum):
    AWAITING_HEADERS = "awaiting headers"
    READING_BODY = "reading an unsigned body"
    HANDLING = "handling a request"
    IDLE = "idle"


# Phases in which a connection may be closed to make room for a new one: in none of them is a
# request with a checked signature being worked on.
_EVICTABLE = frozenset({_Phase.AWAITING_HEADERS, _Phase.READING_BODY, _Phase.IDLE})


class _WatchedConnection(asyncio.Protocol):
    """One socket: passes every transport event on to aiohttp's RequestHandler, and closes the
    socket when a request's headers are not complete within the header deadline (counted from
    the connection or from the first byte after an idle keep-alive period, never reset by
    further bytes, so headers sent a byte at a time do not extend it)."""

    def __init__(self, guard: ConnectionGuard, handler: web.RequestHandler) -> None:
        self.guard = guard
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.phase = _Phase.AWAITING_HEADERS
        self.closed = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.handler.connection_made(transport)
        self.guard.admit(self)

    def data_received(self, data: bytes) -> None:
        if self.phase is _Phase.IDLE:
            self.enter(_Phase.AWAITING_HEADERS)  # the next request starts arriving
        self.handler.data_received(data)

    def eof_received(self) -> None:
        self.handler.eof_received()  # returning None: the transport closes on the client's EOF

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        self.closed = True
        self.guard.forget(self)
        self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def enter(self, phase: _Phase) -> None:
        """Move to `phase`; awaiting headers starts the header deadline, any other stops it."""
        if self.closed:
            return
        self.phase = phase
        self._stop_deadline()
        if phase is _Phase.AWAITING_HEADERS:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(
                self.guard.header_timeout, self.close, "headers not received in time"
            )
        self.guard.moved(self)

    def close(self, reason: str) -> None:
        """Drop the connection at once (unsent output included): it is a slow or idle client."""
        if self.closed:
            return
        self.closed = True
        self._stop_deadline()
        self.guard.forget(self)
        peer = self.transport.get_extra_info("peername") if self.transport else None
        log.info(
            "closed an HTTP connection",
            extra={"reason": reason, "phase": self.phase.value, "peer": str(peer)},
        )
        if self.transport is not None:
            self.transport.abort()

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


class ConnectionGuard:
    """Deadlines for headers and unsigned bodies, a byte cap on unsigned bodies, and a cap on
    open connections, for one BotServer. Wire it in with `middleware`, `handler_options` and
    `site`; read Slack's bodies with `read_unsigned_body`."""

    def __init__(
        self,
        *,
        header_timeout: float,
        body_timeout: float,
        keepalive: float,
        max_unsigned_body: int,
        max_connections: int,
    ) -> None:
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.keepalive = keepalive
        self.max_unsigned_body = max_unsigned_body
        self.max_connections = max_connections
        self._connections: dict[web.RequestHandler, _WatchedConnection] = {}
        # Connections that may be closed to make room, the longest waiting first.
        self._evictable: dict[_WatchedConnection, None] = {}

    @classmethod
    def from_settings(cls, settings: BotSettings) -> ConnectionGuard:
        return cls(
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            keepalive=settings.http_keepalive_seconds,
            max_unsigned_body=settings.http_max_unsigned_body_bytes,
            max_connections=settings.http_max_connections,
        )

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def handler_options(self) -> dict[str, Any]:
        """Keyword arguments for aiohttp's AppRunner (passed on to each RequestHandler)."""
        return {
            "keepalive_timeout": self.keepalive,
            "lingering_time": _LINGER_SECONDS,
            # Slack never compresses its requests; decompressing would let a body within the
            # cap grow many times over before its signature is checked.
            "auto_decompress": False,
        }

    def site(self, runner: web.BaseRunner, host: str, port: int) -> web.BaseSite:
        """A TCP listener like aiohttp's TCPSite, whose connections this guard watches."""
        return _GuardedSite(runner, self, host, port)

    def protocol_factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        return lambda: _WatchedConnection(self, server())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Headers are complete once a handler runs: no header deadline while it does."""
        connection = self._connections.get(request.protocol)
        if connection is None:
            return await handler(request)
        connection.enter(_Phase.HANDLING)
        try:
            return await handler(request)
        finally:
            connection.enter(_Phase.IDLE)

    async def read_unsigned_body(self, request: web.BaseRequest) -> bytes:
        """The whole body, read before its signature can be checked: never more than one byte
        past `max_unsigned_body`, all of it within `body_timeout` seconds. A declared length
        over the cap is refused before anything is read."""
        cap = self.max_unsigned_body
        declared = request.content_length
        if declared is not None and declared > cap:
            raise BodyRefused(413, f"request body over {cap} bytes")
        connection = self._connections.get(request.protocol)
        if connection is not None:
            connection.enter(_Phase.READING_BODY)
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                # Each read returns at least one byte until the end, so this ends by cap + 1.
                while chunk := await request.content.read(cap + 1 - size):
                    size += len(chunk)
                    if size > cap:
                        raise BodyRefused(413, f"request body over {cap} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            reason = f"request body not received within {self.body_timeout:g} s"
            raise BodyRefused(408, reason) from None
        except (ConnectionError, web.RequestPayloadError):
            raise BodyRefused(400, "request body cut off or malformed") from None
        finally:
            if connection is not None:
                connection.enter(_Phase.HANDLING)
        return b"".join(chunks)

    def admit(self, connection: _WatchedConnection) -> None:
        """Count a new connection in; at the cap, first close the connection that has waited
        longest without a request being worked on (or this one, if every connection is busy)."""
        if len(self._connections) >= self.max_connections:
            oldest = next(iter(self._evictable), None)
            if oldest is None:
                connection.close("connection limit reached, every connection busy")
                return
            oldest.close("connection limit reached: the longest waiting connection makes room")
        self._connections[connection.handler] = connection
        connection.enter(_Phase.AWAITING_HEADERS)

    def moved(self, connection: _WatchedConnection) -> None:
        """Keep the eviction order: a connection entering a phase is the youngest in it."""
        self._evictable.pop(connection, None)
        if connection.phase in _EVICTABLE and connection.handler in self._connections:
            self._evictable[connection] = None

    def forget(self, connection: _WatchedConnection) -> None:
        self._evictable.pop(connection, None)
        if self._connections.get(connection.handler) is connection:
            del self._connections[connection.handler]


class _GuardedSite(web.BaseSite):
    """aiohttp's TCPSite, except that each connection's protocol is wrapped by the guard."""

    __slots__ = ("_guard", "_host", "_port")

    def __init__(self, runner: web.BaseRunner, guard: ConnectionGuard, host: str, port: int):
        super().__init__(runner)
        self._guard = guard
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self._host or "0.0.0.0", port=self._port))

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.protocol_factory(server), self._host, self._port, backlog=self._backlog
        )
