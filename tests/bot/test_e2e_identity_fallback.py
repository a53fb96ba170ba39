"""A burst of new people exceeds users.info's rate limit (Tier 4): someone new whose
interaction arrives while Slack answers 429 is provisioned from the signed payload as a plain
customer of this workspace, and served; someone whose payload names another workspace is not.
"""

from __future__ import annotations

import json

from core import tickets, users
from core.enums import Role
from devslack.requests import SlackUser
from devslack.stage import Stage


def create_view(view_id: str) -> dict[str, object]:
    return {"id": view_id, "callback_id": "create_ticket", "private_metadata": "{}", "blocks": []}


VALUES = {
    "title_block": {"title": "Cannot log in since the outage"},
    "description_block": {"description": "The page keeps loading."},
    "priority_block": {"priority": "high"},
}


async def test_a_newcomer_is_served_from_the_payload_while_users_info_is_rate_limited(
    stage: Stage,
) -> None:
    stage.runtime.identity.ttl = 3600  # (the test settings cache no profile)
    stage.fake.add_user("UBURST0001", "Burst Person", email="burst@example.com")
    stage.fake.fail_next("users.info", status=429, retry_after=30)
    person = SlackUser("UBURST0001", name="burst.person", fake=stage.fake)
    response = await stage.send(person.submit(create_view("VBURST0001"), VALUES))
    assert response.status == 200
    assert "errors" not in json.dumps(response.json)
    await stage.settle()
    user = await users.find_by_slack_id(stage.core, slack_user_id="UBURST0001")
    assert user is not None and user.role is Role.CUSTOMER
    assert user.display_name == "burst.person" and user.email is None  # no company from it
    page = await tickets.my_tickets(stage.core, actor_id=user.id)
    assert [t.title for t in page.items] == ["Cannot log in since the outage"]
    # users.info is asked again later (PROFILE_RETRY_SECONDS), not on each request meanwhile
    assert stage.runtime.identity.profile_is_fresh("UBURST0001")


async def test_a_payload_of_another_workspace_is_not_enough_to_provision_anyone(
    stage: Stage,
) -> None:
    stage.fake.add_user("UOTHER0001", "Other Person", team_id="TOTHERORG1")
    stage.fake.fail_next("users.info", status=429, retry_after=30)
    person = SlackUser("UOTHER0001", team_id="TOTHERORG1", name="other", fake=stage.fake)
    response = await stage.send(person.submit(create_view("VOTHER0001"), VALUES))
    assert response.status == 200
    await stage.settle()
    assert await users.find_by_slack_id(stage.core, slack_user_id="UOTHER0001") is None
    told = [c.params.get("text", "") for c in stage.fake.calls_to("chat.postMessage")]
    assert any("could not tell who you are" in text for text in told)


async def test_a_paused_users_info_lane_is_not_called_from_a_request(stage: Stage) -> None:
    pacer = stage.runtime.client.pacer  # type: ignore[attr-defined]
    assert pacer is not None
    await pacer.on_rate_limited("users.info", 30.0)  # Slack said: no users.info for 30 s
    stage.fake.add_user("UBURST0002", "Burst Person Two")
    before = len(stage.fake.calls_to("users.info", include_injected=True))
    person = SlackUser("UBURST0002", name="burst.two", fake=stage.fake)
    response = await stage.send(person.submit(create_view("VBURST0002"), VALUES))
    assert response.status == 200 and "errors" not in json.dumps(response.json)
    await stage.settle()
    assert len(stage.fake.calls_to("users.info", include_injected=True)) == before
    user = await users.find_by_slack_id(stage.core, slack_user_id="UBURST0002")
    assert user is not None and user.display_name == "burst.two"
