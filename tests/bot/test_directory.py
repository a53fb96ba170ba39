"""Names for mentions (bot.directory) and who counts as a person (bot.incoming), against the
stand-in Slack: looked up once, shared by concurrent messages, neutral when Slack cannot say."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.directory import SlackDirectory, display_name_of
from bot.incoming import written_by_person
from bot.markup import References, message_text
from devslack import FakeSlack

TOKEN = "xoxb-test-token"
ALICE = "U0ALICE001"
GONE = "U0GONE0001"
PRIVATE = "C0PRIV0001"
HIDDEN = "C0HIDDEN01"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = FakeSlack(bot_token=TOKEN)
    server.add_user(ALICE, "alice", real_name="Alice Smith", display_name="Ali")
    server.add_channel(PRIVATE, "support-triage", is_private=True)
    server.add_channel(HIDDEN, "secret", is_private=True, bot_member=False)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def directory(fake: FakeSlack) -> AsyncIterator[SlackDirectory]:
    client = AsyncWebClient(token=TOKEN, base_url=fake.api_url)
    yield SlackDirectory(client, lookup_timeout=0.5)
    if client.session is not None:
        await client.session.close()


def refs(users: set[str] = frozenset(), channels: set[str] = frozenset()) -> References:
    return References(frozenset(users), frozenset(channels))


async def test_names_are_looked_up_once_and_shared_by_concurrent_messages(
    fake: FakeSlack, directory: SlackDirectory
) -> None:
    answers = await asyncio.gather(*(directory.names(refs({ALICE}, {PRIVATE})) for _ in range(5)))
    assert all(
        a.users == {ALICE: "Ali"} and a.channels == {PRIVATE: "support-triage"} for a in answers
    )
    await directory.names(refs({ALICE}, {PRIVATE}))
    assert len(fake.calls_to("users.info")) == 1
    assert len(fake.calls_to("conversations.info")) == 1


async def test_unknown_people_and_hidden_channels_read_as_neutral_words(
    fake: FakeSlack, directory: SlackDirectory
) -> None:
    names = await directory.names(refs({GONE}, {HIDDEN}))
    text = message_text({"text": f"<@{GONE}> in <#{HIDDEN}>"}, names)
    assert text == "@user in #channel"
    await directory.names(refs({GONE}, {HIDDEN}))  # "not found" is remembered
    assert len(fake.calls_to("users.info")) == 1


async def test_a_slack_outage_leaves_the_name_unknown_and_is_asked_again_later(
    fake: FakeSlack, directory: SlackDirectory
) -> None:
    fake.fail_next("users.info", status=500)
    assert (await directory.names(refs({ALICE}))).users == {}
    assert (await directory.names(refs({ALICE}))).users == {ALICE: "Ali"}


def test_display_name_prefers_the_profile_display_name() -> None:
    assert display_name_of({"profile": {"display_name": "", "real_name": "Bo  Li"}}) == "Bo Li"
    assert display_name_of({"name": "handle"}) == "handle"
    assert display_name_of({}) is None


@pytest.mark.parametrize(
    ("message", "person"),
    [
        ({"user": ALICE, "text": "hi"}, True),
        ({"user": ALICE, "subtype": "thread_broadcast"}, True),
        ({"user": ALICE, "subtype": "file_share"}, True),
        ({"user": "USLACKBOT", "text": "You have been removed from #x"}, False),
        ({"subtype": "bot_message", "bot_id": "B1", "text": "build failed"}, False),
        ({"user": "U0APPBOT01", "bot_id": "B1", "app_id": "A1"}, False),
        ({"user": "U0APPBOT01", "bot_profile": {"id": "B1"}}, False),
        ({"user": ALICE, "subtype": "channel_join"}, False),
        ({"user": ALICE, "subtype": "message_replied"}, False),
        ({"text": "no author"}, False),
    ],
)
def test_only_peoples_own_messages_are_taken(message: dict[str, object], person: bool) -> None:
    assert written_by_person(message) is person


async def test_the_name_cache_stays_bounded(
    fake: FakeSlack, directory: SlackDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.directory.CACHE_LIMIT", 3)
    people = [f"U0MANY{i:04d}" for i in range(7)]
    for index, person in enumerate(people):
        fake.add_user(person, f"person{index}")
        await directory.names(refs({person}))
    assert len(directory._cache) <= 3
    # still answers, looking up again what it no longer holds
    assert (await directory.names(refs({people[0]}))).users == {people[0]: "person0"}
