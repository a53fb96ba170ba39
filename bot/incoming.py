"""A message event as the desk takes it: whether a person wrote it, and what they wrote.

Only people are answered or recorded: Slackbot (`USLACKBOT`), apps and bots (a `bot_id`,
an `app_id`, a `bot_profile`, subtype `bot_message`) and Slack's system messages (joins,
topic changes, …) never are; the subtypes a person's own message may carry are listed in
PERSON_SUBTYPES. What they wrote is read by bot.markup with the names of the people and
channels it mentions looked up (bot.directory)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot import markup

if TYPE_CHECKING:
    from bot.runtime import Runtime

SLACKBOT = "USLACKBOT"
# A person's own message: plain, sent to the channel too from a thread, with files, or /me.
PERSON_SUBTYPES = frozenset({None, "thread_broadcast", "file_share", "me_message"})


def written_by_person(message: Mapping[str, Any]) -> bool:
    """Whether `message` (an event, or the `message` of a message_changed) is a person's own
    message: not Slackbot's, an app's or a bot's, nor a system message."""
    if message.get("subtype") not in PERSON_SUBTYPES:
        return False
    if message.get("bot_id") or message.get("app_id") or message.get("bot_profile"):
        return False
    user = message.get("user")
    return isinstance(user, str) and bool(user) and user != SLACKBOT


async def read_typed(runtime: Runtime, text: str) -> str:
    """Text typed after `/ticket` (which the manifest has Slack escape like a message's text:
    `<@U…|name>`, `<#C…|name>`, links, `&amp;`) as the person saw it, names looked up."""
    references = markup.text_references(text)
    names = None
    if references.users or references.channels:
        names = await runtime.directory.names(references)
    return markup.translate(text, names)


async def read_message(runtime: Runtime, message: Mapping[str, Any]) -> str:
    """What the person wrote in `message`, as they saw it (bot.markup.message_text), with the
    people and channels it mentions named."""
    references = markup.message_references(message)
    names = None
    if references.users or references.channels:
        names = await runtime.directory.names(references)
    return markup.message_text(message, names)
