"""The response_url endpoint, served the way hooks.slack.com serves it."""

from __future__ import annotations

import contextlib
import copy
import json

from aiohttp import web

from devslack.base import FakeSlackBase, _as_bool
from devslack.model import (
    EphemeralMessage,
    JSONDict,
    MessageVersion,
    RecordedCall,
    SlackApiFailure,
    _ResponseUrl,
)

RESPONSE_URL_MAX_USES = 5


class ResponseUrls(FakeSlackBase):
    """POSTs to a response_url: ephemeral, in_channel, replace or delete original."""

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        """Serve a response_url POST the way hooks.slack.com does (plain-text 'ok')."""
        key = request.match_info["key"]
        call = RecordedCall(method="response_url", params={}, time=self.now())
        self.calls.append(call)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            return self._finish_text(call, "invalid_payload", 400)
        for name in ("blocks", "attachments"):
            if isinstance(body.get(name), str):
                with contextlib.suppress(json.JSONDecodeError):
                    body[name] = json.loads(body[name])
        call.params = body
        fault = self._take_fault("response_url", body)
        if fault is not None:
            call.injected = True
            return await self._answer_fault(call, fault, lambda: self._respond(call, key))
        return await self._respond(call, key)

    async def _respond(self, call: RecordedCall, key: str) -> web.Response:
        """Apply a response_url payload: ephemeral, in_channel, replace or delete original."""
        target = self._response_urls.get(key)
        if target is None:
            return self._finish_text(call, "no_service", 404)
        if target.uses >= RESPONSE_URL_MAX_USES:
            return self._finish_text(call, "expired_url", 404)
        target.uses += 1
        body = call.params
        try:
            self._check_content(body, require=not _as_bool(body.get("delete_original")))
            self._apply_response(target, body)
        except SlackApiFailure as failure:
            return self._finish_text(call, failure.error, 400)
        return self._finish_text(call, "ok", 200)

    def _apply_response(self, target: _ResponseUrl, body: JSONDict) -> None:
        """Mutate the workspace as a response_url payload asks."""
        original_ephemeral = self._find_ephemeral(target) if target.ephemeral else None
        original_message = (
            self._find_message(target.channel, target.message_ts)
            if target.message_ts and not target.ephemeral
            else None
        )
        if _as_bool(body.get("delete_original")):
            if original_ephemeral is not None:
                original_ephemeral.deleted = True
                self._touch(original_ephemeral)
            elif original_message is not None:
                original_message.deleted = True
                self._touch(original_message)
            else:
                raise SlackApiFailure("message_not_found")
            return
        if _as_bool(body.get("replace_original")):
            if original_ephemeral is not None:
                original_ephemeral.history.append(
                    MessageVersion(
                        text=original_ephemeral.text,
                        blocks=copy.deepcopy(original_ephemeral.blocks),
                        attachments=copy.deepcopy(original_ephemeral.attachments),
                        replaced_at=self.next_ts(),
                    )
                )
                original_ephemeral.text = str(body.get("text") or "")
                original_ephemeral.blocks = copy.deepcopy(list(body.get("blocks") or []))
                self._touch(original_ephemeral)
                return
            if original_message is not None:
                self._edit_message(original_message, {"text": "", "blocks": [], **body})
                return
        if body.get("response_type") == "in_channel":
            self._store_bot_message(target.channel, body, "response_url")
            return
        ephemeral = EphemeralMessage(
            channel=target.channel,
            user=target.user,
            text=str(body.get("text") or ""),
            blocks=copy.deepcopy(list(body.get("blocks") or [])),
            attachments=copy.deepcopy(list(body.get("attachments") or [])),
            message_ts=self.next_ts(),
            thread_ts=str(body["thread_ts"]) if body.get("thread_ts") else None,
            via="response_url",
        )
        self._ephemerals.append(ephemeral)
        self._touch(ephemeral)

    def _find_ephemeral(self, target: _ResponseUrl) -> EphemeralMessage | None:
        """The ephemeral a response_url's interaction came from."""
        for eph in reversed(self._ephemerals):
            same_place = eph.user == target.user and eph.channel == target.channel
            if same_place and target.message_ts in (None, eph.message_ts):
                return eph
        return None

    def _finish_text(self, call: RecordedCall, text: str, status: int) -> web.Response:
        """Record and answer a response_url call with plain text, as Slack does."""
        call.response = {"ok": status == 200, **({} if status == 200 else {"error": text})}
        call.status = status
        call.answered.set()
        return web.Response(text=text, status=status, content_type="text/plain")
