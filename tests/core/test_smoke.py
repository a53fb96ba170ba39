from core.enums import Role, Status
from core.replies import add_reply
from core.tickets import get_ticket
from tests.factories import make_ticket, make_user


async def test_customer_opens_ticket_and_staff_reply_sets_first_response(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer)
    assert ticket.number == 1 and ticket.status is Status.OPEN
    clock.advance(minutes=5)
    await add_reply(core, actor_id=agent.id, ticket=ticket.number, body="On it", internal=False)
    detail = await get_ticket(core, actor_id=customer.id, ticket=ticket.number)
    assert detail.ticket.first_response_at == clock.now()
    assert [r.body for r in detail.replies] == ["On it"]
