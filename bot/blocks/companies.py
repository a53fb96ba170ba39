"""What admins are told about companies and customer channels (mrkdwn text; pure)."""

from __future__ import annotations

from bot.blocks.text import escape, single_line, user_mention
from core.channels import LinkView
from core.companies import CompanyDetail, DomainChange
from core.results import CompanyView, UserView

INTAKE_LABELS = {
    "message": "every new message from a customer opens a ticket",
    "reaction": "a ticket opens when someone reacts with :{reaction}:",
    "off": "takes no requests (the threads of its tickets still work)",
}


def _name(text: str) -> str:
    return escape(single_line(text))


def _domains(company: CompanyView) -> str:
    return ", ".join(company.domains) if company.domains else "no email domain"


def company_added(change: DomainChange) -> str:
    company = change.company
    text = f":white_check_mark: Company *{_name(company.name)}* added ({_domains(company)})."
    return text + _matched(change)


def _matched(change: DomainChange) -> str:
    if not change.matched:
        return ""
    people = "person" if change.matched == 1 else "people"
    return f" {change.matched} {people} without a company joined it by their email domain."


def domain_changed(change: DomainChange, *, added: bool) -> str:
    verb = "now has" if added else "no longer has"
    text = (
        f":white_check_mark: *{_name(change.company.name)}* {verb} the domain {change.domain} "
        f"(domains: {_domains(change.company)})."
    )
    if not added:
        text += " Its people stay in the company; new people from that domain are not matched."
    return text + _matched(change)


def company_list(companies: list[CompanyView]) -> str:
    if not companies:
        return "No companies yet: `/ticket company add <name> [domain …]` adds one."
    lines = ["*Companies*"]
    lines += [f"• *{_name(c.name)}* — {_domains(c)}" for c in companies]
    return "\n".join(lines)


def company_detail(detail: CompanyDetail) -> str:
    company = detail.company
    channels = ", ".join(f"<#{c}>" for c in detail.channel_ids) or "none"
    staff = ", ".join(user_mention(u.slack_user_id, name=u.display_name) for u in detail.corporate)
    numbers = ", ".join(f"#{n}" for n in detail.open_numbers)
    more = " …" if detail.open_tickets > len(detail.open_numbers) else ""
    tickets = f"{detail.open_tickets}" + (f" ({numbers}{more})" if numbers else "")
    return "\n".join(
        [
            f"*{_name(company.name)}*",
            f"*Domains:* {_domains(company)}",
            f"*Customer channels:* {channels}",
            f"*Corporate staff:* {staff or 'none'}",
            f"*Open tickets:* {tickets}",
        ]
    )


def coverage_changed(user: UserView, company: str, *, granted: bool) -> str:
    who = user_mention(user.slack_user_id, name=user.display_name)
    if granted:
        return f":white_check_mark: {who} now covers *{_name(company)}*: they see its tickets."
    return (
        f":white_check_mark: {who} no longer covers *{_name(company)}*; its tickets assigned "
        "to them were unassigned."
    )


def intake_label(link: LinkView) -> str:
    return INTAKE_LABELS[link.intake].format(reaction=link.reaction)


def channel_linked(link: LinkView, *, shared: bool) -> str:
    text = (
        f":white_check_mark: <#{link.channel_id}> is now a customer channel of "
        f"*{_name(link.company_name)}*: {intake_label(link)}. Its customers see the tickets "
        "raised there; staff discuss them in the staff channel, and answers go back to the "
        "message's thread."
    )
    if shared:
        text += (
            " It is shared with another organisation (Slack Connect): its people are served "
            f"here as customers of {_name(link.company_name)}."
        )
    return text


def channel_unlinked(link: LinkView) -> str:
    return (
        f":white_check_mark: <#{link.channel_id}> is no longer a customer channel of "
        f"*{_name(link.company_name)}*. Its tickets stay as they are."
    )


def intake_changed(link: LinkView) -> str:
    return f":white_check_mark: <#{link.channel_id}>: {intake_label(link)}."


def channel_list(links: list[LinkView]) -> str:
    if not links:
        return "No customer channels yet: run `/ticket channel link <company>` in one."
    lines = ["*Customer channels*"]
    lines += [
        f"• <#{link.channel_id}> — *{_name(link.company_name)}*: {intake_label(link)}"
        for link in links
    ]
    return "\n".join(lines)


def bot_not_in_channel() -> str:
    """Said as a refusal (escaped as plain text: no channel mention)."""
    return (
        "I am not a member of that channel, so I cannot read its requests. Invite me there "
        "first (type `/invite @ticketbot` in the channel), then link it again."
    )
