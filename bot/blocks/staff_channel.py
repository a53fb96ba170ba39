"""What the staff channel guard says: the reason /readyz gives, and the managers' notice when
the staff channel stops being safe for internal notes (and when it is safe again)."""

from __future__ import annotations

from bot.blocks.kit import FALLBACK_TEXT, Json, context, section
from bot.blocks.text import escape, single_line, truncate
from core.surfaces import SurfaceProblem

Message = tuple[str, list[Json]]

_WHAT = {
    SurfaceProblem.PUBLIC: "is *public*: anyone in the workspace can read it and join it",
    SurfaceProblem.SHARED: "is *shared with another organisation* (Slack Connect)",
    SurfaceProblem.ARCHIVED: "is *archived*",
    SurfaceProblem.NOT_A_MEMBER: (
        "*no longer has ticketbot as a member* (the bot was removed, or the channel was deleted)"
    ),
    SurfaceProblem.UNVERIFIED: "*cannot be checked*: Slack refused to describe it",
}

_WAS = {
    SurfaceProblem.PUBLIC: "it was public",
    SurfaceProblem.SHARED: "it was shared with another organisation",
    SurfaceProblem.ARCHIVED: "it was archived",
    SurfaceProblem.NOT_A_MEMBER: "the bot was not a member",
    SurfaceProblem.UNVERIFIED: "it could not be checked",
}

_TO_DO = {
    SurfaceProblem.PUBLIC: (
        "Make it private again (channel details → Settings → Change to a private channel), "
        "or create a new private channel, invite the bot and set STAFF_CHANNEL_ID to its id."
    ),
    SurfaceProblem.SHARED: (
        "Stop sharing it with the other organisation (channel details → Settings), or move the "
        "desk to a new private channel and set STAFF_CHANNEL_ID to its id."
    ),
    SurfaceProblem.ARCHIVED: (
        "Unarchive it, or set STAFF_CHANNEL_ID to another private channel with the bot in it."
    ),
    SurfaceProblem.NOT_A_MEMBER: "Invite the bot back: type `/invite @ticketbot` in the channel.",
    SurfaceProblem.UNVERIFIED: (
        "Check that the channel exists and that the app has the scopes of app_manifest.yml "
        "(reinstall it if not); `python -m bot check` shows what Slack answers."
    ),
}


def _channel(channel_id: str, name: str | None) -> str:
    label = f"#{single_line(name)}" if name else channel_id
    return f"<#{channel_id}|{escape(truncate(label, 80))}>"


def _plain_channel(channel_id: str, name: str | None) -> str:
    return f"#{single_line(name)} ({channel_id})" if name else channel_id


def readiness_reason(
    problem: SurfaceProblem, *, channel_id: str, channel_name: str | None, detail: str | None
) -> str:
    """One line for /readyz: which channel, what is wrong, and that staff messages wait."""
    what = _WHAT[problem].replace("*", "")
    said = f" ({detail})" if detail else ""
    where = _plain_channel(channel_id, channel_name)
    return f"STAFF_CHANNEL_ID {where} {what}{said}; staff messages are held"


def unsafe_notice(
    problem: SurfaceProblem, *, channel_id: str, channel_name: str | None, detail: str | None
) -> Message:
    """The managers' notice: the staff channel is not safe for internal notes any more."""
    said = f" (Slack said: `{escape(truncate(single_line(detail), 200))}`)" if detail else ""
    blocks = [
        section(
            f":rotating_light: *Staff channel not safe*: {_channel(channel_id, channel_name)} "
            f"{_WHAT[problem]}{said}."
        ),
        section(
            "Internal notes are posted there, so ticketbot has *stopped posting to it*: new "
            "ticket cards, card updates, notes and staff thread posts are held, not lost, and "
            "go out in order once the channel is private again. Customers keep getting their "
            "replies meanwhile. Notes posted there earlier can be read by whoever can now see "
            "the channel."
        ),
        context(f"*What to do:* {_TO_DO[problem]}"),
    ]
    plain_what = _WHAT[problem].replace("*", "")
    text = (
        f"Staff channel not safe: {_plain_channel(channel_id, channel_name)} {plain_what}. "
        "Staff messages are held until it is private again."
    )
    return truncate(text, FALLBACK_TEXT), blocks


def safe_again_notice(
    *, channel_id: str, channel_name: str | None, previous: SurfaceProblem | None
) -> Message:
    """The managers' notice: the staff channel is safe again and held messages go out."""
    was = f" ({_WAS[previous]})" if previous is not None else ""
    blocks = [
        section(
            f":white_check_mark: *Staff channel safe again*: {_channel(channel_id, channel_name)} "
            f"is private, not shared and has ticketbot in it{was}."
        ),
        context("The held ticket cards, notes and staff thread posts are being posted now."),
    ]
    text = f"Staff channel safe again: {_plain_channel(channel_id, channel_name)}"
    return truncate(text, FALLBACK_TEXT), blocks
