"""Files: files.info, url_private downloads, and the upload flow that replaced files.upload
(files.getUploadURLExternal, a POST of the bytes to the URL it returns,
files.completeUploadExternal into a channel or thread).

As strict as Slack where the bot depends on it: downloads need the bot token as a Bearer
header (403 otherwise), the methods need `files:read` / `files:write`, a completed upload
shows as a message in its thread, visible to the channel's members. Tests create the files
people share (`share_files`) and take them away again (`withhold_file`, `delete_file`)."""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from devslack.base import FakeSlackBase
from devslack.model import JSONDict, RecordedCall, SlackApiFailure, StoredMessage

# How Slack shows a file the app may not have: Slack Connect organisations that disallow file
# sharing ("access_denied"), a free workspace's files past its limit ("hidden_by_limit"),
# a deleted file ("tombstone").
Access = Literal["visible", "access_denied", "hidden_by_limit", "tombstone"]
FILE_SCOPES = frozenset({"files:read", "files:write"})


@dataclass
class FakeFile:
    """A file in the workspace: its bytes, who shared it, and where it is shared."""

    id: str
    name: str
    title: str
    mimetype: str
    content: bytes
    user: str
    team: str
    created: int
    access: Access = "visible"
    deleted: bool = False
    # An upload started by files.getUploadURLExternal: the length announced, whether the
    # bytes arrived, whether it was completed (shared).
    expected_length: int | None = None
    uploaded: bool = True
    # channel id -> the messages (ts, thread_ts) that show the file there
    shares: dict[str, list[JSONDict]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def withheld(self) -> bool:
        return self.deleted or self.access != "visible"

    def to_api(self, root_url: str, *, public_channels: set[str] | None = None) -> JSONDict:
        """The `file` object of events, files.info and files.completeUploadExternal."""
        stamp = {"id": self.id, "created": self.created, "timestamp": self.created}
        if self.deleted or self.access == "tombstone":
            return {**stamp, "mode": "tombstone"}
        if self.access == "access_denied":
            return {**stamp, "file_access": "access_denied", "user": self.user}
        if self.access == "hidden_by_limit":
            return {**stamp, "mode": "hidden_by_limit", "name": self.name, "title": self.title}
        url = f"{root_url}/files-pri/{self.team}-{self.id}/{self.name}"
        public = public_channels or set()
        shares: JSONDict = {}
        for channel, places in self.shares.items():
            kind = "public" if channel in public else "private"
            shares.setdefault(kind, {})[channel] = copy.deepcopy(places)
        return {
            **stamp,
            "name": self.name,
            "title": self.title,
            "mimetype": self.mimetype,
            "filetype": self.name.rsplit(".", 1)[-1].lower() if "." in self.name else "binary",
            "user": self.user,
            "user_team": self.team,
            "editable": False,
            "size": self.size,
            "mode": "hosted",
            "is_external": False,
            "is_public": bool(public & set(self.shares)),
            "file_access": "visible",
            "url_private": url,
            "url_private_download": f"{url.rsplit('/', 1)[0]}/download/{self.name}",
            "permalink": f"{root_url}/files/{self.user}/{self.id}/{self.name}",
            "shares": shares,
            "channels": sorted(c for c in self.shares if c.startswith("C")),
            "groups": sorted(c for c in self.shares if c.startswith("G")),
            "ims": sorted(c for c in self.shares if c.startswith("D")),
        }


@dataclass(frozen=True)
class SharedFile:
    """A file a person shares in a message (for `share_files`)."""

    name: str
    content: bytes
    mimetype: str = "application/octet-stream"
    title: str | None = None
    access: Access = "visible"


class FilesMethods(FakeSlackBase):
    """files.* handlers, the download and upload URLs, and the test-side helpers."""

    _files: dict[str, FakeFile]
    _upload_keys: dict[str, str]
    # (channel, ts) -> every file the message ever showed (a deleted file stays counted seen)
    _shown: dict[tuple[str, str], list[str]]
    # The bot token's file scopes (a test removes one to see the bot cope with missing_scope).
    file_scopes: set[str]

    def _setup_files(self) -> None:
        """State and method handlers; called once by FakeSlack.__init__."""
        self._files = {}
        self._upload_keys = {}
        self._shown = {}
        self.file_scopes = set(FILE_SCOPES)
        self._handlers.update(
            {
                "files.info": self._files_info,
                "files.getUploadURLExternal": self._files_get_upload_url_external,
                "files.completeUploadExternal": self._files_complete_upload_external,
                "files.delete": self._files_delete,
            }
        )

    def _add_file_routes(self, app: web.Application) -> None:
        """url_private (and _download) and the upload URLs; called by FakeSlack.start."""
        app.router.add_get("/files-pri/{key}/{rest:.*}", self._handle_download)
        app.router.add_post("/upload/v1/{key}", self._handle_upload)

    # ----------------------------------------------------------------- test side

    def share_files(
        self,
        channel: str,
        user: str,
        files: Sequence[SharedFile],
        *,
        text: str = "",
        thread_ts: str | None = None,
    ) -> StoredMessage:
        """A person shares files in a message (subtype file_share), with optional text."""
        channel_id = self._resolve_channel(channel)
        created = [
            self._new_file(
                name=f.name,
                title=f.title or f.name,
                mimetype=f.mimetype,
                content=f.content,
                user=user,
                access=f.access,
            )
            for f in files
        ]
        message = self._store_message(
            channel_id,
            user=user,
            text=text,
            blocks=[],
            thread_ts=thread_ts,
            bot_id=None,
            via="user",
            subtype="file_share",
        )
        self._attach(message, created)
        return message

    def file(self, file_id: str) -> FakeFile:
        """A file by id (KeyError if unknown)."""
        return self._files[file_id]

    def known_file(self, file_id: str) -> FakeFile | None:
        """A file by id, None if the workspace never had it."""
        return self._files.get(file_id)

    def files_in(self, message: StoredMessage) -> list[FakeFile]:
        """The files a message shows (those the workspace knows)."""
        return [self._files[f["id"]] for f in message.files if f.get("id") in self._files]

    def files_ever_in(self, message: StoredMessage) -> list[FakeFile]:
        """Every file the message ever showed, deleted ones included: what people saw."""
        return [self._files[i] for i in self._shown.get((message.channel, message.ts), [])]

    def withhold_file(self, file_id: str, access: Access = "access_denied") -> None:
        """Slack stops letting the app have the file (Slack Connect policy, plan limit)."""
        self._files[file_id].access = access

    def delete_file(self, file_id: str) -> None:
        """The file is deleted: files.info says file_deleted, downloads answer 404."""
        self._files[file_id].deleted = True

    def _new_file(
        self,
        *,
        name: str,
        title: str,
        mimetype: str,
        content: bytes,
        user: str,
        access: Access = "visible",
        uploaded: bool = True,
        expected_length: int | None = None,
    ) -> FakeFile:
        file = FakeFile(
            id=self._new_id("F"),
            name=name,
            title=title,
            mimetype=mimetype,
            content=content,
            user=user,
            team=self.users[user].team_id if user in self.users else self.team_id,
            created=int(self.now()),
            access=access,
            uploaded=uploaded,
            expected_length=expected_length,
        )
        self._files[file.id] = file
        return file

    def _attach(self, message: StoredMessage, files: Sequence[FakeFile]) -> None:
        """Show `files` in `message` and record the share on each file."""
        for file in files:
            file.shares.setdefault(message.channel, []).append(
                {"ts": message.ts, "thread_ts": message.thread_ts or message.ts}
            )
            self._shown.setdefault((message.channel, message.ts), []).append(file.id)
        message.files = [
            file.to_api(self.root_url, public_channels=self._public()) for file in files
        ]

    def _public(self) -> set[str]:
        return {c.id for c in self.channels.values() if not c.is_private and not c.is_im}

    def _need_scope(self, scope: str) -> None:
        if scope not in self.file_scopes:
            raise SlackApiFailure("missing_scope")

    # ----------------------------------------------------------------- Web API methods

    async def _files_info(self, params: JSONDict) -> JSONDict:
        """files.info: the file, or file_not_found / file_deleted / access_denied."""
        self._need_scope("files:read")
        file = self._files.get(str(params.get("file") or ""))
        if file is None or not file.uploaded:
            raise SlackApiFailure("file_not_found")
        if file.deleted or file.access == "tombstone":
            raise SlackApiFailure("file_deleted")
        if file.access == "access_denied":
            raise SlackApiFailure("access_denied")
        return {"file": file.to_api(self.root_url, public_channels=self._public()), "comments": []}

    async def _files_get_upload_url_external(self, params: JSONDict) -> JSONDict:
        """files.getUploadURLExternal: a one-time URL to POST `length` bytes to."""
        self._need_scope("files:write")
        filename = self._require(params, "filename")
        try:
            length = int(self._require(params, "length"))
        except ValueError as error:
            raise SlackApiFailure("invalid_arguments") from error
        if length <= 0:
            raise SlackApiFailure("invalid_arguments")
        file = self._new_file(
            name=filename,
            title=filename,
            mimetype="application/octet-stream",
            content=b"",
            user=self.bot_user_id,
            uploaded=False,
            expected_length=length,
        )
        key = secrets.token_hex(12)
        self._upload_keys[key] = file.id
        return {"upload_url": f"{self.root_url}/upload/v1/{key}", "file_id": file.id}

    async def _files_complete_upload_external(self, params: JSONDict) -> JSONDict:
        """files.completeUploadExternal: share uploaded files, as one message in a channel or
        a thread (`channel_id`, `thread_ts`, `initial_comment`)."""
        self._need_scope("files:write")
        wanted = params.get("files")
        if isinstance(wanted, str):
            try:
                wanted = json.loads(wanted)
            except json.JSONDecodeError as error:
                raise SlackApiFailure("invalid_arguments") from error
        if not isinstance(wanted, list) or not wanted:
            raise SlackApiFailure("invalid_arguments")
        files: list[FakeFile] = []
        for item in wanted:
            file = self._files.get(str(item.get("id") if isinstance(item, dict) else ""))
            if file is None or file.user != self.bot_user_id:
                raise SlackApiFailure("file_not_found")
            if not file.uploaded:
                raise SlackApiFailure("file_upload_incomplete")
            if item.get("title"):
                file.title = str(item["title"])
            files.append(file)
        channel_param = params.get("channel_id")
        if channel_param:
            channel_id = self._resolve_channel(str(channel_param))
            channel = self.channels[channel_id]
            if channel.is_archived:
                raise SlackApiFailure("is_archived")
            if not channel.is_im and self.bot_user_id not in channel.members:
                raise SlackApiFailure("not_in_channel")
            thread_ts = str(params.get("thread_ts") or "") or None
            message = self._store_message(
                channel_id,
                user=self.bot_user_id,
                text=str(params.get("initial_comment") or ""),
                blocks=[],
                thread_ts=thread_ts,
                bot_id=self.bot_id,
                via="files.completeUploadExternal",
            )
            self._attach(message, files)
        public = self._public()
        return {"files": [{"id": f.id, "title": f.title} for f in files]} | (
            {"file_objects": [f.to_api(self.root_url, public_channels=public) for f in files]}
            if not channel_param
            else {}
        )

    async def _files_delete(self, params: JSONDict) -> JSONDict:
        """files.delete: the bot deletes a file it uploaded. The messages that showed it show
        it no more; one that carried nothing else is gone (it was seen all the same)."""
        self._need_scope("files:write")
        file = self._files.get(str(params.get("file") or ""))
        if file is None or not file.uploaded:
            raise SlackApiFailure("file_not_found")
        if file.deleted:
            raise SlackApiFailure("file_deleted")
        if file.user != self.bot_user_id:
            raise SlackApiFailure("cant_delete_file")
        file.deleted = True
        for channel, places in file.shares.items():
            for place in places:
                message = self._find_message(channel, str(place["ts"]))
                if message is None:
                    continue
                message.files = [f for f in message.files if f.get("id") != file.id]
                if not message.files and not message.text and not message.blocks:
                    message.deleted = True
                self._touch(message)
        return {}

    # ----------------------------------------------------------------- HTTP routes

    def _record(self, method: str, params: JSONDict, request: web.Request) -> RecordedCall:
        call = RecordedCall(method=method, params=params, time=self.now(), http_verb=request.method)
        auth = request.headers.get("Authorization", "")
        call.token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        self.calls.append(call)
        return call

    def _answer(
        self, call: RecordedCall, status: int, body: bytes = b"", **kw: Any
    ) -> web.Response:
        call.response = {"ok": status == 200, **({} if status == 200 else {"error": str(status)})}
        call.status = status
        call.answered.set()
        return web.Response(status=status, body=body, **kw)

    async def _handle_download(self, request: web.Request) -> web.Response:
        """url_private / url_private_download: the bytes, for the bot token only."""
        file_id = request.match_info["key"].rsplit("-", 1)[-1]
        call = self._record("files.download", {"file": file_id}, request)

        async def serve() -> web.Response:
            if call.token != self.bot_token or "files:read" not in self.file_scopes:
                return self._answer(call, 403, b"forbidden")
            file = self._files.get(file_id)
            if file is None or not file.uploaded or file.deleted or file.access == "tombstone":
                return self._answer(call, 404, b"not found")
            if file.withheld:
                return self._answer(call, 403, b"forbidden")
            return self._answer(call, 200, file.content, content_type=file.mimetype)

        fault = self._take_fault("files.download", call.params)
        if fault is not None:
            call.injected = True
            return await self._answer_fault(call, fault, serve)
        return await serve()

    def _unavailable(self, call: RecordedCall) -> Any:
        async def answer() -> web.Response:
            return self._answer(call, 503)

        return answer

    async def _handle_upload(self, request: web.Request) -> web.Response:
        """The URL files.getUploadURLExternal handed out: the bytes, raw or as multipart."""
        call = self._record("files.upload_url", {"key": request.match_info["key"]}, request)
        file_id = self._upload_keys.get(request.match_info["key"])
        file = self._files.get(file_id or "")
        if file is None or file.uploaded:
            return self._answer(call, 404, b"unknown upload")
        fault = self._take_fault("files.upload_url", {"file": file.id})
        if fault is not None:
            call.injected = True
            return await self._answer_fault(call, fault, self._unavailable(call))
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            part = form.get("file") or form.get("filename")
            content = part.file.read() if isinstance(part, web.FileField) else b""
        else:
            content = await request.read()
        if len(content) != file.expected_length:
            return self._answer(call, 400, b"length does not match the announced length")
        file.content = content
        file.uploaded = True
        call.params["file"] = file.id
        return self._answer(call, 200, f"OK - {len(content)}".encode())
