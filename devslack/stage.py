"""A whole ticketbot installation on loopback: the stand-in Slack, a workspace with people and
channels, and the real bot (HTTP mode, signed requests). Used by the demo and the end-to-end
tests alike."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from bot.app import BotServer
from bot.delivery import OutboxWorker
from bot.settings import BotSettings
from core import admin
from core.clock import Clock, FrozenClock
from core.context import Core
from devslack.requests import (
    BotClient,
    BotResponse,
    SlackRequest,
    SlackRequestSigner,
    SlackUser,
)
from devslack.server import FakeSlack

SIGNING_SECRET = "demo-signing-secret-" + "0" * 12
STAFF_CHANNEL = "CSTAFF0001"
MANAGER_CHANNEL = "CMANAGER01"
PUBLIC_CHANNEL = "CGENERAL01"


@dataclass(frozen=True)
class Person:
    user_id: str
    name: str
    email: str
    role: str


CUSTOMER = Person("UCUSTOMER1", "Alice Customer", "alice@example.com", "customer")
CUSTOMER_2 = Person("UCUSTOMER2", "Bob Customer", "bob@example.org", "customer")
AGENT = Person("UAGENT0001", "Dana Agent", "dana@support.test", "agent")
MANAGER = Person("UMANAGER01", "Max Manager", "max@support.test", "manager")
ADMIN = Person("UADMIN0001", "Ada Admin", "ada@support.test", "admin")
PEOPLE = (CUSTOMER, CUSTOMER_2, AGENT, MANAGER, ADMIN)


@dataclass
class Replica:
    """A second bot process on the same database and the same Slack: Slack (or a load balancer)
    may hand any request, or its retry, to either. It has its own engine and connection pool."""

    server: BotServer
    client: BotClient
    worker: OutboxWorker

    @property
    def runtime(self) -> Any:
        assert self.server.runtime is not None
        return self.server.runtime

    async def send(self, request: SlackRequest, **kwargs: Any) -> BotResponse:
        return await self.client.send(request, **kwargs)

    async def stop(self) -> None:
        await self.client.close()
        await self.server.stop()
        await self.server.core.close()


class Stage:
    """Start with `async with Stage(database_url=...) as stage:`; act with `stage.send(...)`,
    then `await stage.settle()` to let the bot finish and deliver its outbox."""

    def __init__(
        self,
        *,
        database_url: str,
        clock: Clock | None = None,
        core: Core | None = None,
        staff_channel_private: bool = True,
        settings_overrides: dict[str, Any] | None = None,
        run_worker_task: bool = False,
    ) -> None:
        self.database_url = database_url
        self.clock = clock or FrozenClock()
        self.fake = FakeSlack(clock=self.clock)
        self.staff_channel_private = staff_channel_private
        self.settings_overrides = settings_overrides or {}
        self.core = core
        self.run_worker_task = run_worker_task
        self.server: BotServer | None = None
        self.client: BotClient | None = None
        self.worker: OutboxWorker | None = None
        self.replicas: list[Replica] = []

    async def __aenter__(self) -> Stage:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def settings(self, api_url: str) -> BotSettings:
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "slack_bot_token": self.fake.bot_token,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": api_url,
            "staff_channel_id": STAFF_CHANNEL,
            "manager_channel_id": MANAGER_CHANNEL,
            "admin_user_ids": [ADMIN.user_id],
            "host": "127.0.0.1",
            "port": 0,
            "run_scheduler": False,
            "ticket_create_limit": 1000,
            "search_limit": 1000,
            "message_limit": 1000,
            "identity_cache_seconds": 0,
            # The stand-in enforces no rate limits unless a test enables them: the bot's
            # pacing runs fifty times faster so that a scenario never waits for Slack's rates
            # (a 429's pause is not scaled: tests of it still see it).
            "slack_pacing_speed": 50.0,
        }
        values.update(self.settings_overrides)
        return BotSettings(_env_file=None, **values)

    async def start(self) -> None:
        api_url = await self.fake.start()
        for person in PEOPLE:
            self.fake.add_user(person.user_id, person.name, email=person.email)
        staff = [AGENT.user_id, MANAGER.user_id, ADMIN.user_id]
        self.fake.add_channel(
            STAFF_CHANNEL, "support-triage", is_private=self.staff_channel_private, members=staff
        )
        self.fake.add_channel(
            MANAGER_CHANNEL, "support-managers", is_private=True, members=[MANAGER.user_id]
        )
        self.fake.add_channel(
            PUBLIC_CHANNEL, "general", is_private=False, members=[p.user_id for p in PEOPLE]
        )
        settings = self.settings(api_url)
        self.server = BotServer(
            settings, core=self.core, clock=self.clock, run_worker=self.run_worker_task
        )
        base_url = await self.server.start()
        assert self.server.runtime is not None
        self.worker = self.server.worker or OutboxWorker(self.server.runtime, worker_id="stage")
        self.client = BotClient(base_url, SlackRequestSigner(SIGNING_SECRET))
        await self._seed_roles()

    async def _seed_roles(self) -> None:
        """The workspace's staff, as an admin would set them up with `/ticket role`."""
        identity = self.runtime.identity
        admin_user = await identity.resolve(ADMIN.user_id)
        for person in PEOPLE:
            user = await identity.resolve(person.user_id)
            if user.role.value != person.role:
                await admin.change_role(
                    self.runtime.core, actor_id=admin_user.id, user_id=user.id, role=person.role
                )
            identity.invalidate(person.user_id)

    async def start_replica(self) -> Replica:
        """Start another bot on the same database and the same stand-in Slack (already migrated
        and seeded by `start`); `settle` then waits for it and drains its outbox worker too."""
        assert self.server is not None
        settings = self.settings(self.fake.api_url)
        server = BotServer(settings, clock=self.clock, run_worker=False, migrate=False)
        try:
            base_url = await server.start()
        except BaseException:
            await server.stop()
            await server.core.close()
            raise
        assert server.runtime is not None
        worker = OutboxWorker(server.runtime, worker_id=f"replica-{len(self.replicas) + 1}")
        replica = Replica(server, BotClient(base_url, SlackRequestSigner(SIGNING_SECRET)), worker)
        self.replicas.append(replica)
        return replica

    async def stop(self) -> None:
        for replica in self.replicas:
            await replica.stop()
        self.replicas = []
        if self.client is not None:
            await self.client.close()
        if self.server is not None:
            await self.server.stop()
            if self.core is None:
                await self.server.core.close()
        await self.fake.stop()

    @property
    def runtime(self) -> Any:
        assert self.server is not None and self.server.runtime is not None
        return self.server.runtime

    def user(self, person: Person | str) -> SlackUser:
        user_id = person.user_id if isinstance(person, Person) else person
        return SlackUser(user_id, fake=self.fake)

    async def send(self, request: SlackRequest, **kwargs: Any) -> BotResponse:
        assert self.client is not None
        return await self.client.send(request, **kwargs)

    async def settle(self) -> None:
        """Wait for every running listener, then deliver the outbox until nothing is due."""
        assert self.worker is not None
        if self.replicas:
            await self._settle_replicas()
            return
        for _ in range(50):
            await self.runtime.wait_idle()
            if not await self.worker.run_once() and not self.runtime.in_flight:
                return

    async def _settle_replicas(self) -> None:
        """Settle with replicas: every bot's listeners finish, and all outbox workers deliver
        at the same time (as the replicas' workers would), until none has anything left."""
        assert self.worker is not None
        runtimes = [self.runtime, *(r.runtime for r in self.replicas)]
        workers = [self.worker, *(r.worker for r in self.replicas)]
        for _ in range(50):
            for runtime in runtimes:
                await runtime.wait_idle()
            handled = await asyncio.gather(*(w.run_once() for w in workers))
            if not any(handled) and not any(r.in_flight for r in runtimes):
                return

    async def act(self, request: SlackRequest, **kwargs: Any) -> BotResponse:
        """Send a request and settle: one user action and all that follows from it."""
        response = await self.send(request, **kwargs)
        await self.settle()
        return response

    async def open_ticket(
        self,
        person: Person,
        *,
        title: str,
        description: str = "",
        priority: str = "medium",
        customer: Person | None = None,
    ) -> dict[str, Any]:
        """The person runs `/ticket new`, fills in the modal and submits it; returns the view."""
        user = self.user(person)
        await self.act(user.slash_command(f"new {title}", channel_id=self.dm(person)))
        view = self.fake.views_opened(person.user_id)[-1]
        values: dict[str, dict[str, Any]] = {
            "title_block": {"title": title},
            "description_block": {"description": description},
            "priority_block": {"priority": priority},
        }
        if customer is not None:
            values["customer_block"] = {"customer": customer.user_id}
        response = await self.act(user.submit(_view_dict(view), values))
        return {"view": view, "response": response}

    async def submit_view(
        self, person: Person, view: Any, values: dict[str, dict[str, Any]]
    ) -> BotResponse:
        """The person submits a modal; the bot's answer is applied as Slack applies it: an empty
        acknowledgement closes the modal, response_action "clear" closes all of the person's
        modals, and "errors", "update" or "push" leave it open."""
        response = await self.act(self.user(person).submit(_view_dict(view), values))
        action = response.json.get("response_action")
        if response.status == 200 and action in (None, "clear"):
            view_id = _view_dict(view).get("id")
            for opened in self.fake.views_opened(person.user_id):
                if not opened.closed and (action == "clear" or opened.id == view_id):
                    self.fake.close_view(opened.id)
        return response

    def dm(self, person: Person) -> str:
        return self.fake.open_dm(person.user_id)

    def unique(self, text: str) -> str:
        """Text with a unique tag, so a leak scanner can look for it exactly."""
        return f"{text} [{uuid.uuid4().hex[:8]}]"


def _view_dict(view: Any) -> dict[str, Any]:
    if isinstance(view, dict):
        return view
    to_api = getattr(view, "to_api", None)
    return to_api() if callable(to_api) else dict(view)
