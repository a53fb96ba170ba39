"""`/ticket company …` and `/ticket channel …`: admins manage companies and customer channels.
Each handler calls one core service and answers ephemerally (bot.listeners.commands
dispatches here)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import desk_parser as dp
from bot.blocks import companies as text
from bot.listeners.common import resolve_user
from bot.notify import slack_error_code
from bot.runtime import Runtime
from core import channels, companies
from core.errors import ValidationFailed
from core.results import UserView

log = logging.getLogger("bot.desk")


async def _say(respond: AsyncRespond, message: str) -> None:
    await respond(text=message, response_type="ephemeral", replace_original=False)


def reserved_channels(runtime: Runtime) -> set[str]:
    """The channels that carry internal notes and alerts: never customer channels."""
    settings = runtime.settings
    return {c for c in (settings.staff_channel_id, settings.manager_channel_id) if c}


async def _company_add(
    runtime: Runtime, cmd: dp.CompanyAdd, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    change = await companies.add_company(
        runtime.core, actor_id=actor.id, name=cmd.name, domains=cmd.domains
    )
    await _say(respond, text.company_added(change))


async def _company_domain(
    runtime: Runtime, cmd: dp.CompanyDomain, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    service = companies.add_domain if cmd.add else companies.remove_domain
    change = await service(runtime.core, actor_id=actor.id, company=cmd.name, domain=cmd.domain)
    await _say(respond, text.domain_changed(change, added=cmd.add))


async def _company_list(
    runtime: Runtime, cmd: dp.CompanyList, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    await _say(
        respond, text.company_list(await companies.list_companies(runtime.core, actor_id=actor.id))
    )


async def _company_show(
    runtime: Runtime, cmd: dp.CompanyShow, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    detail = await companies.show_company(runtime.core, actor_id=actor.id, company=cmd.name)
    await _say(respond, text.company_detail(detail))


async def _company_coverage(
    runtime: Runtime, cmd: dp.CompanyCoverage, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    target = await resolve_user(runtime, cmd.user_id)
    service = companies.grant_coverage if cmd.grant else companies.revoke_coverage
    changed = await service(runtime.core, actor_id=actor.id, company=cmd.name, user_id=target.id)
    runtime.wake_outbox()
    await _say(respond, text.coverage_changed(changed, cmd.name, granted=cmd.grant))


async def _channel_info(client: AsyncWebClient, channel_id: str) -> dict[str, Any]:
    """conversations.info for a channel to be linked: the bot must be a member."""
    if channel_id.startswith("D"):
        raise ValidationFailed(
            "A direct message cannot be a customer channel: run the command in the channel "
            "or name it (`/ticket channel link #channel <company>`).",
            field="channel",
        )
    try:
        info: dict[str, Any] = (await client.conversations_info(channel=channel_id))["channel"]
    except SlackApiError as error:
        if slack_error_code(error) in ("channel_not_found", "not_in_channel"):
            raise ValidationFailed(text.bot_not_in_channel(), field="channel") from None
        raise
    if not info.get("is_member"):
        raise ValidationFailed(text.bot_not_in_channel(), field="channel")
    if info.get("is_archived"):
        raise ValidationFailed("That channel is archived.", field="channel")
    return info


async def _channel_link(
    runtime: Runtime,
    cmd: dp.ChannelLinkCmd,
    *,
    actor: UserView,
    command: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    **_: Any,
) -> None:
    channel_id = cmd.channel_id or str(command.get("channel_id") or "")
    reserved = reserved_channels(runtime)
    if channel_id in reserved:  # (said before asking Slack about the channel)
        raise ValidationFailed(channels.RESERVED_REFUSAL, field="channel")
    info = await _channel_info(client, channel_id)
    link = await channels.link_channel(
        runtime.core,
        actor_id=actor.id,
        channel_id=channel_id,
        company=cmd.company,
        reserved=reserved,
    )
    shared = bool(info.get("is_ext_shared") or info.get("is_shared"))
    await _say(respond, text.channel_linked(link, shared=shared))


async def _channel_unlink(
    runtime: Runtime,
    cmd: dp.ChannelUnlink,
    *,
    actor: UserView,
    command: dict[str, Any],
    respond: AsyncRespond,
    **_: Any,
) -> None:
    channel_id = cmd.channel_id or str(command.get("channel_id") or "")
    link = await channels.unlink_channel(runtime.core, actor_id=actor.id, channel_id=channel_id)
    await _say(respond, text.channel_unlinked(link))


async def _channel_intake(
    runtime: Runtime,
    cmd: dp.ChannelIntake,
    *,
    actor: UserView,
    command: dict[str, Any],
    respond: AsyncRespond,
    **_: Any,
) -> None:
    channel_id = cmd.channel_id or str(command.get("channel_id") or "")
    link = await channels.set_intake(
        runtime.core,
        actor_id=actor.id,
        channel_id=channel_id,
        intake=cmd.intake,
        reaction=cmd.reaction,
    )
    await _say(respond, text.intake_changed(link))


async def _channel_list(
    runtime: Runtime, cmd: dp.ChannelList, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    await _say(
        respond, text.channel_list(await channels.list_links(runtime.core, actor_id=actor.id))
    )


HANDLERS: dict[type, Any] = {
    dp.CompanyAdd: _company_add,
    dp.CompanyDomain: _company_domain,
    dp.CompanyList: _company_list,
    dp.CompanyShow: _company_show,
    dp.CompanyCoverage: _company_coverage,
    dp.ChannelLinkCmd: _channel_link,
    dp.ChannelUnlink: _channel_unlink,
    dp.ChannelIntake: _channel_intake,
    dp.ChannelList: _channel_list,
}
