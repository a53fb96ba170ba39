"""What each person could ever see, so tests can prove internal text never reached a customer."""

from __future__ import annotations

from devslack.base import FakeSlackBase
from devslack.model import (
    EphemeralMessage,
    FakeView,
    StoredMessage,
    VisibleItem,
    _view_visible_text,
)
from devslack.render import raw_text, render_message_as_text, render_view_as_text, visible_text


class Visibility(FakeSlackBase):
    """Everything visible to a person (every version), publicly, or rendered as text."""

    def _message_items(self, msg: StoredMessage, include_history: bool) -> list[VisibleItem]:
        """Visible items for every version of a message."""
        items = [
            VisibleItem(
                kind="message",
                text_content=msg.text_content,
                raw_content=raw_text([msg.text, msg.blocks, msg.attachments, msg.metadata]),
                channel=msg.channel,
                ts=msg.ts,
                thread_ts=msg.thread_ts,
                deleted=msg.deleted,
                source=msg,
            )
        ]
        if include_history:
            for old in msg.history:
                items.append(
                    VisibleItem(
                        kind="message",
                        text_content=visible_text([old.text, old.blocks, old.attachments]),
                        raw_content=raw_text([old.text, old.blocks, old.attachments]),
                        channel=msg.channel,
                        ts=msg.ts,
                        thread_ts=msg.thread_ts,
                        deleted=msg.deleted,
                        is_current=False,
                        source=msg,
                    )
                )
        return items

    def _view_items(self, view: FakeView, include_history: bool) -> list[VisibleItem]:
        """Visible items for every version of a view."""
        versions = view.history if include_history else [view.view]
        return [
            VisibleItem(
                kind=view.kind,
                text_content=_view_visible_text(version),
                raw_content=raw_text(version),
                view_id=view.id,
                is_current=version is versions[-1],
                source=view,
            )
            for version in versions
        ]

    def visible_to(
        self, user_id: str, *, include_history: bool = True, include_public: bool = True
    ) -> list[VisibleItem]:
        """Everything `user_id` could ever have seen: channel/DM messages and replies (every
        version, deleted ones too), ephemerals sent to them, and views opened/published for them.
        Messages of a channel while it was public (or shared with another organisation) count
        for everyone unless include_public=False."""
        items: list[VisibleItem] = []
        for channel_id, msgs in self._messages.items():
            channel = self.channels.get(channel_id)
            if channel is None:
                continue
            member = user_id in channel.members
            for msg in msgs:
                if member or (include_public and channel.exposes(msg)):
                    items.extend(self._message_items(msg, include_history))
        for eph in self._ephemerals:
            if eph.user != user_id:
                continue
            items.append(
                VisibleItem(
                    kind="ephemeral",
                    text_content=eph.text_content,
                    raw_content=raw_text([eph.text, eph.blocks, eph.attachments]),
                    channel=eph.channel,
                    ts=eph.message_ts,
                    thread_ts=eph.thread_ts,
                    deleted=eph.deleted,
                    source=eph,
                )
            )
            if include_history:
                items.extend(
                    VisibleItem(
                        kind="ephemeral",
                        text_content=visible_text([old.text, old.blocks, old.attachments]),
                        raw_content=raw_text([old.text, old.blocks, old.attachments]),
                        channel=eph.channel,
                        ts=eph.message_ts,
                        deleted=eph.deleted,
                        is_current=False,
                        source=eph,
                    )
                    for old in eph.history
                )
        for view in self._views.values():
            if view.user == user_id:
                items.extend(self._view_items(view, include_history))
        return items

    def visible_publicly(self, *, include_history: bool = True) -> list[VisibleItem]:
        """Every message that was ever in a non-private channel: one that is public or shared
        with another organisation now, or was at some time after the message was posted."""
        items: list[VisibleItem] = []
        for channel_id, msgs in self._messages.items():
            channel = self.channels.get(channel_id)
            if channel is None:
                continue
            for msg in msgs:
                if channel.exposes(msg):
                    items.extend(self._message_items(msg, include_history))
        return items

    def find_visible(self, user_id: str, needle: str, *, raw: bool = False) -> list[VisibleItem]:
        """Items visible to `user_id` containing `needle` (in raw payload strings if raw=True)."""
        return [
            item
            for item in self.visible_to(user_id)
            if needle in (item.raw_content if raw else item.text_content)
        ]

    def display_names(self) -> dict[str, str]:
        """Id → name map for users and channels, for render_* functions."""
        names = {u.id: u.name for u in self.users.values()}
        names.update({c.id: c.name for c in self.channels.values() if not c.is_im})
        return names

    def _where(self, channel_id: str, viewer: str) -> str:
        """How a channel is labelled for `viewer`: #name, 'DM with <other party>', or group DM."""
        channel = self.channels.get(channel_id)
        if channel is None:
            return channel_id
        if channel.is_im:
            other = self.bot_user_id if viewer != self.bot_user_id else str(channel.im_user)
            return f"DM with {self.users[other].name if other in self.users else other}"
        return "group DM" if channel.is_mpim else f"#{channel.name}"

    def render_for(self, user_id: str, *, since: int = 0) -> str:
        """What `user_id` currently sees, as text, oldest change first.

        Only items created or changed after the `since` bookmark (from `mark()`) are shown;
        deleted messages and closed modals are left out."""
        names = self.display_names()
        entries: list[tuple[int, str]] = []
        for item in self.visible_to(user_id, include_history=False):
            source = item.source
            if item.deleted or getattr(source, "seq", 0) <= since:
                continue
            if isinstance(source, StoredMessage):
                author = names.get(source.user, source.user)
                where = self._where(source.channel, user_id)
                thread = " (thread reply)" if source.is_reply else ""
                edited = " (edited)" if source.edited else ""
                head = f"-- {where}{thread} | {author}{edited}"
                body = render_message_as_text(source.text, source.blocks, names)
            elif isinstance(source, EphemeralMessage):
                head = f"-- {self._where(source.channel, user_id)} | only visible to you"
                body = render_message_as_text(source.text, source.blocks, names)
            elif isinstance(source, FakeView):
                if source.closed:
                    continue
                head = "-- App Home" if source.kind == "home" else f"-- modal {source.id}"
                body = render_view_as_text(source.view, names)
            else:
                continue
            indented = "\n".join("   " + line for line in body.splitlines())
            entries.append((getattr(source, "seq", 0), f"{head}\n{indented}"))
        return "\n".join(text for _, text in sorted(entries, key=lambda e: e[0]))
