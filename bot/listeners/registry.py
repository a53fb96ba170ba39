"""What the app listens to, recorded as listeners register (checked against the manifest)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Registry:
    commands: set[str] = field(default_factory=set)
    actions: set[str] = field(default_factory=set)
    views: set[str] = field(default_factory=set)
    message_shortcuts: set[str] = field(default_factory=set)
    global_shortcuts: set[str] = field(default_factory=set)
    events: set[str] = field(default_factory=set)
