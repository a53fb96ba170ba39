"""Companies as admins manage them: domains match people, coverage is granted and revoked,
every change is audited, bad input changes nothing."""

import pytest

from core import companies, users
from core.enums import Role
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.tickets import assign_ticket
from tests.core.ticket_support import audit_actions
from tests.factories import make_company, make_ticket, make_user, user_row


async def test_adding_a_company_matches_people_already_known_by_their_domain(core):
    boss = await make_user(core, Role.ADMIN)
    known = await make_user(core, Role.CUSTOMER, email="li@Acme.example")
    other = await make_user(core, Role.CUSTOMER, email="zoe@elsewhere.example")
    added = await companies.add_company(
        core, actor_id=boss.id, name="Acme", domains=["acme.example"]
    )
    assert added.company.domains == ("acme.example",)
    assert added.matched == 1
    assert (await user_row(core, known.id)).company_id == added.company.id
    assert (await user_row(core, other.id)).company_id is None
    assert "user.company_matched" in await audit_actions(core)


async def test_a_domain_added_later_matches_people_without_a_company_and_new_ones(core):
    boss = await make_user(core, Role.ADMIN)
    await companies.add_company(core, actor_id=boss.id, name="Acme")
    waiting = await make_user(core, Role.CUSTOMER, email="kim@acme.example")
    placed_elsewhere = await make_user(
        core, Role.CUSTOMER, email="lou@acme.example", company_id=await make_company(core)
    )
    change = await companies.add_domain(
        core, actor_id=boss.id, company="acme", domain="@ACME.example"
    )
    assert change.domain == "acme.example" and change.matched == 1
    assert (await user_row(core, waiting.id)).company_id == change.company.id
    assert (await user_row(core, placed_elsewhere.id)).company_id != change.company.id
    newcomer = await users.provision_user(
        core, slack_user_id="UNEW00001", display_name="New", email="new@acme.example"
    )
    assert newcomer.company_id == change.company.id
    assert "company.domain_added" in await audit_actions(core)


async def test_removing_a_domain_stops_matching_but_keeps_the_members(core):
    boss = await make_user(core, Role.ADMIN)
    added = await companies.add_company(
        core, actor_id=boss.id, name="Acme", domains=["acme.example"]
    )
    member = await users.provision_user(
        core, slack_user_id="UMEMBER01", display_name="M", email="m@acme.example"
    )
    change = await companies.remove_domain(
        core, actor_id=boss.id, company="Acme", domain="acme.example"
    )
    assert change.company.domains == ()
    assert (await user_row(core, member.id)).company_id == added.company.id
    later = await users.provision_user(
        core, slack_user_id="ULATER001", display_name="L", email="l@acme.example"
    )
    assert later.company_id is None
    with pytest.raises(ValidationFailed):
        await companies.remove_domain(core, actor_id=boss.id, company="Acme", domain="acme.example")


async def test_bad_input_is_refused_and_changes_nothing(core):
    boss = await make_user(core, Role.ADMIN)
    await companies.add_company(core, actor_id=boss.id, name="Acme", domains=["acme.example"])
    before = await audit_actions(core)
    with pytest.raises(Conflict):
        await companies.add_company(core, actor_id=boss.id, name="ACME")
    with pytest.raises(ValidationFailed, match=r"acme\.example"):
        await companies.add_company(core, actor_id=boss.id, name="Beta", domains=["acme.example"])
    with pytest.raises(ValidationFailed):
        await companies.add_company(core, actor_id=boss.id, name="Beta", domains=["not a domain"])
    with pytest.raises(NotFound, match="Nowhere"):
        await companies.add_domain(core, actor_id=boss.id, company="Nowhere", domain="x.example")
    assert [c.name for c in await companies.list_companies(core, actor_id=boss.id)] == ["Acme"]
    assert await audit_actions(core) == before


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.CORPORATE, Role.AGENT, Role.MANAGER])
async def test_only_admins_change_companies(core, role):
    actor = await make_user(core, role)
    with pytest.raises(Forbidden):
        await companies.add_company(core, actor_id=actor.id, name="Acme")
    assert await audit_actions(core) == []


async def test_the_operator_changes_companies_audited_as_cli(core):
    added = await companies.add_company(core, actor_id=None, name="Acme", domains=["a.example"])
    assert added.company.name == "Acme"
    detail = await companies.show_company(core, actor_id=None, company="acme")
    assert detail.company.domains == ("a.example",)


async def test_show_lists_domains_corporate_staff_and_open_tickets(core):
    boss = await make_user(core, Role.ADMIN)
    added = await companies.add_company(core, actor_id=boss.id, name="Acme", domains=["a.example"])
    company_id = added.company.id
    customer = await make_user(core, Role.CUSTOMER, company_id=company_id)
    ticket = await make_ticket(core, customer)
    own = await make_user(core, Role.CORPORATE, company_id=company_id, name="Own")
    covering = await make_user(core, Role.CORPORATE, company_id=await make_company(core))
    await companies.grant_coverage(core, actor_id=boss.id, company="Acme", user_id=covering.id)
    detail = await companies.show_company(core, actor_id=boss.id, company="Acme")
    assert {u.id for u in detail.corporate} == {own.id, covering.id}
    assert detail.open_tickets == 1 and detail.open_numbers == (ticket.number,)
    # A customer may not look.
    with pytest.raises(Forbidden):
        await companies.show_company(core, actor_id=customer.id, company="Acme")


async def test_granted_coverage_shows_tickets_and_revoking_releases_assignments(core):
    boss = await make_user(core, Role.ADMIN)
    added = await companies.add_company(core, actor_id=boss.id, name="Acme")
    customer = await make_user(core, Role.CUSTOMER, company_id=added.company.id)
    ticket = await make_ticket(core, customer)
    corporate = await make_user(core, Role.CORPORATE, company_id=await make_company(core))
    agent = await make_user(core, Role.AGENT)
    with pytest.raises(ValidationFailed, match="corporate"):
        await companies.grant_coverage(core, actor_id=boss.id, company="Acme", user_id=agent.id)
    await companies.grant_coverage(core, actor_id=boss.id, company="Acme", user_id=corporate.id)
    await assign_ticket(core, actor_id=boss.id, ticket=ticket.number, assignee_id=corporate.id)
    await companies.revoke_coverage(core, actor_id=boss.id, company="Acme", user_id=corporate.id)
    actions = await audit_actions(core)
    assert "company.access_granted" in actions and "company.access_revoked" in actions
    assert "ticket.unassigned" in actions
    with pytest.raises(ValidationFailed, match="does not cover"):
        await companies.revoke_coverage(
            core, actor_id=boss.id, company="Acme", user_id=corporate.id
        )
