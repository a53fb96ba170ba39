"""People of other organisations (Slack Connect): served in customer channels as customers
of the channel's company, refused politely everywhere else (bot.identity refuses them first;
this module decides where they may be served after all, by channel id and never by name)."""

from __future__ import annotations

from typing import Any

from bot.identity import OtherWorkspace, RequestProfile
from bot.runtime import Runtime
from core import channels
from core.errors import Forbidden
from core.results import UserView


async def resolve_in_channel(
    runtime: Runtime,
    slack_user_id: str,
    channel_id: str | None,
    *,
    form: bool = False,
    hint: RequestProfile | None = None,
) -> UserView:
    """The core user behind a Slack id who acts in `channel_id` (None: no channel, e.g. a
    modal). A member of this workspace resolves as always; someone of another organisation
    is provisioned as a customer of the channel's company when the channel is linked, is
    recognised in a form (`form`) once served in a customer channel, and refused otherwise."""
    try:
        return await runtime.identity.resolve(slack_user_id, hint=hint)
    except OtherWorkspace as refusal:
        if form:
            known = await channels.guest_known(runtime.core, slack_user_id=slack_user_id)
            if known is not None and known.is_active:
                return known
        return await _guest(runtime, refusal.profile, slack_user_id, channel_id)


async def _guest(
    runtime: Runtime, profile: dict[str, Any], slack_user_id: str, channel_id: str | None
) -> UserView:
    info = profile.get("profile") or {}
    name = (
        info.get("display_name")
        or info.get("real_name")
        or profile.get("real_name")
        or profile.get("name")
        or slack_user_id
    )
    user = await channels.provision_guest(
        runtime.core,
        channel_id=channel_id,
        slack_user_id=slack_user_id,
        team_id=str(profile.get("team_id") or ""),
        display_name=str(name),
        email=info.get("email"),
        chat_account_deleted=bool(profile.get("deleted", False)),
    )
    if not user.is_active:
        raise Forbidden("Your account is not active in the support desk.")
    return user
