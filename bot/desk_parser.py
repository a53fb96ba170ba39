"""`/ticket company …` and `/ticket channel …` text -> typed commands. Pure: no Slack calls,
no database (bot.command_parser hands these two verbs over)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import ValidationFailed

_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_CHANNEL = re.compile(r"^<#([CGD][A-Z0-9]+)(?:\|[^>]*)?>$")

COMPANY_USAGE = (
    "`/ticket company add <name> [domain …]`, `company domain add|remove <name> <domain>`, "
    "`company list`, `company show <name>`, `company grant|revoke @user <name>`"
)
CHANNEL_USAGE = (
    "`/ticket channel link [#channel] <company>`, `channel unlink [#channel]`, "
    "`channel intake [#channel] <message|reaction|off> [emoji]`, `channel list`"
)


class DeskUsageError(ValidationFailed):
    """The text is not a company or channel command; the message says how to write it."""


@dataclass(frozen=True)
class CompanyAdd:
    name: str
    domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompanyDomain:
    name: str
    domain: str
    add: bool


@dataclass(frozen=True)
class CompanyList:
    pass


@dataclass(frozen=True)
class CompanyShow:
    name: str


@dataclass(frozen=True)
class CompanyCoverage:
    user_id: str
    name: str
    grant: bool


@dataclass(frozen=True)
class ChannelLinkCmd:
    company: str
    channel_id: str | None = None


@dataclass(frozen=True)
class ChannelUnlink:
    channel_id: str | None = None


@dataclass(frozen=True)
class ChannelIntake:
    intake: str
    reaction: str | None = None
    channel_id: str | None = None


@dataclass(frozen=True)
class ChannelList:
    pass


DeskCommand = (
    CompanyAdd
    | CompanyDomain
    | CompanyList
    | CompanyShow
    | CompanyCoverage
    | ChannelLinkCmd
    | ChannelUnlink
    | ChannelIntake
    | ChannelList
)


def _usage(message: str, usage: str) -> DeskUsageError:
    return DeskUsageError(f"{message} Usage: {usage}", field="command")


def _words(rest: str) -> list[str]:
    return rest.split()


def _looks_like_domain(word: str) -> bool:
    return "." in word and " " not in word and not word.endswith(".")


def parse_company(rest: str) -> DeskCommand:
    """`company add|domain|list|show|grant|revoke …`. A company's name may have spaces: in
    `add`, the words up to the first that looks like a domain (has a dot) are the name."""
    words = _words(rest)
    if not words:
        raise _usage("Say what to do with companies.", COMPANY_USAGE)
    action, args = words[0].lower(), words[1:]
    if action == "list" and not args:
        return CompanyList()
    if action == "add" and args:
        split = next((i for i, w in enumerate(args) if _looks_like_domain(w)), len(args))
        if split == 0:
            raise _usage("Give the company a name before its domains.", COMPANY_USAGE)
        return CompanyAdd(name=" ".join(args[:split]), domains=tuple(args[split:]))
    if action == "show" and args:
        return CompanyShow(name=" ".join(args))
    if action == "domain" and len(args) >= 3 and args[0].lower() in ("add", "remove"):
        return CompanyDomain(
            name=" ".join(args[1:-1]), domain=args[-1], add=args[0].lower() == "add"
        )
    if action in ("grant", "revoke") and len(args) >= 2:
        match = _MENTION.match(args[0])
        if match is None:
            raise _usage("Mention the person with @ (pick them from the list).", COMPANY_USAGE)
        return CompanyCoverage(
            user_id=match.group(1), name=" ".join(args[1:]), grant=action == "grant"
        )
    raise _usage(f"`company {action[:20]}` is not a company command.", COMPANY_USAGE)


def _channel_first(args: list[str]) -> tuple[str | None, list[str]]:
    if args and args[0].startswith("<#"):
        match = _CHANNEL.match(args[0])
        if match is None:
            raise _usage("Name the channel with # (pick it from the list).", CHANNEL_USAGE)
        return match.group(1), args[1:]
    if args and args[0].startswith("#"):
        raise _usage(
            f"Slack did not send {args[0][:40]} as a channel: pick it from the # list, or run "
            "the command inside the channel.",
            CHANNEL_USAGE,
        )
    return None, args


def parse_channel(rest: str) -> DeskCommand:
    """`channel link|unlink|intake|list …`; without a #channel, the channel where it is run."""
    words = _words(rest)
    if not words:
        raise _usage("Say what to do with customer channels.", CHANNEL_USAGE)
    action, args = words[0].lower(), words[1:]
    if action == "list" and not args:
        return ChannelList()
    channel, args = _channel_first(args)
    if action == "link" and args:
        return ChannelLinkCmd(company=" ".join(args), channel_id=channel)
    if action == "unlink" and not args:
        return ChannelUnlink(channel_id=channel)
    if action == "intake" and 1 <= len(args) <= 2:
        return ChannelIntake(
            intake=args[0].lower(), reaction=args[1] if len(args) == 2 else None, channel_id=channel
        )
    raise _usage(f"`channel {action[:20]}` needs other words.", CHANNEL_USAGE)
