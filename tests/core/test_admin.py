"""Administration: roles, activation, companies and categories are admin-only and audited."""

import pytest

from core import admin, users
from core.enums import Role
from core.errors import Conflict, Forbidden, ValidationFailed
from core.tickets import create_ticket
from tests.core.ticket_support import audit_actions
from tests.factories import make_company, make_user


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.CORPORATE, Role.AGENT, Role.MANAGER])
async def test_only_admins_change_roles(core, role):
    actor = await make_user(core, role)
    target = await make_user(core, Role.CUSTOMER)
    with pytest.raises(Forbidden):
        await admin.change_role(core, actor_id=actor.id, user_id=target.id, role=Role.AGENT)
    assert (await users.get_user(core, user_id=target.id)).role is Role.CUSTOMER


async def test_admin_role_change_is_audited_and_takes_effect_at_once(core):
    boss = await make_user(core, Role.ADMIN)
    target = await make_user(core, Role.CUSTOMER)
    customer = await make_user(core, Role.CUSTOMER)
    changed = await admin.change_role(core, actor_id=boss.id, user_id=target.id, role="agent")
    assert changed.role is Role.AGENT
    assert "user.role_changed" in await audit_actions(core)
    # The new agent may now open a ticket on behalf of a customer: the role is read fresh.
    ticket = await create_ticket(
        core, actor_id=target.id, title="Phone call", customer_id=customer.id
    )
    assert ticket.customer.id == customer.id


async def test_last_admin_cannot_be_demoted_or_deactivated(core):
    boss = await make_user(core, Role.ADMIN)
    with pytest.raises(Conflict):
        await admin.change_role(core, actor_id=boss.id, user_id=boss.id, role=Role.AGENT)
    with pytest.raises(Conflict):
        await admin.set_active(core, actor_id=boss.id, user_id=boss.id, active=False)


async def test_unknown_role_is_a_validation_error(core):
    boss = await make_user(core, Role.ADMIN)
    target = await make_user(core, Role.CUSTOMER)
    with pytest.raises(ValidationFailed) as error:
        await admin.change_role(core, actor_id=boss.id, user_id=target.id, role="overlord")
    assert error.value.field == "role"


async def test_deactivated_user_can_do_nothing(core):
    boss = await make_user(core, Role.ADMIN)
    customer = await make_user(core, Role.CUSTOMER)
    await admin.set_active(core, actor_id=boss.id, user_id=customer.id, active=False)
    with pytest.raises(Forbidden):
        await create_ticket(core, actor_id=customer.id, title="Still here?")


async def test_provisioned_user_joins_company_by_email_domain(core):
    boss = await make_user(core, Role.ADMIN)
    company = await admin.create_company(core, actor_id=boss.id, name="Acme", domains=["Acme.io"])
    user = await users.provision_user(
        core, slack_user_id="U1", display_name="Wile", email="wile@acme.io"
    )
    assert user.company_id == company.id and user.role is Role.CUSTOMER
    stranger = await users.provision_user(
        core, slack_user_id="U2", display_name="Road", email="road@runner.org"
    )
    assert stranger.company_id is None


async def test_bootstrap_admin_is_made_admin_on_first_contact(core):
    first = await users.provision_user(
        core,
        slack_user_id="UADMIN",
        display_name="Ada",
        email=None,
        bootstrap_admin_ids={"UADMIN"},
    )
    assert first.role is Role.ADMIN
    again = await users.provision_user(
        core, slack_user_id="UADMIN", display_name="Ada L.", email=None
    )
    assert again.display_name == "Ada L." and again.role is Role.ADMIN


async def test_a_demoted_bootstrap_admin_stays_demoted_on_profile_refresh(core):
    boss = await make_user(core, Role.ADMIN)
    bootstrap = await users.provision_user(
        core, slack_user_id="UBOOT", display_name="Boot", email=None, bootstrap_admin_ids={"UBOOT"}
    )
    await admin.change_role(core, actor_id=boss.id, user_id=bootstrap.id, role=Role.AGENT)
    refreshed = await users.provision_user(
        core, slack_user_id="UBOOT", display_name="Boot", email=None, bootstrap_admin_ids={"UBOOT"}
    )
    assert refreshed.role is Role.AGENT
    assert (await users.get_user(core, user_id=bootstrap.id)).role is Role.AGENT


async def test_an_existing_user_listed_later_is_not_promoted_by_a_refresh(core):
    known = await users.provision_user(core, slack_user_id="ULATER", display_name="L", email=None)
    refreshed = await users.provision_user(
        core, slack_user_id="ULATER", display_name="L", email=None, bootstrap_admin_ids={"ULATER"}
    )
    assert known.role is Role.CUSTOMER and refreshed.role is Role.CUSTOMER


async def test_a_deactivated_user_stays_deactivated_on_profile_refresh(core):
    boss = await make_user(core, Role.ADMIN)
    person = await users.provision_user(core, slack_user_id="UOFF", display_name="O", email=None)
    await admin.set_active(core, actor_id=boss.id, user_id=person.id, active=False)
    refreshed = await users.provision_user(core, slack_user_id="UOFF", display_name="O", email=None)
    assert refreshed.is_active is False
    with pytest.raises(Forbidden):
        await create_ticket(core, actor_id=person.id, title="Let me back in")


async def test_an_account_deleted_in_chat_is_refused_and_restored_with_the_profile(core):
    person = await users.provision_user(core, slack_user_id="UDEL", display_name="D", email=None)
    gone = await users.provision_user(
        core, slack_user_id="UDEL", display_name="D", email=None, chat_account_deleted=True
    )
    assert gone.is_active is False
    with pytest.raises(Forbidden):
        await create_ticket(core, actor_id=person.id, title="Still here?")
    back = await users.provision_user(core, slack_user_id="UDEL", display_name="D", email=None)
    assert back.is_active is True
    assert (await create_ticket(core, actor_id=person.id, title="Back")).customer.id == person.id
    assert {"user.chat_account_deleted", "user.chat_account_restored"} <= set(
        await audit_actions(core)
    )


async def test_a_chat_restore_does_not_undo_a_desk_deactivation(core):
    boss = await make_user(core, Role.ADMIN)
    person = await users.provision_user(core, slack_user_id="UBOTH", display_name="B", email=None)
    await admin.set_active(core, actor_id=boss.id, user_id=person.id, active=False)
    await users.provision_user(
        core, slack_user_id="UBOTH", display_name="B", email=None, chat_account_deleted=True
    )
    back = await users.provision_user(core, slack_user_id="UBOTH", display_name="B", email=None)
    assert back.is_active is False


async def test_company_domains_are_unique_and_validated(core):
    boss = await make_user(core, Role.ADMIN)
    await admin.create_company(core, actor_id=boss.id, name="One", domains=["one.com"])
    with pytest.raises(ValidationFailed):
        await admin.create_company(core, actor_id=boss.id, name="Two", domains=["one.com"])
    with pytest.raises(ValidationFailed):
        await admin.create_company(core, actor_id=boss.id, name="Three", domains=["not a domain"])


async def test_categories_are_admin_only_and_inactive_ones_cannot_be_picked(core):
    boss = await make_user(core, Role.ADMIN)
    agent = await make_user(core, Role.AGENT)
    customer = await make_user(core, Role.CUSTOMER)
    with pytest.raises(Forbidden):
        await admin.create_category(core, actor_id=agent.id, name="Billing")
    billing = await admin.create_category(core, actor_id=boss.id, name="Billing")
    with pytest.raises(Conflict):
        await admin.create_category(core, actor_id=boss.id, name="billing")
    assert [c.name for c in await admin.list_categories(core)] == ["Billing"]
    await admin.deactivate_category(core, actor_id=boss.id, category_id=billing.id)
    assert await admin.list_categories(core) == []
    with pytest.raises(ValidationFailed) as error:
        await create_ticket(core, actor_id=customer.id, title="Invoice", category_id=billing.id)
    assert error.value.field == "category"


async def test_corporate_access_grant_extends_scope(core):
    boss = await make_user(core, Role.ADMIN)
    home = await make_company(core, "Home")
    other = await make_company(core, "Other")
    corporate = await make_user(core, Role.CORPORATE, company_id=home)
    customer = await make_user(core, Role.CUSTOMER, company_id=other)
    with pytest.raises(Forbidden):
        await create_ticket(core, actor_id=corporate.id, title="x y z", customer_id=customer.id)
    await admin.grant_company_access(core, actor_id=boss.id, user_id=corporate.id, company_id=other)
    ticket = await create_ticket(
        core, actor_id=corporate.id, title="x y z", customer_id=customer.id
    )
    assert ticket.company_id == other


async def test_customers_cannot_list_users_or_companies(core):
    customer = await make_user(core, Role.CUSTOMER)
    with pytest.raises(Forbidden):
        await admin.list_users(core, actor_id=customer.id)
    with pytest.raises(Forbidden):
        await admin.list_companies(core, actor_id=customer.id)
