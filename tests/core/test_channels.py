"""Customer channels in the core: links refuse the reserved channels and bad input, a message
raises one ticket however often it is delivered, people of another organisation are served
only through a linked channel and are never staff, answered requests no longer follow edits."""

import pytest

from core import admin, channels, companies, replies
from core.enums import Role
from core.errors import Forbidden, ValidationFailed
from tests.core.ticket_support import audit_actions
from tests.factories import make_user

CHANNEL = "CACME00001"
STAFF = "CSTAFF0001"


async def linked(core, **options):
    boss = await make_user(core, Role.ADMIN)
    added = await companies.add_company(core, actor_id=boss.id, name="Acme")
    await channels.link_channel(
        core, actor_id=boss.id, channel_id=CHANNEL, company="Acme", reserved={STAFF}, **options
    )
    return boss, added.company.id


async def test_links_refuse_the_staff_channel_bad_modes_and_non_admins(core):
    boss, _ = await linked(core)
    with pytest.raises(ValidationFailed, match="never be a customer channel"):
        await channels.link_channel(
            core, actor_id=boss.id, channel_id=STAFF, company="Acme", reserved={STAFF}
        )
    with pytest.raises(ValidationFailed, match="Intake"):
        await channels.set_intake(core, actor_id=boss.id, channel_id=CHANNEL, intake="sometimes")
    with pytest.raises(ValidationFailed, match="emoji"):
        await channels.set_intake(
            core, actor_id=boss.id, channel_id=CHANNEL, intake="reaction", reaction="two words"
        )
    agent = await make_user(core, Role.AGENT)
    with pytest.raises(Forbidden):
        await channels.unlink_channel(core, actor_id=agent.id, channel_id=CHANNEL)
    manager = await make_user(core, Role.MANAGER)
    with pytest.raises(Forbidden):
        await channels.list_links(core, actor_id=manager.id)
    assert [link.channel_id for link in await channels.list_links(core, actor_id=boss.id)] == [
        CHANNEL
    ]
    assert await channels.linked_among(core, channel_ids=[STAFF, CHANNEL]) == {CHANNEL}
    assert "channel.linked" in await audit_actions(core)


async def test_a_message_raises_one_ticket_for_the_company_and_staff_talk_is_not_a_request(core):
    _, company_id = await linked(core)
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    args = {"channel_id": CHANNEL, "ts": "1700000000.000100", "text": "Exports fail"}
    first = await channels.message_request(core, author_id=customer.id, **args)
    again = await channels.message_request(core, author_id=customer.id, **args)
    assert first is not None and first.opened and again is not None and not again.opened
    assert again.ticket.id == first.ticket.id and first.ticket.company_id == company_id
    said = {"channel_id": CHANNEL, "ts": "1700000000.000200", "text": "Hello all"}
    assert await channels.message_request(core, author_id=agent.id, **said) is None


async def test_in_reaction_mode_messages_raise_nothing(core):
    await linked(core, intake="reaction")
    customer = await make_user(core, Role.CUSTOMER)
    taken = await channels.message_request(
        core, author_id=customer.id, channel_id=CHANNEL, ts="1.2", text="Help"
    )
    assert taken is None


async def test_people_of_another_organisation_are_served_through_linked_channels_only(core):
    boss, company_id = await linked(core)
    with pytest.raises(Forbidden):
        await channels.provision_guest(
            core,
            channel_id="COTHER0001",
            slack_user_id="WGUEST0001",
            team_id="T0ACME",
            display_name="Guest",
            email=None,
        )
    guest = await channels.provision_guest(
        core,
        channel_id=CHANNEL,
        slack_user_id="WGUEST0001",
        team_id="T0ACME",
        display_name="Guest",
        email="guest@support.test",
    )
    assert guest.role is Role.CUSTOMER and guest.company_id == company_id
    with pytest.raises(Forbidden):  # known now, still refused outside a customer channel
        await channels.provision_guest(
            core,
            channel_id=None,
            slack_user_id="WGUEST0001",
            team_id="T0ACME",
            display_name="Guest",
            email=None,
        )
    with pytest.raises(ValidationFailed, match="another organisation"):
        await admin.change_role(core, actor_id=boss.id, user_id=guest.id, role=Role.AGENT)


async def test_an_answered_request_no_longer_follows_edits_or_deletion(core):
    await linked(core)
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    taken = await channels.message_request(
        core, author_id=customer.id, channel_id=CHANNEL, ts="5.5", text="Login broken"
    )
    assert taken is not None
    await replies.add_reply(
        core, actor_id=agent.id, ticket=taken.ticket.number, body="On it", internal=False
    )
    edited = await channels.request_edited(
        core, author_id=customer.id, channel_id=CHANNEL, ts="5.5", text="Never mind"
    )
    withdrawn = await channels.request_deleted(
        core, author_id=customer.id, channel_id=CHANNEL, ts="5.5"
    )
    assert edited is None and withdrawn is None
