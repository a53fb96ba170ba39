"""What tests read back from the fake: calls, messages, ephemerals, views, reactions."""

from __future__ import annotations

import copy

from devslack.base import FakeSlackBase
from devslack.model import EphemeralMessage, FakeView, JSONDict, RecordedCall, StoredMessage


class Inspection(FakeSlackBase):
    """Read-only views of the call log and the workspace (close_view aside)."""

    def calls_to(self, method: str, *, include_injected: bool = True) -> list[RecordedCall]:
        """Every recorded call to `method` (failed-by-injection ones too unless excluded)."""
        return [
            c for c in self.calls if c.method == method and (include_injected or not c.injected)
        ]

    def reset_calls(self) -> None:
        """Forget the call log (the workspace state stays)."""
        self.calls.clear()

    def messages(
        self,
        channel: str | None = None,
        thread_ts: str | None = None,
        *,
        include_deleted: bool = False,
    ) -> list[StoredMessage]:
        """Stored messages in ts order; with thread_ts, that thread's parent and replies."""
        channels = [channel] if channel is not None else list(self._messages)
        found = [
            m
            for cid in channels
            for m in self._messages.get(cid, [])
            if (include_deleted or not m.deleted)
            and (thread_ts is None or m.ts == thread_ts or m.thread_ts == thread_ts)
        ]
        return sorted(found, key=lambda m: float(m.ts))

    def replies(self, channel: str, thread_ts: str) -> list[StoredMessage]:
        """Only the replies in a thread (not its parent), oldest first."""
        return [m for m in self.messages(channel, thread_ts) if m.ts != thread_ts]

    def message(self, channel: str, ts: str) -> StoredMessage | None:
        """One stored message (deleted or not)."""
        return self._find_message(channel, ts)

    def last_message(self, channel: str | None = None) -> StoredMessage | None:
        """The newest non-deleted message (in `channel` if given)."""
        found = self.messages(channel)
        return found[-1] if found else None

    def ephemerals(
        self, user: str | None = None, *, channel: str | None = None
    ) -> list[EphemeralMessage]:
        """Ephemeral messages, optionally only those for `user` / in `channel`."""
        return [
            e
            for e in self._ephemerals
            if (user is None or e.user == user) and (channel is None or e.channel == channel)
        ]

    def views_opened(self, user: str | None = None) -> list[FakeView]:
        """Modals opened or pushed, optionally only those for `user`."""
        return [
            v
            for v in self._views.values()
            if v.kind == "modal" and (user is None or v.user == user)
        ]

    def view(self, view_id: str) -> FakeView | None:
        """A view by id."""
        return self._views.get(view_id)

    def close_view(self, view_id: str) -> None:
        """Mark a modal closed (as when the user dismisses or the stack is cleared)."""
        self._views[view_id].closed = True
        self._touch(self._views[view_id])

    def home_views(self, user: str) -> list[JSONDict]:
        """Every App Home view published for `user`, oldest first (latest is current)."""
        view_id = self._home_views.get(user)
        return copy.deepcopy(self._views[view_id].history) if view_id else []

    def home_view(self, user: str) -> FakeView | None:
        """The user's App Home view, if one was published."""
        view_id = self._home_views.get(user)
        return self._views[view_id] if view_id else None

    def reactions(self, channel: str, ts: str) -> list[str]:
        """Names of the reactions on a message."""
        msg = self._find_message(channel, ts)
        return list(msg.reactions) if msg else []
