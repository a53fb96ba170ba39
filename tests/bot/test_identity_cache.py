"""The identity resolver's memory stays bounded: fresh profiles and recent invalidations are
kept, expired ones are dropped once the limit is reached (bot.identity.CACHE_LIMIT)."""

from __future__ import annotations

from typing import Any

import pytest

from bot import identity
from bot.identity import IdentityResolver, _Entry


def test_expired_profiles_and_old_invalidations_are_dropped_at_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(identity.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(identity, "CACHE_LIMIT", 4)
    resolver = IdentityResolver(
        core=Any,  # type: ignore[arg-type]  (not reached: no lookup runs here)
        client=Any,  # type: ignore[arg-type]
        admin_ids=[],
        ttl_seconds=60,
    )
    resolver._cache = {f"U0OLD{i:04d}": _Entry(expires=now[0] - 1) for i in range(3)}
    resolver._cache["U0FRESH001"] = _Entry(expires=now[0] + 30)
    for n in range(10):
        now[0] += 10  # each invalidation long after the previous one's lookups gave up
        resolver.invalidate(f"U0GONE{n:04d}")
    assert len(resolver._invalidated) <= 4
    assert "U0GONE0009" in resolver._invalidated  # the latest one still counts
    assert set(resolver._cache) <= {"U0FRESH001"}
    assert not resolver.profile_is_fresh("U0OLD0000")
