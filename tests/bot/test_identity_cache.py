"""The identity resolver's memory stays bounded: fresh profiles and recent invalidations are
kept, expired ones are dropped once the limit is reached (bot.identity.CACHE_LIMIT)."""

from __future__ import annotations

from typing import Any

import pytest

from bot import identity
from bot.identity import IdentityResolver, _Entry


def _offline_resolver() -> IdentityResolver:
    """A resolver whose cache is tested on its own: no lookup reaches its core or client."""
    return IdentityResolver(
        core=Any,  # type: ignore[arg-type]
        client=Any,  # type: ignore[arg-type]
        admin_ids=[],
        ttl_seconds=60,
    )


def test_expired_profiles_and_old_invalidations_are_dropped_at_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(identity.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(identity, "CACHE_LIMIT", 4)
    resolver = _offline_resolver()
    resolver._cache = {f"U0OLD{i:04d}": _Entry(expires=now[0] - 1) for i in range(3)}
    resolver._cache["U0FRESH001"] = _Entry(expires=now[0] + 30)
    for n in range(10):
        now[0] += 10  # each invalidation long after the previous one's lookups gave up
        resolver.invalidate(f"U0GONE{n:04d}")
    assert len(resolver._invalidated) <= 4
    assert "U0GONE0009" in resolver._invalidated  # the latest one still counts
    assert set(resolver._cache) <= {"U0FRESH001"}
    assert not resolver.profile_is_fresh("U0OLD0000")


def test_expired_profiles_go_long_before_the_limit_so_the_cache_levels_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(identity.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(identity, "PRUNE_FLOOR", 10)
    resolver = _offline_resolver()
    resolver._prune_at = 10
    sizes = []
    for burst in range(20):  # 8 new people a minute, every profile expiring after 60 s
        now[0] += 61
        for n in range(8):
            resolver._remember(f"U{burst:03d}N{n:04d}", started=now[0], seconds=60)
        sizes.append(len(resolver._cache))
    assert max(sizes[5:]) <= 2 * 8 + 8  # about twice the people of one TTL, not 160
    assert resolver.profile_is_fresh("U019N0007")
