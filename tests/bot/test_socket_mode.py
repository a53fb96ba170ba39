"""Socket Mode: with SLACK_APP_TOKEN the same app receives Slack's payloads over a WebSocket,
acknowledges each envelope, and answers exactly as in HTTP mode."""

from __future__ import annotations

import asyncio

from core.context import Core
from devslack.stage import AGENT, CUSTOMER, STAFF_CHANNEL, Stage
from tests.conftest import settings_for, truncate_all


async def _until(predicate):
    """Poll the stand-in's records: the WebSocket round trip has no event to wait on."""
    async with asyncio.timeout(10):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_slash_command_over_socket_mode_is_acked_and_answered(database, database_url, clock):
    core = Core(db=database, settings=settings_for(database_url), clock=clock)
    stage = Stage(database_url=database_url, clock=clock, core=core)
    stage.settings_overrides = {"slack_app_token": stage.fake.app_token}
    try:
        async with stage:
            await stage.server.connect_socket_mode()
            await stage.fake.wait_for_socket()
            opens = stage.fake.calls_to("apps.connections.open")
            assert opens and opens[-1].token == stage.fake.app_token
            payload = {
                "command": "/ticket",
                "text": "help",
                "user_id": AGENT.user_id,
                "channel_id": STAFF_CHANNEL,
                "team_id": "T1",
                "trigger_id": stage.fake.issue_trigger(AGENT.user_id),
                "response_url": stage.fake.issue_response_url(AGENT.user_id, STAFF_CHANNEL),
            }
            envelope = await stage.fake.send_over_socket("slash_commands", payload)
            await _until(
                lambda: any(a.get("envelope_id") == envelope for a in stage.fake.socket_acks)
            )
            await _until(lambda: stage.fake.ephemerals(AGENT.user_id))
            await stage.settle()
            assert "/ticket new" in stage.fake.ephemerals(AGENT.user_id)[-1].text_content
            # Customers' help comes through the same path and does not list staff commands.
            payload.update(
                user_id=CUSTOMER.user_id,
                trigger_id=stage.fake.issue_trigger(CUSTOMER.user_id),
                response_url=stage.fake.issue_response_url(CUSTOMER.user_id, STAFF_CHANNEL),
            )
            await stage.fake.send_over_socket("slash_commands", payload)
            await _until(lambda: stage.fake.ephemerals(CUSTOMER.user_id))
            assert "note" not in stage.fake.ephemerals(CUSTOMER.user_id)[-1].text_content.split()
    finally:
        await truncate_all(database)
