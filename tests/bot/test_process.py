"""The serving process (bot.process): `serve` runs on uvloop when it is installed (a locked
dependency), and settle_heap freezes what exists after start and spaces young collections."""

from __future__ import annotations

import asyncio
import gc

import pytest

from bot import process


def test_serve_runs_its_event_loop_on_uvloop() -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert process.run(loop_module()).startswith("uvloop")


def test_settle_heap_freezes_the_start_up_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append("collect") or 0)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    thresholds: list[tuple[int, ...]] = []
    monkeypatch.setattr(gc, "set_threshold", lambda *t: thresholds.append(t))
    process.settle_heap()
    assert calls == ["collect", "freeze"]
    assert thresholds and thresholds[0][0] == process.YOUNG_COLLECTION_THRESHOLD
