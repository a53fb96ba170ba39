"""Keys that come from outside (event, trigger and view ids, idempotency keys) are stored as
given when they are plain printable text, and as a digest otherwise: a NUL byte (which
PostgreSQL refuses in text) or an over-long key never breaks a request or collides."""

from __future__ import annotations

from core import chat
from core.enums import Role
from core.tickets import create_ticket
from core.validation import opaque_key
from tests.factories import make_user


def test_plain_keys_are_kept_and_others_become_distinct_digests():
    assert opaque_key("1234.5678.abcdef", max_length=200) == "1234.5678.abcdef"
    nul, other_nul = opaque_key("a\x00b", max_length=200), opaque_key("a\x00c", max_length=200)
    assert nul.startswith("sha256:") and "\x00" not in nul and nul != other_nul
    long_a, long_b = "x" * 250 + "a", "x" * 250 + "b"  # equal in their first 200 characters
    assert opaque_key(long_a, max_length=200) != opaque_key(long_b, max_length=200)
    assert len(opaque_key(long_a, max_length=200)) <= 200


async def test_a_delivery_claimed_by_a_key_with_a_nul_byte_is_claimed_once(core):
    key = "command:" + "\x00" * 3001

    assert await chat.claim_delivery(core, key=key) is True
    assert await chat.claim_delivery(core, key=key) is False
    assert await chat.claim_delivery(core, key=key[:-1]) is True  # a different key
    await chat.release_delivery(core, key=key)
    assert await chat.claim_delivery(core, key=key) is True


async def test_an_idempotency_key_with_a_nul_byte_still_deduplicates(core):
    customer = await make_user(core, Role.CUSTOMER)

    first = await create_ticket(core, actor_id=customer.id, title="VPN", idempotency_key="v\x00")
    again = await create_ticket(core, actor_id=customer.id, title="VPN", idempotency_key="v\x00")
    other = await create_ticket(core, actor_id=customer.id, title="VPN", idempotency_key="v\x01")

    assert first.number == again.number != other.number
