"""Small pieces the listeners share: resolving mentioned users, reading submitted forms."""

from __future__ import annotations

import logging
from typing import Any

from bot.runtime import Runtime
from core.errors import DomainError
from core.results import UserView

log = logging.getLogger("bot.listeners")


async def resolve_user(runtime: Runtime, slack_user_id: str) -> UserView:
    """The core user behind a Slack id picked in a form or mentioned in a command.

    Unlike the actor, the target may be deactivated: the core decides what that means."""
    try:
        return await runtime.identity.resolve(slack_user_id)
    except DomainError:
        from core import users

        user = await users.find_by_slack_id(runtime.core, slack_user_id=slack_user_id)
        if user is None:
            raise
        return user


def view_values(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """state.values of a submitted view, or {} when it is missing or malformed."""
    state = view.get("state") if isinstance(view, dict) else None
    values = state.get("values") if isinstance(state, dict) else None
    return values if isinstance(values, dict) else {}


def input_value(values: dict[str, dict[str, Any]], block_id: str, action_id: str) -> Any:
    """The value of one input, whatever its type (text, select, users select, radio)."""
    block = values.get(block_id)
    element = block.get(action_id) if isinstance(block, dict) else None
    if not isinstance(element, dict):
        return None
    if "value" in element:
        return element.get("value")
    if "selected_option" in element:
        option = element.get("selected_option")
        return option.get("value") if isinstance(option, dict) else None
    if "selected_user" in element:
        return element.get("selected_user")
    if "selected_conversation" in element:
        return element.get("selected_conversation")
    return None
