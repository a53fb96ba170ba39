"""FakeSlack: a loopback stand-in for the Slack Web API, for end-to-end tests and the demo.

It keeps a small workspace model (users, channels, DMs, messages, ephemerals, views), records every
call, can inject failures (5xx, 429 with Retry-After, ok:false errors, timeouts), and can say what
each person was ever able to see, so tests can prove that internal text never reached a customer."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiohttp import web

from devslack.base import FakeSlackBase
from devslack.blockkit import (
    MAX_MESSAGE_BLOCKS,
    MAX_TEXT_LENGTH,
    MAX_VIEW_BLOCKS,
    validate_blocks,
    validate_view,
)
from devslack.faults import CallPredicate, Fault, FaultInjection, FaultRule, FaultStatus
from devslack.inspection import Inspection
from devslack.methods.apps import AppsMethods
from devslack.methods.auth import AuthMethods
from devslack.methods.chat import ChatMethods
from devslack.methods.conversations import ConversationsMethods
from devslack.methods.files import FilesMethods
from devslack.methods.reactions import ReactionsMethods
from devslack.methods.users import UsersMethods
from devslack.methods.views import ViewsMethods
from devslack.model import (
    ClockLike,
    EphemeralMessage,
    FakeChannel,
    FakeUser,
    FakeView,
    Handler,
    Intent,
    JSONDict,
    MessageVersion,
    RecordedCall,
    SlackApiFailure,
    StoredMessage,
    VisibleItem,
    _ResponseUrl,
    _Trigger,
)
from devslack.ratelimits import RateLimits
from devslack.response_url import RESPONSE_URL_MAX_USES, ResponseUrls
from devslack.scopes import manifest_scopes, scope_refusal
from devslack.visibility import Visibility
from devslack.workspace import WorkspaceModel

# The model, Block Kit checks and fault rules used to live here: keep importing them from here.
__all__ = [
    "MAX_MESSAGE_BLOCKS",
    "MAX_TEXT_LENGTH",
    "MAX_VIEW_BLOCKS",
    "RESPONSE_URL_MAX_USES",
    "CallPredicate",
    "ClockLike",
    "EphemeralMessage",
    "FakeChannel",
    "FakeSlack",
    "FakeUser",
    "FakeView",
    "Fault",
    "FaultRule",
    "FaultStatus",
    "Handler",
    "Intent",
    "JSONDict",
    "MessageVersion",
    "RecordedCall",
    "SlackApiFailure",
    "StoredMessage",
    "VisibleItem",
    "validate_blocks",
    "validate_view",
]

log = logging.getLogger("devslack")

# Params that Slack accepts as JSON-encoded strings in form bodies.
_JSON_PARAMS = frozenset({"blocks", "attachments", "metadata", "view", "unfurls"})


class FakeSlack(
    WorkspaceModel,
    FaultInjection,
    AuthMethods,
    AppsMethods,
    UsersMethods,
    ConversationsMethods,
    ChatMethods,
    ReactionsMethods,
    ViewsMethods,
    FilesMethods,
    ResponseUrls,
    Inspection,
    Visibility,
    FakeSlackBase,
):
    """A fake Slack Web API on 127.0.0.1 with a workspace model, call log and fault injection."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-fake-bot-token",  # noqa: S107 - a fake's well-known token
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        bot_name: str = "ticketbot",
        team_id: str = "T1",
        team_domain: str = "fake-workspace",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] | ClockLike | None = None,
        trigger_ttl: float | None = None,
        latency: float = 0.0,
        scopes: Iterable[str] | None = None,
    ) -> None:
        self.bot_token = bot_token
        # The bot scopes the app is installed with: app_manifest.yml's unless a test says
        # otherwise (devslack.scopes); a call without its scope answers missing_scope.
        self.scopes = frozenset(scopes) if scopes is not None else manifest_scopes()
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self.team_domain = team_domain
        self.host = host
        self.port = port
        self.trigger_ttl = trigger_ttl
        self.latency = latency
        self._clock = clock

        self.calls: list[RecordedCall] = []
        self.users: dict[str, FakeUser] = {}
        self.channels: dict[str, FakeChannel] = {}
        self._messages: dict[str, list[StoredMessage]] = {}
        self._ephemerals: list[EphemeralMessage] = []
        self._views: dict[str, FakeView] = {}
        self.intents: list[Intent] = []
        self.confirmed_public: list[Intent] = []
        self._home_views: dict[str, str] = {}
        self._dm_by_user: dict[str, str] = {}
        self._mpims: dict[frozenset[str], str] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._faults: list[FaultRule] = []
        self.rate_limits = RateLimits()  # Slack's rate limits: off until enabled
        self._ids = itertools.count(1)
        self._seq = 0
        self._last_ts_us = 0

        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._handlers: dict[str, Handler] = {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "conversations.info": self._conversations_info,
            "conversations.open": self._conversations_open,
            "conversations.members": self._conversations_members,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
            "views.publish": self._views_publish,
            "apps.connections.open": self._apps_connections_open,
        }
        self._setup_files()
        # Socket Mode: the app-level token, and the envelopes the bot acknowledged.
        self.app_token = "xapp-1-fake-app-token"
        self.socket_acks: list[JSONDict] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_ready = asyncio.Event()
        self.add_user(bot_user_id, bot_name, is_bot=True, team_id=team_id)

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> str:
        """Start serving; return the Web API base URL (http://127.0.0.1:PORT/api/)."""
        if self._runner is not None:
            return self.api_url
        app = web.Application(client_max_size=64 * 1024 * 1024)  # file uploads up to 64 MB
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/hooks/response/{key}", self._handle_response_url)
        app.router.add_get("/socket", self._handle_socket)
        self._add_file_routes(app)
        self._stopping = asyncio.Event()
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                self.port = int(address[1])
                break
        return self.api_url

    async def stop(self) -> None:
        """Stop serving, waking any request parked by an injected timeout."""
        if self._stopping is not None:
            self._stopping.set()
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def root_url(self) -> str:
        """http://127.0.0.1:PORT (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The base_url to give AsyncWebClient."""
        return f"{self.root_url}/api/"

    # ----------------------------------------------------------------- HTTP plumbing

    async def _read_params(self, request: web.Request) -> JSONDict:
        """Merge query string and body (form or JSON) into one params dict."""
        params: JSONDict = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise SlackApiFailure("invalid_json") from exc
                if isinstance(body, dict):
                    params.update(body)
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        for key in _JSON_PARAMS:
            value = params.get(key)
            if isinstance(value, str) and value.strip():
                try:
                    params[key] = json.loads(value)
                except json.JSONDecodeError as exc:
                    code = "invalid_blocks_format" if key == "blocks" else "invalid_arguments"
                    raise SlackApiFailure(code) from exc
        return params

    def _token_of(self, request: web.Request, params: JSONDict) -> str | None:
        """The bearer token, from the Authorization header or a `token` param."""
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        token = params.pop("token", None)
        return str(token) if token is not None else None

    async def _handle_api(self, request: web.Request) -> web.Response:
        """Entry point for /api/{method}: record, inject faults, authenticate, dispatch."""
        method = request.match_info["method"]
        call = RecordedCall(method=method, params={}, time=self.now(), http_verb=request.method)
        self.calls.append(call)
        try:
            params = await self._read_params(request)
        except SlackApiFailure as failure:
            return self._finish(call, {"ok": False, "error": failure.error}, 200)
        call.token = self._token_of(request, params)
        params.pop("token", None)
        call.params = params
        if self.latency:
            await self._park(self.latency)

        fault = self._take_fault(method, params)
        if fault is not None:
            call.injected = True
            return await self._answer_fault(call, fault, lambda: self._dispatch(call))
        retry_after = self.rate_limits.check(method, params)
        if retry_after is not None:
            return self._finish(
                call,
                {"ok": False, "error": "ratelimited"},
                429,
                {"Retry-After": f"{retry_after:g}"},
            )
        return await self._dispatch(call)

    async def _dispatch(self, call: RecordedCall) -> web.Response:
        """Authenticate and run the method handler."""
        handler = self._handlers.get(call.method)
        if handler is None:
            return self._finish(call, {"ok": False, "error": "unknown_method"}, 404)
        if call.method != "api.test":
            if not call.token:
                return self._finish(call, {"ok": False, "error": "not_authed"}, 200)
            expected = self.app_token if call.method == "apps.connections.open" else self.bot_token
            if call.token != expected:
                return self._finish(call, {"ok": False, "error": "invalid_auth"}, 200)
            refusal = scope_refusal(call.method, call.params, self.channels, self.scopes)
            if refusal is not None and call.method != "apps.connections.open":
                return self._finish(call, refusal, 200)
        try:
            body = await handler(call.params)
        except SlackApiFailure as failure:
            body = {"ok": False, "error": failure.error}
            if failure.messages:
                body["response_metadata"] = {"messages": failure.messages}
            return self._finish(call, body, failure.status)
        return self._finish(call, {"ok": True, **body}, 200)

    async def _answer_fault(
        self,
        call: RecordedCall,
        fault: Fault,
        process: Callable[[], Awaitable[web.Response]],
    ) -> web.Response:
        """Produce the injected failure for `call`."""
        log.debug("fakeslack: injecting %s into %s", fault.describe(), call.method)
        if fault.status == "timeout":
            await self._park(fault.delay)
            if fault.then_process:
                response = await process()
                call.injected = True
                return response
            return self._finish(call, {"ok": False, "error": "fake_timeout"}, 504)
        status = int(fault.status)
        headers: dict[str, str] = {}
        if status == 429:
            headers["Retry-After"] = str(fault.retry_after)
            body: JSONDict = {"ok": False, "error": fault.error or "ratelimited"}
        elif status >= 500:
            body = {"ok": False, "error": fault.error or "internal_error"}
        else:
            body = {"ok": False, "error": fault.error or "fatal_error"}
        return self._finish(call, body, status, headers)

    def _finish(
        self,
        call: RecordedCall,
        body: JSONDict,
        status: int,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        """Record the answer on the call and build the HTTP response."""
        call.response = body
        call.status = status
        call.answered.set()
        return web.json_response(body, status=status, headers=dict(headers or {}))
