"""views.open, .push, .update and .publish, with trigger_id bookkeeping."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Mapping
from typing import Any, Literal

from devslack.base import FakeSlackBase
from devslack.blockkit import validate_view
from devslack.model import FakeView, JSONDict, SlackApiFailure, _Trigger


class ViewsMethods(FakeSlackBase):
    """views.* handlers."""

    def _consume_trigger(self, trigger_id: str) -> _Trigger:
        """Use a trigger_id once; reused, expired or stale ones fail with expired_trigger_id."""
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            trigger = _Trigger(user=None, issued_at=self.now())
            self._triggers[trigger_id] = trigger
        stale = self.trigger_ttl is not None and self.now() - trigger.issued_at > self.trigger_ttl
        if trigger.used or trigger.expired or stale:
            raise SlackApiFailure("expired_trigger_id")
        trigger.used = True
        return trigger

    def _view_from_params(
        self, params: Mapping[str, Any], kind: Literal["modal", "home"]
    ) -> JSONDict:
        """The validated `view` param."""
        view = params.get("view")
        if view is None:
            raise SlackApiFailure("invalid_arguments", messages=["[ERROR] missing view"])
        errors = validate_view(view, kind=kind)
        if errors:
            raise SlackApiFailure("invalid_arguments", messages=errors)
        return copy.deepcopy(dict(view))

    def _find_view(self, params: Mapping[str, Any]) -> FakeView:
        """The view named by view_id or external_id."""
        view_id = params.get("view_id")
        external_id = params.get("external_id")
        if view_id:
            found = self._views.get(str(view_id))
            if found is not None:
                return found
        elif external_id:
            for candidate in self._views.values():
                if candidate.view.get("external_id") == external_id:
                    return candidate
        else:
            raise SlackApiFailure("invalid_arguments")
        raise SlackApiFailure("not_found")

    async def _views_open(self, params: JSONDict) -> JSONDict:
        """views.open: open a modal for the user the trigger belongs to."""
        trigger_id = self._require(params, "trigger_id", "invalid_trigger_id")
        view = self._view_from_params(params, "modal")
        trigger = self._consume_trigger(trigger_id)
        fake_view = FakeView(
            id=self._new_id("V"),
            kind="modal",
            user=trigger.user,
            view=view,
            hash=f"{int(self.now())}.{secrets.token_hex(4)}",
            team_id=self.team_id,
            bot_id=self.bot_id,
            trigger_id=trigger_id,
            history=[copy.deepcopy(view)],
        )
        self._views[fake_view.id] = fake_view
        self._touch(fake_view)
        return {"view": fake_view.to_api()}

    async def _views_push(self, params: JSONDict) -> JSONDict:
        """views.push: stack a new modal on the user's open one (at most 3 deep)."""
        trigger_id = self._require(params, "trigger_id", "invalid_trigger_id")
        view = self._view_from_params(params, "modal")
        trigger = self._consume_trigger(trigger_id)
        parent = next(
            (
                v
                for v in reversed(self._views.values())
                if v.kind == "modal" and not v.closed and v.user == trigger.user
            ),
            None,
        )
        root_id = (parent.root_view_id or parent.id) if parent is not None else None
        depth = sum(
            1
            for v in self._views.values()
            if root_id and not v.closed and (v.root_view_id or v.id) == root_id
        )
        if depth >= 3:
            raise SlackApiFailure("push_limit_reached")
        fake_view = FakeView(
            id=self._new_id("V"),
            kind="modal",
            user=trigger.user,
            view=view,
            hash=f"{int(self.now())}.{secrets.token_hex(4)}",
            team_id=self.team_id,
            bot_id=self.bot_id,
            trigger_id=trigger_id,
            root_view_id=root_id,
            previous_view_id=parent.id if parent is not None else None,
            history=[copy.deepcopy(view)],
        )
        self._views[fake_view.id] = fake_view
        self._touch(fake_view)
        return {"view": fake_view.to_api()}

    async def _views_update(self, params: JSONDict) -> JSONDict:
        """views.update: replace a view's content (hash-checked if a hash is given)."""
        target = self._find_view(params)
        kind: Literal["modal", "home"] = target.kind
        view = self._view_from_params(params, kind)
        if params.get("hash") and params["hash"] != target.hash:
            raise SlackApiFailure("hash_conflict")
        target.view = view
        target.history.append(copy.deepcopy(view))
        target.hash = f"{int(self.now())}.{secrets.token_hex(4)}"
        self._touch(target)
        return {"view": target.to_api()}

    async def _views_publish(self, params: JSONDict) -> JSONDict:
        """views.publish: set a user's App Home tab."""
        user_id = self._require(params, "user_id", "user_not_found")
        if user_id not in self.users:
            raise SlackApiFailure("user_not_found")
        view = self._view_from_params(params, "home")
        existing_id = self._home_views.get(user_id)
        if existing_id is not None:
            home = self._views[existing_id]
            if params.get("hash") and params["hash"] != home.hash:
                raise SlackApiFailure("hash_conflict")
            home.view = view
            home.history.append(copy.deepcopy(view))
            home.hash = f"{int(self.now())}.{secrets.token_hex(4)}"
        else:
            home = FakeView(
                id=self._new_id("V"),
                kind="home",
                user=user_id,
                view=view,
                hash=f"{int(self.now())}.{secrets.token_hex(4)}",
                team_id=self.team_id,
                bot_id=self.bot_id,
                history=[copy.deepcopy(view)],
            )
            self._views[home.id] = home
            self._home_views[user_id] = home.id
        self._touch(home)
        return {"view": home.to_api()}
