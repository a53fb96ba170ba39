"""How the serving process runs: its event loop, and the garbage collector's settings once the
bot has started.

`run()` runs `serve` on uvloop (a libuv event loop, a locked dependency) when it is installed,
else on asyncio's own loop; the code is the same on both (tests run on asyncio's).

At start the bot holds some 150,000 objects of its own and its libraries' (modules, classes,
SQLAlchemy's and bolt's tables) that live as long as the process. Python's collector scans
every tracked object in a full (generation 2) collection: under load such a collection took up
to 200 ms on a 2-core machine, and every request waiting meanwhile was acked that much later
(docs/benchmarks.md, issue 16). `settle_heap()` moves what exists after start into the
permanent generation (gc.freeze: never scanned, never freed) and makes young collections less
frequent; garbage made while serving is collected as before."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# Allocations (net of frees) between two young collections; Python's default is 700.
YOUNG_COLLECTION_THRESHOLD = 10_000


def settle_heap() -> None:
    """Call once the server is up, from the serving process only (not from tests that start
    many servers in one process: frozen objects are never freed)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main) on uvloop's loop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; not on Windows
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
