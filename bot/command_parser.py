"""`/ticket` text -> a typed command. Pure: no Slack calls, no database."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot import desk_parser
from core.enums import Priority, Role, Status
from core.errors import ValidationFailed
from core.tickets import TicketFilters, UserRef
from core.validation import parse_enum

# Slack sends mentions escaped (manifest: should_escape true) as <@U123|name> or <@U123>.
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_NUMBER = re.compile(r"^#?(\d{1,12})$")
_FILTER_KEYS = ("status", "priority", "assignee", "category", "customer")
_NOBODY = ("none", "nobody", "unassigned")


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class New:
    title: str = ""


@dataclass(frozen=True)
class ListTickets:
    filters: TicketFilters = field(default_factory=TicketFilters)
    page: int = 1


@dataclass(frozen=True)
class Mine:
    page: int = 1


@dataclass(frozen=True)
class Show:
    number: int


@dataclass(frozen=True)
class Search:
    text: str
    page: int = 1


@dataclass(frozen=True)
class Assign:
    number: int
    user_id: str


@dataclass(frozen=True)
class SetStatus:
    number: int
    status: Status
    reason: str | None


@dataclass(frozen=True)
class Reply:
    number: int
    text: str
    internal: bool


@dataclass(frozen=True)
class Delete:
    number: int


@dataclass(frozen=True)
class SetRole:
    user_id: str
    role: Role


@dataclass(frozen=True)
class CategoryAdd:
    name: str


@dataclass(frozen=True)
class CategoryList:
    pass


@dataclass(frozen=True)
class CategoryDeactivate:
    name: str


@dataclass(frozen=True)
class SetPriority:
    number: int
    priority: Priority


@dataclass(frozen=True)
class SetActive:
    user_id: str
    active: bool


@dataclass(frozen=True)
class Sla:
    pass


@dataclass(frozen=True)
class AuditLog:
    number: int
    page: int = 1


Command = (
    Help
    | New
    | ListTickets
    | Mine
    | Show
    | Search
    | Assign
    | SetStatus
    | Reply
    | Delete
    | SetRole
    | CategoryAdd
    | CategoryList
    | CategoryDeactivate
    | SetPriority
    | SetActive
    | Sla
    | AuditLog
    | desk_parser.DeskCommand
)


class UsageError(ValidationFailed):
    """The text is not a /ticket command; the message says how to write it."""


def parse(text: str) -> Command:
    """Parse the text after `/ticket`. Raises UsageError with the right usage line."""
    text = (text or "").strip()
    if not text:
        return Help()
    verb, _, rest = text.partition(" ")
    verb = verb.lower()
    rest = rest.strip()
    handler = _VERBS.get(verb)
    if handler is None:
        raise UsageError(f"Unknown command `{_clip(verb)}`. Try `/ticket help`.")
    return handler(rest)


def _clip(text: str) -> str:
    return text[:30].replace("`", "'")


def _number(token: str, usage: str) -> int:
    match = _NUMBER.match(token.strip())
    if not match:
        raise UsageError(f"Expected a ticket number like 42 or #42. Usage: `{usage}`")
    return int(match.group(1))


def _mention(token: str, usage: str) -> str:
    match = _MENTION.match(token.strip())
    if not match:
        raise UsageError(f"Mention a user with @ (pick them from the list). Usage: `{usage}`")
    return match.group(1)


def _split_number(rest: str, usage: str) -> tuple[int, str]:
    head, _, tail = rest.partition(" ")
    if not head:
        raise UsageError(f"Usage: `{usage}`")
    return _number(head, usage), tail.strip()


def _page_suffix(words: list[str]) -> tuple[list[str], int]:
    """Take a trailing `page N` off a word list."""
    if len(words) >= 2 and words[-2].lower() == "page":
        if not words[-1].isdigit() or int(words[-1]) < 1:
            raise UsageError("`page` takes a number of 1 or more, e.g. `page 2`.")
        return words[:-2], int(words[-1])
    return words, 1


def _help(rest: str) -> Command:
    return Help()


def _new(rest: str) -> Command:
    return New(title=rest)


def _list(rest: str) -> Command:
    usage = (
        "/ticket list [status:open] [priority:high] [assignee:@user|me|none] "
        "[customer:@user] [category:name] [page N]"
    )
    words, page = _page_suffix(rest.split())
    values: dict[str, Any] = {}
    for word in words:
        key, sep, value = word.partition(":")
        key = key.lower()
        if not sep or key not in _FILTER_KEYS or not value:
            raise UsageError(f"Unknown filter `{_clip(word)}`. Usage: `{usage}`")
        if key == "status":
            values["status"] = parse_enum(Status, value, field="status")
        elif key == "priority":
            values["priority"] = parse_enum(Priority, value, field="priority")
        elif key == "category":
            values["category_name"] = value
        elif key == "assignee" and value.lower() in _NOBODY:
            values["unassigned"], values["assignee"] = True, None
        elif key == "assignee":
            values["unassigned"], values["assignee"] = False, _person(value, "assignee:@user")
        else:
            values["customer"] = _person(value, "customer:@user")
    return ListTickets(filters=TicketFilters(**values), page=page)


def _person(token: str, usage: str) -> UserRef:
    """`me` or a mention, as the core's reference to a person (it resolves it)."""
    if token.lower() == "me":
        return UserRef(me=True)
    return UserRef(chat_user_id=_mention(token, usage))


def _mine(rest: str) -> Command:
    _, page = _page_suffix(rest.split())
    return Mine(page=page)


def _show(rest: str) -> Command:
    return Show(number=_number(rest, "/ticket show 42"))


def _search(rest: str) -> Command:
    words, page = _page_suffix(rest.split())
    if not words:
        raise UsageError("Usage: `/ticket search <at least 3 characters>`")
    return Search(text=" ".join(words), page=page)


def _assign(rest: str) -> Command:
    usage = "/ticket assign 42 @user"
    number, tail = _split_number(rest, usage)
    return Assign(number=number, user_id=_mention(tail, usage))


def _status(rest: str) -> Command:
    usage = "/ticket status 42 <open|in_progress|waiting_on_customer|resolved|closed> [reason]"
    number, tail = _split_number(rest, usage)
    status_word, _, reason = tail.partition(" ")
    if not status_word:
        raise UsageError(f"Usage: `{usage}`")
    status = parse_enum(Status, status_word, field="status")
    return SetStatus(number=number, status=status, reason=reason.strip() or None)


def _close(rest: str) -> Command:
    number, reason = _split_number(rest, "/ticket close 42 [reason]")
    return SetStatus(number=number, status=Status.CLOSED, reason=reason or None)


def _reopen(rest: str) -> Command:
    number, reason = _split_number(rest, "/ticket reopen 42 [reason]")
    return SetStatus(number=number, status=Status.OPEN, reason=reason or None)


def _reply(rest: str) -> Command:
    number, text = _split_number(rest, "/ticket reply 42 <message>")
    if not text:
        raise UsageError("Usage: `/ticket reply 42 <message>`")
    return Reply(number=number, text=text, internal=False)


def _note(rest: str) -> Command:
    number, text = _split_number(rest, "/ticket note 42 <internal note>")
    if not text:
        raise UsageError("Usage: `/ticket note 42 <internal note>`")
    return Reply(number=number, text=text, internal=True)


def _delete(rest: str) -> Command:
    return Delete(number=_number(rest, "/ticket delete 42"))


def _role(rest: str) -> Command:
    usage = "/ticket role @user <customer|corporate|agent|manager|admin>"
    who, _, role = rest.partition(" ")
    if not who or not role.strip():
        raise UsageError(f"Usage: `{usage}`")
    return SetRole(user_id=_mention(who, usage), role=parse_enum(Role, role, field="role"))


def _category(rest: str) -> Command:
    action, _, name = rest.partition(" ")
    action = action.lower()
    if action == "list" and not name.strip():
        return CategoryList()
    if action == "add" and name.strip():
        return CategoryAdd(name=name.strip())
    if action == "deactivate" and name.strip():
        return CategoryDeactivate(name=name.strip())
    raise UsageError(
        "Usage: `/ticket category add <name>`, `/ticket category deactivate <name>` or "
        "`/ticket category list`"
    )


def _priority(rest: str) -> Command:
    usage = "/ticket priority 42 <low|medium|high|urgent>"
    number, level = _split_number(rest, usage)
    if not level or " " in level:
        raise UsageError(f"Usage: `{usage}`")
    return SetPriority(number=number, priority=parse_enum(Priority, level, field="priority"))


def _user(rest: str) -> Command:
    usage = "/ticket user deactivate @user` or `/ticket user activate @user"
    action, _, who = rest.partition(" ")
    action = action.lower()
    if action not in ("activate", "deactivate") or not who.strip():
        raise UsageError(f"Usage: `{usage}`")
    return SetActive(user_id=_mention(who, usage), active=action == "activate")


def _sla(rest: str) -> Command:
    return Sla()


def _audit(rest: str) -> Command:
    usage = "/ticket audit 42 [page N]"
    words, page = _page_suffix(rest.split())
    if len(words) != 1:
        raise UsageError(f"Usage: `{usage}`")
    return AuditLog(number=_number(words[0], usage), page=page)


_VERBS = {
    "help": _help,
    "new": _new,
    "open": _new,
    "list": _list,
    "mine": _mine,
    "show": _show,
    "search": _search,
    "assign": _assign,
    "status": _status,
    "close": _close,
    "reopen": _reopen,
    "reply": _reply,
    "note": _note,
    "delete": _delete,
    "role": _role,
    "category": _category,
    "priority": _priority,
    "user": _user,
    "sla": _sla,
    "audit": _audit,
    "company": desk_parser.parse_company,
    "channel": desk_parser.parse_channel,
}
