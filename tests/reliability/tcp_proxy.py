"""A loopback TCP proxy that can play a database outage: `cut()` drops every live connection
and closes new ones at once, `restore()` forwards again. `cut_on(pattern)` cuts the moment a
client sends bytes containing `pattern`, without forwarding them: a connection lost in the
middle of a transaction."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards 127.0.0.1:<port> to `target`; start with `await proxy.start()`."""

    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5432) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.is_cut = False
        self.starting_up = False
        self.refused = 0  # connections closed at once because the proxy was cut
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._trigger: bytes | None = None
        self.triggered = asyncio.Event()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql+asyncpg://{user}@127.0.0.1:{self.port}/{database}"

    def cut(self, *, starting_up: bool = False) -> None:
        """The database goes away: every live connection is dropped, new ones are closed at
        once, or with `starting_up` answered as PostgreSQL does while it restarts
        (FATAL 57P03 "the database system is starting up")."""
        self.is_cut = True
        self.starting_up = starting_up
        self._trigger = None
        for writer in list(self._writers):
            _abort(writer)
        self._writers.clear()

    def restore(self) -> None:
        """The database is back."""
        self.is_cut = False

    def cut_on(self, pattern: bytes) -> None:
        """Cut as soon as a client sends `pattern` (the chunk holding it is not forwarded)."""
        self._trigger = pattern
        self.triggered.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            self.refused += 1
            if self.starting_up:
                with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
                    await asyncio.wait_for(_answer_starting_up(reader, writer), timeout=5)
            _abort(writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            _abort(writer)
            return
        self._writers.update((writer, upstream_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, upstream_writer, inspect=True)),
            asyncio.create_task(self._pump(upstream_reader, writer, inspect=False)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            for side in (writer, upstream_writer):
                self._writers.discard(side)
                _abort(side)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, inspect: bool
    ) -> None:
        tail = b""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while not self.is_cut:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                trigger = self._trigger
                if inspect and trigger is not None:
                    window = tail + chunk
                    if trigger in window:
                        self.triggered.set()
                        self.cut()
                        return
                    tail = window[-len(trigger) :]
                if self.is_cut:
                    return
                writer.write(chunk)
                await writer.drain()


_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


async def _answer_starting_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Speak just enough of the PostgreSQL protocol to refuse a connection while restarting:
    decline SSL/GSS encryption, read the startup message, answer an ErrorResponse."""
    while True:
        length = int.from_bytes(await reader.readexactly(4), "big")
        body = await reader.readexactly(length - 4)
        code = int.from_bytes(body[:4], "big")
        if code in (_SSL_REQUEST, _GSSENC_REQUEST):
            writer.write(b"N")
            await writer.drain()
            continue
        break
    fields = b"".join(
        kind + value.encode() + b"\0"
        for kind, value in (
            (b"S", "FATAL"),
            (b"V", "FATAL"),
            (b"C", "57P03"),
            (b"M", "the database system is starting up"),
        )
    )
    payload = fields + b"\0"
    writer.write(b"E" + (len(payload) + 4).to_bytes(4, "big") + payload)
    await writer.drain()


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()
