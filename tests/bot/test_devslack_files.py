"""The stand-in's files API is as strict as Slack where the bot depends on it: url_private only
for the bot token, the file scopes, the upload flow slack_sdk's files_upload_v2 drives, a
completed upload shown in its thread to the channel's members only, withheld and deleted
files."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from devslack.methods.files import SharedFile
from devslack.server import FakeSlack

MEMBER = "UMEMBER"
OUTSIDER = "UOUTSIDER"
CHANNEL = "CPRIVATE1"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as running:
        running.add_user(MEMBER, "Member")
        running.add_user(OUTSIDER, "Outsider")
        running.add_channel(CHANNEL, "private", is_private=True, members=[MEMBER])
        yield running


@pytest.fixture
async def client(fake: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    yield AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)


async def get(url: str, token: str | None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as answer:
        return answer.status, await answer.read()


async def test_url_private_needs_the_bot_token(fake, client):
    message = fake.share_files(CHANNEL, MEMBER, [SharedFile("a.txt", b"hello world")])
    file_id = message.files[0]["id"]
    info = await client.files_info(file=file_id)
    url = info["file"]["url_private"]
    assert info["file"]["size"] == 11 and info["file"]["name"] == "a.txt"
    assert await get(url, None) == (403, b"forbidden")
    assert (await get(url, "xoxb-someone-else"))[0] == 403
    assert await get(url, fake.bot_token) == (200, b"hello world")
    assert await get(info["file"]["url_private_download"], fake.bot_token) == (200, b"hello world")


async def test_the_file_scopes_are_required(fake, client):
    file_id = fake.share_files(CHANNEL, MEMBER, [SharedFile("a.txt", b"x" * 20)]).files[0]["id"]
    url = fake.file(file_id).to_api(fake.root_url)["url_private"]
    fake.file_scopes.discard("files:read")
    with pytest.raises(SlackApiError) as refused:
        await client.files_info(file=file_id)
    assert refused.value.response["error"] == "missing_scope"
    assert (await get(url, fake.bot_token))[0] == 403
    fake.file_scopes.discard("files:write")
    with pytest.raises(SlackApiError) as refused:
        await client.files_getUploadURLExternal(filename="b.txt", length=3)
    assert refused.value.response["error"] == "missing_scope"


async def test_files_upload_v2_posts_the_file_into_the_thread_for_members_only(fake, client):
    root = fake.post_as_user(CHANNEL, MEMBER, "the thread")
    await client.files_upload_v2(
        content=b"report body", filename="report.txt", channel=CHANNEL, thread_ts=root.ts
    )
    [shared] = [m for m in fake.replies(CHANNEL, root.ts) if m.files]
    assert shared.bot_id and shared.thread_ts == root.ts
    [file] = fake.files_in(shared)
    assert file.content == b"report body" and file.name == "report.txt"
    assert any(item.source is shared for item in fake.visible_to(MEMBER))
    assert not any(item.source is shared for item in fake.visible_to(OUTSIDER))
    shares = (await client.files_info(file=file.id))["file"]["shares"]
    assert shares["private"][CHANNEL][0]["thread_ts"] == root.ts


async def test_an_upload_needs_its_bytes_and_the_bot_in_the_channel(fake, client):
    fake.add_channel("COTHER0001", "other", is_private=True, members=[MEMBER], bot_member=False)
    target = await client.files_getUploadURLExternal(filename="x.bin", length=5)
    with pytest.raises(SlackApiError) as refused:
        await client.files_completeUploadExternal(
            files=[{"id": target["file_id"]}], channel_id=CHANNEL
        )
    assert refused.value.response["error"] == "file_upload_incomplete"
    async with aiohttp.ClientSession() as session:
        async with session.post(target["upload_url"], data=b"too long") as answer:
            assert answer.status == 400
        async with session.post(target["upload_url"], data=b"12345") as answer:
            assert answer.status == 200
    with pytest.raises(SlackApiError) as refused:
        await client.files_completeUploadExternal(
            files=[{"id": target["file_id"]}], channel_id="COTHER0001"
        )
    assert refused.value.response["error"] == "not_in_channel"


async def test_withheld_and_deleted_files_are_not_handed_out(fake, client):
    message = fake.share_files(
        CHANNEL,
        MEMBER,
        [
            SharedFile("connect.pdf", b"a" * 10, access="access_denied"),
            SharedFile("plan.pdf", b"b" * 10, access="hidden_by_limit"),
            SharedFile("gone.pdf", b"c" * 10),
        ],
    )
    denied, hidden, gone = (f["id"] for f in message.files)
    assert message.files[0] == {
        "id": denied,
        "created": message.files[0]["created"],
        "timestamp": message.files[0]["timestamp"],
        "file_access": "access_denied",
        "user": MEMBER,
    }
    with pytest.raises(SlackApiError) as refused:
        await client.files_info(file=denied)
    assert refused.value.response["error"] == "access_denied"
    info = await client.files_info(file=hidden)
    assert info["file"]["mode"] == "hidden_by_limit" and "url_private" not in info["file"]
    url = fake.file(gone).to_api(fake.root_url)["url_private"]
    fake.delete_file(gone)
    with pytest.raises(SlackApiError) as refused:
        await client.files_info(file=gone)
    assert refused.value.response["error"] == "file_deleted"
    assert (await get(url, fake.bot_token))[0] == 404


async def test_the_bot_deletes_only_its_own_files_and_their_messages_go(fake, client):
    theirs = fake.share_files(CHANNEL, MEMBER, [SharedFile("theirs.txt", b"t" * 10)])
    with pytest.raises(SlackApiError) as refused:
        await client.files_delete(file=theirs.files[0]["id"])
    assert refused.value.response["error"] == "cant_delete_file"
    root = fake.post_as_user(CHANNEL, MEMBER, "thread")
    await client.files_upload_v2(
        content=b"ours", filename="ours.txt", channel=CHANNEL, thread_ts=root.ts
    )
    [ours] = [m for m in fake.replies(CHANNEL, root.ts) if m.files]
    [file] = fake.files_in(ours)
    url = file.to_api(fake.root_url)["url_private"]
    await client.files_delete(file=file.id)
    assert ours.deleted and fake.files_in(ours) == [] and fake.files_ever_in(ours) == [file]
    assert (await get(url, fake.bot_token))[0] == 404
