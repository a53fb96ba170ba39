"""Slow and oversized clients against the real bot on loopback (bot/http_limits.py): headers and
unsigned bodies have deadlines, idle keep-alive connections close, a flood of stalled
connections stays under the connection cap without starving the health checks, and what is read
before the signature is known is capped. The slow clients are raw asyncio streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from yarl import URL

from core.clock import FrozenClock
from core.context import Core
from core.db import Database
from devslack.stage import CUSTOMER, Stage
from tests.conftest import settings_for, truncate_all

HEADER_DEADLINE = 0.5
BODY_DEADLINE = 0.5
# Deadlines short enough for fast tests; keep-alive long, so that it closes nothing by accident.
FAST = {
    "http_header_timeout_seconds": HEADER_DEADLINE,
    "http_body_timeout_seconds": BODY_DEADLINE,
    "http_keepalive_seconds": 30,
}
# Long enough that a test failing for want of a deadline fails on it, not on the suite's timeout.
PATIENCE = 5.0


@asynccontextmanager
async def serving(
    database: Database, database_url: str, clock: FrozenClock, **http: object
) -> AsyncIterator[Stage]:
    """The real bot with the FAST HTTP limits (`http` overrides some); every table is emptied."""
    core = Core(db=database, settings=settings_for(database_url), clock=clock)
    try:
        overrides = {**FAST, **http}
        async with Stage(
            database_url=database_url, clock=clock, core=core, settings_overrides=overrides
        ) as stage:
            yield stage
    finally:
        await truncate_all(database)


@pytest.fixture
async def stage(database: Database, database_url: str, clock: FrozenClock) -> AsyncIterator[Stage]:
    async with serving(database, database_url, clock) as running:
        yield running


def _cap(stage: Stage) -> int:
    assert stage.server is not None
    return stage.server.settings.http_max_unsigned_body_bytes


async def _connect(stage: Stage) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert stage.server is not None
    url = URL(stage.server.base_url)
    return await asyncio.open_connection(url.host, url.port)


async def _until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""


async def _status(stage: Stage, path: str) -> int:
    """GET `path` on a connection of its own; fails if there is no answer within 2 s."""
    assert stage.server is not None
    timeout = aiohttp.ClientTimeout(total=2)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(stage.server.base_url + path) as response,
    ):
        return response.status


async def _drip(writer: asyncio.StreamWriter, data: bytes, *, every: float) -> None:
    """Send `data` one byte at a time, until it is all sent or the server closes."""
    for byte in data:
        if writer.is_closing():
            return
        writer.write(bytes([byte]))
        try:
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(every)


def _head(*lines: str) -> bytes:
    return ("\r\n".join(["POST /slack/events HTTP/1.1", "Host: bot", *lines]) + "\r\n\r\n").encode()


# ------------------------------------------------------------------------------ deadlines


async def test_a_client_stalled_in_its_headers_is_disconnected_at_the_header_deadline(stage):
    reader, writer = await _connect(stage)
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Ty")
    await writer.drain()
    # While it stalls, the server answers others.
    assert await _status(stage, "/healthz") == 200
    async with asyncio.timeout(PATIENCE):
        received = await _until_closed(reader)
    elapsed = loop.time() - started
    writer.close()
    assert received == b""  # closed without an answer: no request ever began
    assert elapsed >= HEADER_DEADLINE * 0.9, elapsed


async def test_headers_sent_a_byte_at_a_time_do_not_extend_the_header_deadline(stage):
    reader, writer = await _connect(stage)
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\n")
    # Then a header that never ends, one byte every 50 ms for up to PATIENCE seconds.
    drip = asyncio.create_task(_drip(writer, b"X-Pad: " + b"a" * 100, every=0.05))
    try:
        async with asyncio.timeout(PATIENCE):
            received = await _until_closed(reader)
    finally:
        drip.cancel()
        writer.close()
    elapsed = loop.time() - started
    assert received == b""
    assert HEADER_DEADLINE * 0.9 <= elapsed < HEADER_DEADLINE * 4, elapsed


async def test_a_body_sent_a_byte_at_a_time_is_cut_off_at_the_body_deadline(stage):
    reader, writer = await _connect(stage)
    loop = asyncio.get_running_loop()
    writer.write(_head("Content-Type: application/x-www-form-urlencoded", "Content-Length: 1000"))
    await writer.drain()
    started = loop.time()
    drip = asyncio.create_task(_drip(writer, b"a" * 100, every=0.05))  # 100 of 1000 bytes
    try:
        async with asyncio.timeout(PATIENCE):
            received = await _until_closed(reader)
    finally:
        drip.cancel()
        writer.close()
    elapsed = loop.time() - started
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert b"Connection: close" in received
    assert elapsed >= BODY_DEADLINE * 0.9, elapsed


async def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_time(
    database, database_url, clock
):
    async with serving(
        database, database_url, clock, http_keepalive_seconds=0.5, http_header_timeout_seconds=30
    ) as stage:
        reader, writer = await _connect(stage)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: bot\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(PATIENCE):
            status = await reader.readline()
            await reader.readuntil(b"\r\n\r\n")  # the rest of the head; the body is short
        answered = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(PATIENCE):
                await _until_closed(reader)
        finally:
            writer.close()
        idle = asyncio.get_running_loop().time() - answered
    assert status.startswith(b"HTTP/1.1 200 ")
    assert idle >= 0.5 * 0.9, idle  # kept alive for a while, then closed (not at the header one)


async def test_a_flood_of_stalled_connections_stays_under_the_cap_and_health_checks_answer(
    database, database_url, clock
):
    # A header deadline far away: only the connection cap can help here.
    async with serving(
        database, database_url, clock, http_header_timeout_seconds=60, http_max_connections=50
    ) as stage:
        assert stage.server is not None
        guard = stage.server.http_guard
        streams = []
        try:
            for _ in range(200):
                reader, writer = await _connect(stage)
                writer.write(b"GET /healthz HTTP/1.1\r\nHo")
                await writer.drain()
                streams.append((reader, writer))
            closed = [asyncio.create_task(_until_closed(reader)) for reader, _ in streams]
            async with asyncio.timeout(PATIENCE):
                for count, next_closed in enumerate(asyncio.as_completed(closed), start=1):
                    await next_closed
                    if count == 150:
                        break
            assert await _status(stage, "/healthz") == 200
            assert await _status(stage, "/readyz") == 200
            assert guard.open_connections <= 50
            # The longest waiting made room; the newest stalled ones are still open.
            assert all(task.done() for task in closed[:150])
            assert not any(task.done() for task in closed[-40:])
        finally:
            for task in closed:
                task.cancel()
            for _, writer in streams:
                writer.close()


# ------------------------------------------------------------------------------ body cap


async def test_a_declared_oversized_unsigned_body_gets_413_before_it_is_sent(stage):
    reader, writer = await _connect(stage)
    declared = _cap(stage) + 1
    writer.write(_head("Content-Type: application/json", f"Content-Length: {declared}"))
    await writer.drain()
    try:
        # Not one byte of the body was sent: waiting for it would end in 408 at the deadline.
        async with asyncio.timeout(PATIENCE):
            status = await reader.readline()
    finally:
        writer.close()
    assert status.startswith(b"HTTP/1.1 413 "), status


async def test_a_body_of_exactly_the_cap_is_read_and_judged_by_its_signature(stage):
    reader, writer = await _connect(stage)
    size = _cap(stage)
    writer.write(_head("Content-Type: application/json", f"Content-Length: {size}"))
    writer.write(b"x" * size)
    await writer.drain()
    try:
        async with asyncio.timeout(PATIENCE):
            status = await reader.readline()
    finally:
        writer.close()
    assert status.startswith(b"HTTP/1.1 401 "), status


async def test_an_undeclared_oversized_body_is_refused_once_it_passes_the_cap(stage):
    reader, writer = await _connect(stage)
    writer.write(_head("Content-Type: application/json", "Transfer-Encoding: chunked"))
    remaining = _cap(stage) + 1
    while remaining:  # the body goes past the cap, and never ends
        chunk = min(remaining, 64 * 1024)
        writer.write(f"{chunk:x}\r\n".encode() + b"x" * chunk + b"\r\n")
        remaining -= chunk
    await writer.drain()
    try:
        # Reading on to the end of the body would end in 408 at the body deadline.
        async with asyncio.timeout(PATIENCE):
            status = await reader.readline()
    finally:
        writer.close()
    assert status.startswith(b"HTTP/1.1 413 "), status


def _buttons(view: dict[str, Any], action_id: str) -> list[dict[str, Any]]:
    found = []
    for block in view.get("blocks", []):
        for element in [block.get("accessory") or {}, *block.get("elements", [])]:
            if element.get("action_id") == action_id:
                found.append(element)
    return found


async def test_a_signed_click_inside_a_long_ticket_shown_as_a_modal_still_works(stage):
    """The largest requests Slack sends the bot: a click in a modal echoes the whole view. A
    long ticket in Russian, opened from App Home, makes one past 256 KiB, under the cap."""
    await stage.open_ticket(CUSTOMER, title="Принтер", description="Не печатает.")
    customer = stage.user(CUSTOMER)
    dm = stage.dm(CUSTOMER)
    long_reply = ("Принтер снова не печатает, бумага замята. " * 80)[:3000]
    for _ in range(14):
        await stage.act(customer.slash_command(f"reply 1 {long_reply}", channel_id=dm))
    await stage.act(customer.opens_home())
    home = stage.fake.home_view(CUSTOMER.user_id)
    assert home is not None
    [show] = _buttons(home.to_api(), "ticket_show")
    await stage.act(customer.click("ticket_show", view=home.to_api(), value=show["value"]))
    shown = stage.fake.views_opened(CUSTOMER.user_id)[-1].to_api()
    edit = _buttons(shown, "reply_edit_open")[-1]

    click = customer.click("reply_edit_open", view=shown, value=edit["value"])
    size = len(click.body.encode())
    assert 256 * 1024 < size <= _cap(stage), size
    response = await stage.act(click)

    assert response.status == 200, response.body
    opened = stage.fake.views_opened(CUSTOMER.user_id)[-1]
    assert opened.callback_id == "reply_edit"
    assert long_reply.strip()[:100] in json.dumps(opened.to_api(), ensure_ascii=False)
