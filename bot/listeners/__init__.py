"""Slack listeners, split by kind; `register_listeners` wires them all to an app."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners import actions, channels, commands, events, shortcuts, submissions
from bot.listeners.registry import Registry
from bot.runtime import Runtime


def register_listeners(app: AsyncApp, runtime: Runtime) -> Registry:
    """Register every listener; the returned registry says what the app listens to."""
    registry = Registry()
    commands.register(app, runtime, registry)
    actions.register(app, runtime, registry)
    submissions.register(app, runtime, registry)
    shortcuts.register(app, runtime, registry)
    events.register(app, runtime, registry)
    channels.register(app, runtime, registry)
    return registry
