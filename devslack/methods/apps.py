"""apps.connections.open and the Socket Mode WebSocket it points to."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp import web

from devslack.base import FakeSlackBase
from devslack.model import JSONDict


class AppsMethods(FakeSlackBase):
    """apps.* handlers and the Socket Mode connection (hello, envelopes, acks)."""

    async def _apps_connections_open(self, params: JSONDict) -> JSONDict:
        """apps.connections.open: a Socket Mode WebSocket URL (app-level token only)."""
        return {"url": f"ws://{self.host}:{self.port}/socket"}

    async def _handle_socket(self, request: web.Request) -> web.WebSocketResponse:
        """A Socket Mode connection: say hello, then record the acks the app sends back."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json({"type": "hello", "num_connections": len(self._sockets)})
        self._socket_ready.set()
        async for frame in socket:
            if frame.type == aiohttp.WSMsgType.TEXT:
                self.socket_acks.append(json.loads(frame.data))
        self._sockets.remove(socket)
        return socket

    async def wait_for_socket(self) -> None:
        """Wait (10 s at most) until an app has connected over Socket Mode."""
        async with asyncio.timeout(10):
            await self._socket_ready.wait()

    async def send_over_socket(self, kind: str, payload: JSONDict) -> str:
        """Deliver an envelope (kind: slash_commands, interactive, events_api); returns its id."""
        envelope_id = f"env-{next(self._ids)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        await self._sockets[-1].send_json(envelope)
        return envelope_id
