"""OAuth scopes, as Slack checks them: each Web API method needs its scopes, and for the
conversations.* methods the scope depends on the kind of conversation (public channel, private
channel, DM, group DM). The stand-in answers `missing_scope` (with `needed` and `provided`)
when the app was not installed with it, and the app is installed with the scopes of
app_manifest.yml, so a scope missing from the manifest fails a test instead of a production
install.

To teach the stand-in a new method, add one line to METHOD_SCOPES."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = Path(__file__).resolve().parents[1] / "app_manifest.yml"

PUBLIC = "public"
PRIVATE = "private"
IM = "im"
MPIM = "mpim"


def _per_kind(family: str) -> Mapping[str, str]:
    """`read` -> channels:read, groups:read, im:read, mpim:read by conversation kind."""
    return {
        PUBLIC: f"channels:{family}",
        PRIVATE: f"groups:{family}",
        IM: f"im:{family}",
        MPIM: f"mpim:{family}",
    }


@dataclass(frozen=True)
class ScopeRule:
    """What a method needs: every scope of `always`, plus, when it names a conversation the
    workspace knows, the scope for that conversation's kind."""

    always: frozenset[str] = frozenset()
    by_conversation: Mapping[str, str] = field(default_factory=dict)


def _rule(*always: str, per_kind: str | None = None) -> ScopeRule:
    return ScopeRule(
        always=frozenset(always), by_conversation=_per_kind(per_kind) if per_kind else {}
    )


# Methods not listed here need no scope (auth.test, api.test, views.*, chat.getPermalink);
# apps.connections.open takes the app-level token, not the bot's.
METHOD_SCOPES: dict[str, ScopeRule] = {
    "users.info": _rule("users:read"),
    "users.lookupByEmail": _rule("users:read.email"),
    "conversations.info": _rule(per_kind="read"),
    "conversations.members": _rule(per_kind="read"),
    "conversations.history": _rule(per_kind="history"),
    "conversations.replies": _rule(per_kind="history"),
    "conversations.open": _rule(),  # im:write or mpim:write, by the number of users
    "chat.postMessage": _rule("chat:write"),
    "chat.update": _rule("chat:write"),
    "chat.delete": _rule("chat:write"),
    "chat.postEphemeral": _rule("chat:write"),
    "reactions.add": _rule("reactions:write"),
    "reactions.remove": _rule("reactions:write"),
    "reactions.get": _rule("reactions:read"),
    "files.info": _rule("files:read"),
    "files.list": _rule("files:read"),
    "files.getUploadURLExternal": _rule("files:write"),
    "files.completeUploadExternal": _rule("files:write"),
    "files.delete": _rule("files:write"),
}

# The parameters that name the conversation a method works on.
CONVERSATION_PARAMS = ("channel", "channel_id")


def needed_scopes(
    method: str, params: Mapping[str, Any], kind_of: Callable[[str], str | None]
) -> list[str]:
    """The scopes `method` needs with these params; `kind_of(channel id)` says the kind of a
    known conversation (None: unknown, the method itself then answers channel_not_found)."""
    rule = METHOD_SCOPES.get(method)
    if rule is None:
        return []
    needed = sorted(rule.always)
    if method == "conversations.open" and not params.get("channel"):
        raw = params.get("users")
        users = raw if isinstance(raw, list) else str(raw or "").split(",")
        needed.append("mpim:write" if len([u for u in users if u.strip()]) > 1 else "im:write")
    if rule.by_conversation:
        for name in CONVERSATION_PARAMS:
            value = params.get(name)
            kind = kind_of(str(value)) if isinstance(value, str) and value else None
            if kind is not None:
                needed.append(rule.by_conversation[kind])
                break
    return needed


def missing_scopes(needed: Iterable[str], installed: frozenset[str]) -> list[str]:
    return [scope for scope in needed if scope not in installed]


def manifest_scopes(path: Path = MANIFEST) -> frozenset[str]:
    """The bot scopes of app_manifest.yml (`oauth_config.scopes.bot`), read without a YAML
    library (the demo runs without test dependencies): the list items under `bot:`."""
    scopes: list[str] = []
    section: list[str] = []
    in_list = False
    list_indent = -1
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        if in_list:
            if text.startswith("- ") and indent >= list_indent:
                scopes.append(text[2:].strip().strip("\"'"))
                continue
            in_list = False
        if text.endswith(":") and not text.startswith("- "):
            key = text[:-1]
            depth = indent // 2
            section = [*section[:depth], key]
            if section == ["oauth_config", "scopes", "bot"]:
                in_list, list_indent = True, indent
    if not scopes:
        raise ValueError(f"{path} declares no bot scopes (oauth_config.scopes.bot)")
    return frozenset(scopes)


def conversation_kind(channel: Any) -> str:
    """PUBLIC, PRIVATE, IM or MPIM for a devslack FakeChannel."""
    if channel.is_im:
        return IM
    if channel.is_mpim:
        return MPIM
    return PRIVATE if channel.is_private else PUBLIC


def scope_refusal(
    method: str, params: Mapping[str, Any], channels: Mapping[str, Any], installed: frozenset[str]
) -> dict[str, Any] | None:
    """Slack's `missing_scope` answer when the installed scopes lack what the call needs."""

    def kind_of(channel_id: str) -> str | None:
        channel = channels.get(channel_id)
        return conversation_kind(channel) if channel is not None else None

    missing = missing_scopes(needed_scopes(method, params, kind_of), installed)
    if not missing:
        return None
    return {
        "ok": False,
        "error": "missing_scope",
        "needed": ",".join(missing),
        "provided": ",".join(sorted(installed)),
    }
