"""Setting up and changing the fake workspace, as tests and the demo do from outside Slack."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from devslack.base import FakeSlackBase
from devslack.model import (
    FakeChannel,
    FakeUser,
    Intent,
    JSONDict,
    StoredMessage,
    _ResponseUrl,
    _Trigger,
)


class WorkspaceModel(FakeSlackBase):
    """Users, channels and DMs; what people do in Slack's client; what they meant."""

    # ----------------------------------------------------------------- workspace model

    def add_user(
        self,
        user_id: str,
        name: str,
        email: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
        team_id: str | None = None,
        *,
        real_name: str | None = None,
        display_name: str | None = None,
    ) -> FakeUser:
        """Register (or replace) a workspace user."""
        user = FakeUser(
            id=user_id,
            name=name,
            real_name=real_name or name,
            email=email,
            display_name=display_name if display_name is not None else name,
            is_bot=is_bot,
            deleted=deleted,
            team_id=team_id or self.team_id,
        )
        self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str,
        is_private: bool = True,
        members: Iterable[str] = (),
        bot_member: bool = True,
    ) -> FakeChannel:
        """Register a channel; the bot is a member unless bot_member=False."""
        member_set = set(members)
        if bot_member:
            member_set.add(self.bot_user_id)
        else:
            member_set.discard(self.bot_user_id)
        channel = FakeChannel(id=channel_id, name=name, is_private=is_private, members=member_set)
        self.channels[channel_id] = channel
        self._messages.setdefault(channel_id, [])
        return channel

    def add_member(self, channel_id: str, user_id: str) -> None:
        """Add a user to a channel."""
        self.channels[channel_id].members.add(user_id)

    def remove_member(self, channel_id: str, user_id: str) -> None:
        """Remove a user from a channel."""
        self.channels[channel_id].members.discard(user_id)

    # Changes people make to a channel in Slack's client. Each returns the events Slack sends
    # the app about it, in Slack's documented shapes (wrap each in event_callback_body).

    def archive_channel(self, channel_id: str, *, by: str = "") -> list[JSONDict]:
        """Archive a channel: posting to it then fails with is_archived."""
        channel = self.channels[channel_id]
        channel.is_archived = True
        kind = "group_archive" if channel.is_private else "channel_archive"
        return [{"type": kind, "channel": channel_id, "user": by, "event_ts": self.next_ts()}]

    def unarchive_channel(self, channel_id: str, *, by: str = "") -> list[JSONDict]:
        """Unarchive a channel."""
        channel = self.channels[channel_id]
        channel.is_archived = False
        kind = "group_unarchive" if channel.is_private else "channel_unarchive"
        return [{"type": kind, "channel": channel_id, "user": by, "event_ts": self.next_ts()}]

    def make_public(self, channel_id: str, *, by: str) -> list[JSONDict]:
        """A private channel is made public: from now on everyone in the workspace can read it,
        its history included. Slack announces it by a channel_convert_to_public message."""
        channel = self._convertible(channel_id, private=True)
        channel.is_private = False
        notice = self._store_message(
            channel_id,
            user=by,
            text="made this channel *public*. Any member in this workspace can see and join it.",
            blocks=[],
            thread_ts=None,
            bot_id=None,
            via="system",
            subtype="channel_convert_to_public",
        )
        return [self.message_event(notice)]

    def make_private(self, channel_id: str, *, by: str) -> list[JSONDict]:
        """A public channel is made private again (announced by a channel_convert_to_private
        message); what was posted while it was public stays counted as seen."""
        channel = self._convertible(channel_id, private=False)
        channel.is_private = True
        self._end_exposure(channel)
        notice = self._store_message(
            channel_id,
            user=by,
            text="made this channel *private*. Now, it can only be viewed or joined by invitation.",
            blocks=[],
            thread_ts=None,
            bot_id=None,
            via="system",
            subtype="channel_convert_to_private",
        )
        return [self.message_event(notice)]

    def share_channel(self, channel_id: str, *, team_id: str) -> list[JSONDict]:
        """The channel is shared with another organisation (Slack Connect)."""
        channel = self.channels[channel_id]
        channel.shared_with.add(team_id)
        event = {"type": "channel_shared", "connected_team_id": team_id, "channel": channel_id}
        return [{**event, "event_ts": self.next_ts()}]

    def unshare_channel(self, channel_id: str, *, team_id: str) -> list[JSONDict]:
        """The other organisation is disconnected from the channel."""
        channel = self.channels[channel_id]
        channel.shared_with.discard(team_id)
        if not channel.is_exposed:
            self._end_exposure(channel)
        return [
            {
                "type": "channel_unshared",
                "previously_connected_team_id": team_id,
                "channel": channel_id,
                "is_ext_shared": bool(channel.shared_with),
                "event_ts": self.next_ts(),
            }
        ]

    def kick(self, channel_id: str, user_id: str, *, by: str) -> list[JSONDict]:
        """`by` removes `user_id` from the channel. For the bot, Slack sends it channel_left
        (group_left for a private channel) and member_left_channel."""
        channel = self.channels[channel_id]
        channel.members.discard(user_id)
        events: list[JSONDict] = []
        if user_id == self.bot_user_id:
            kind = "group_left" if channel.is_private else "channel_left"
            events.append(
                {"type": kind, "channel": channel_id, "actor_id": by, "event_ts": self.next_ts()}
            )
        events.append(
            {
                "type": "member_left_channel",
                "user": user_id,
                "channel": channel_id,
                "channel_type": "G" if channel.is_private else "C",
                "team": self.users[user_id].team_id if user_id in self.users else self.team_id,
                "event_ts": self.next_ts(),
            }
        )
        return events

    def invite(self, channel_id: str, user_id: str, *, by: str) -> list[JSONDict]:
        """`by` invites `user_id` into the channel (member_joined_channel)."""
        channel = self.channels[channel_id]
        channel.members.add(user_id)
        return [
            {
                "type": "member_joined_channel",
                "user": user_id,
                "channel": channel_id,
                "channel_type": "G" if channel.is_private else "C",
                "team": self.users[user_id].team_id if user_id in self.users else self.team_id,
                "inviter": by,
                "event_ts": self.next_ts(),
            }
        ]

    def _convertible(self, channel_id: str, *, private: bool) -> FakeChannel:
        channel = self.channels[channel_id]
        if channel.is_im or channel.is_mpim or channel.is_private is not private:
            kind = "private" if private else "public"
            raise ValueError(f"{channel_id} is not a {kind} channel")
        return channel

    def _end_exposure(self, channel: FakeChannel) -> None:
        """The channel stops being readable beyond its members: remember what was exposed."""
        channel.exposed_through = self._seq

    def open_dm(self, user_id: str) -> str:
        """Return the bot's DM channel with `user_id`, creating it on first use."""
        existing = self._dm_by_user.get(user_id)
        if existing is not None:
            return existing
        channel_id = self._new_id("D")
        self.channels[channel_id] = FakeChannel(
            id=channel_id,
            name=user_id,
            is_private=True,
            is_im=True,
            members={self.bot_user_id, user_id},
            im_user=user_id,
            created=int(self.now()),
        )
        self._messages[channel_id] = []
        self._dm_by_user[user_id] = channel_id
        return channel_id

    def dm_channel_id(self, user_id: str) -> str | None:
        """The bot's DM channel with `user_id`, if one was opened."""
        return self._dm_by_user.get(user_id)

    def post_as_user(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: list[JSONDict] | None = None,
    ) -> StoredMessage:
        """Record a message written by a person (e.g. a customer reply in a thread)."""
        channel_id = self._resolve_channel(channel)
        return self._store_message(
            channel_id,
            user=user,
            text=text,
            blocks=blocks or [],
            thread_ts=thread_ts,
            bot_id=None,
            via="user",
        )

    def message_event(self, message: StoredMessage) -> JSONDict:
        """A `message` event for `message`, with the right channel_type."""
        return message.to_event(self.channels[message.channel].channel_type)

    def issue_trigger(self, user_id: str | None = None, *, action: str | None = None) -> str:
        """Hand out a trigger_id bound to `user_id`, as Slack does with each interaction
        (`action`: the button clicked, remembered for `opened_by`)."""
        now = self.now()
        trigger_id = f"{next(self._ids)}.{int(now)}.{secrets.token_hex(16)}"
        self._triggers[trigger_id] = _Trigger(user=user_id, issued_at=now, action=action)
        return trigger_id

    def opened_by(self, view_id: str | None) -> str | None:
        """The button whose click opened the modal `view_id` (None: not opened by a click)."""
        view = self._views.get(str(view_id))
        trigger = self._triggers.get(view.trigger_id or "") if view is not None else None
        return trigger.action if trigger is not None else None

    # ----------------------------------------------------------------- what people meant

    def record_intent(self, user_id: str, text: str, *, internal: bool) -> None:
        """What a person meant when they wrote `text`: an internal note or a public reply.
        The leak scanner compares what customers saw with what staff meant as internal,
        whatever the bot stored."""
        self.intents.append(Intent(user=user_id, text=text, internal=internal))

    def record_confirmed_public(self, user_id: str, text: str) -> None:
        """A person confirmed that a customer may read `text` (copied from a staff surface)."""
        self.confirmed_public.append(Intent(user=user_id, text=text, internal=False))

    def expire_trigger(self, trigger_id: str) -> None:
        """Mark a trigger_id expired, as if the 3-second window had passed."""
        trigger = self._triggers.setdefault(trigger_id, _Trigger(user=None, issued_at=self.now()))
        trigger.expired = True

    def issue_response_url(
        self,
        user_id: str,
        channel_id: str,
        *,
        message_ts: str | None = None,
        ephemeral: bool = False,
    ) -> str:
        """A response_url served by this fake (start() first), bound to user and channel."""
        key = secrets.token_hex(12)
        self._response_urls[key] = _ResponseUrl(
            user=user_id, channel=channel_id, message_ts=message_ts, ephemeral=ephemeral
        )
        return f"{self.root_url}/hooks/response/{key}"
