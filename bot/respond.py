"""The bot's shared HTTP session: `respond()` and Web API calls over one connection pool.

bolt's own respond() and slack_sdk's client (without a session) open a new HTTP session, so a
new connection and, to Slack, a new TLS handshake, for every call. Listeners get PooledRespond
instead (set by the actor middleware), and the Web API client gets the shared session through
ClientSessionView, which keeps the client's own `timeout` in charge of each call."""

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


class ClientSessionView:
    """The shared session as the Web API client uses it. slack_sdk leaves a running session's
    own timeout in charge; this passes the client's current `timeout` with every request."""

    def __init__(self, session: aiohttp.ClientSession, client: Any) -> None:
        self._session = session
        self._client = client

    @property
    def closed(self) -> bool:
        return self._session.closed

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", aiohttp.ClientTimeout(total=self._client.timeout))
        return self._session.request(method, url, **kwargs)

    async def close(self) -> None:
        await self._session.close()
