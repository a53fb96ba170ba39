"""`respond()` over the bot's shared HTTP session.

bolt's own respond() opens a new HTTP session, so a new connection (and, to Slack, a new TLS
handshake), for every answer. Listeners get this one instead (set by the actor middleware): the
same call, over the keep-alive connection pool the Web API client uses too."""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.context.respond.internals import _build_message
from slack_sdk.webhook import WebhookResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient


class PooledRespond(AsyncRespond):
    def __init__(
        self, *, response_url: str | None, session: aiohttp.ClientSession, timeout: float
    ) -> None:
        super().__init__(response_url=response_url)
        self._session = session
        self._timeout = timeout

    async def __call__(  # type: ignore[override]
        self, text: str | dict[str, Any] = "", **fields: Any
    ) -> WebhookResponse:
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        message = (
            _build_message(**text)
            if isinstance(text, dict)
            else _build_message(text=text, **fields)
        )
        client = AsyncWebhookClient(
            url=self.response_url, session=self._session, timeout=int(self._timeout)
        )
        return await client.send_dict(message)
