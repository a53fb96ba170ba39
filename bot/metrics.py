"""Prometheus metrics of one running bot, served on GET /metrics.

Each BotServer owns its registry (not prometheus-client's global one), so several servers in one
process (tests, the scale-out test's replicas) keep separate figures. Counters and the ack
histogram are updated as requests and deliveries happen; the database figures (outbox backlog,
tickets by status) are read when Prometheus scrapes, under a short time-out, so that a scrape
answers promptly even while the database is down (`ticketbot_database_up` is then 0)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core import outbox, tickets
from core.context import Core
from core.outbox import OutboxKind

log = logging.getLogger("bot.metrics")

# The *_created series (counter creation times) only add noise to this exposition.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REQUEST_KINDS = ("command", "block_actions", "view_submission", "event", "shortcut", "other")
OUTCOMES = ("ok", "error", "refused")
DELIVERY_RESULTS = ("delivered", "retried", "failed")
# Slack wants the ack within 3 seconds; the buckets are dense below that.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)

_MAX_LABEL = 80


@dataclass(frozen=True)
class RequestInfo:
    """What a Slack request is, for metrics and the access log (taken from its body)."""

    kind: str
    action: str | None = None
    user: str | None = None


def _clean(value: object) -> str | None:
    """A short printable string from an untrusted value (bodies are read before verification)."""
    if not isinstance(value, str) or not value:
        return None
    text = "".join(ch for ch in value if ch.isprintable())
    return text[:_MAX_LABEL] or None


def describe_request(body: Mapping[str, Any]) -> RequestInfo:
    """Kind, action and Slack user of a request body as bolt parsed it: a slash command's form
    (`command=`), an interactive `payload=` JSON, or an Events API JSON envelope."""
    if "command" in body:
        text = body.get("text")
        first = text.split()[0] if isinstance(text, str) and text.split() else ""
        action = f"{body.get('command')} {first}".strip()
        return RequestInfo("command", _clean(action), _clean(body.get("user_id")))
    kind = body.get("type")
    user_obj = body.get("user")
    user = _clean(user_obj.get("id")) if isinstance(user_obj, Mapping) else None
    if kind == "event_callback":
        event = body.get("event")
        event = event if isinstance(event, Mapping) else {}
        name = event.get("type")
        if isinstance(name, str) and isinstance(event.get("subtype"), str):
            name = f"{name}.{event['subtype']}"
        who = event.get("user")
        if not isinstance(who, str) and isinstance(event.get("message"), Mapping):
            who = event["message"].get("user")
        return RequestInfo("event", _clean(name), _clean(who))
    if kind == "block_actions":
        actions = body.get("actions")
        first_action = actions[0] if isinstance(actions, list) and actions else {}
        action_id = first_action.get("action_id") if isinstance(first_action, Mapping) else None
        return RequestInfo("block_actions", _clean(action_id), user)
    if kind in ("view_submission", "view_closed"):
        view = body.get("view")
        callback = view.get("callback_id") if isinstance(view, Mapping) else None
        return RequestInfo(
            "view_submission" if kind == "view_submission" else "other", _clean(callback), user
        )
    if kind in ("shortcut", "message_action"):
        return RequestInfo("shortcut", _clean(body.get("callback_id")), user)
    return RequestInfo("other", _clean(kind), user)


def outcome_of(status: int) -> str:
    """ok for a 2xx answer, refused for 401/403 (bad signature, stale timestamp), else error."""
    if 200 <= status < 300:
        return "ok"
    if status in (401, 403):
        return "refused"
    return "error"


@dataclass(frozen=True)
class DatabaseFigures:
    """What the scrape read from the database; None where it could not."""

    backlog: int | None = None
    tickets: dict[str, int] | None = None
    up: bool = False


async def read_database_figures(core: Core) -> DatabaseFigures:
    """Outbox backlog and live tickets by status."""
    backlog = await outbox.backlog(core)
    counts = await tickets.count_by_status(core)
    by_status = {status.value: count for status, count in counts.items()}
    return DatabaseFigures(backlog=backlog, tickets=by_status, up=True)


class _ScrapeTimeCollector(Collector):
    """Gauges computed at scrape time from the latest DatabaseFigures and the runtime."""

    def __init__(self) -> None:
        self.figures = DatabaseFigures()
        self.in_flight: Callable[[], int] = lambda: 0

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        figures = self.figures
        yield GaugeMetricFamily(
            "ticketbot_database_up",
            "1 when the database answered this scrape's queries in time",
            value=1 if figures.up else 0,
        )
        if figures.backlog is not None:
            yield GaugeMetricFamily(
                "ticketbot_outbox_backlog",
                "Outbox messages waiting for delivery (not delivered, not failed)",
                value=figures.backlog,
            )
        if figures.tickets is not None:
            tickets = GaugeMetricFamily(
                "ticketbot_tickets", "Tickets by status (deleted ones excluded)", labels=["status"]
            )
            for status, count in figures.tickets.items():
                tickets.add_metric([status], count)
            yield tickets
        yield GaugeMetricFamily(
            "ticketbot_listeners_in_flight",
            "Listeners still running after their ack",
            value=self.in_flight(),
        )


class BotMetrics:
    """The metrics of one BotServer, in its own CollectorRegistry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ticketbot_slack_requests",
            "Slack requests answered, by kind and outcome (ok, error, refused)",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "ticketbot_slack_ack_seconds",
            "Time from receiving a Slack request to answering it (the ack), by kind",
            ["kind"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.deliveries = Counter(
            "ticketbot_outbox_deliveries",
            "Outbox delivery attempts by result (delivered, retried, failed) and message kind",
            ["result", "kind"],
            registry=self.registry,
        )
        self.sla_alerts = Counter(
            "ticketbot_sla_alerts_sent",
            "SLA alerts posted to the manager channel",
            registry=self.registry,
        )
        self._scrape = _ScrapeTimeCollector()
        self.registry.register(self._scrape)
        # Every series exists from the start (at 0), so rates and alerts work before the first
        # occurrence.
        for kind in REQUEST_KINDS:
            self.ack_seconds.labels(kind)
            for outcome in OUTCOMES:
                self.requests.labels(kind, outcome)
        for result in DELIVERY_RESULTS:
            for message_kind in OutboxKind:
                self.deliveries.labels(result, message_kind.value)

    def watch_in_flight(self, count: Callable[[], int]) -> None:
        self._scrape.in_flight = count

    def observe_request(self, kind: str, status: int, seconds: float) -> None:
        kind = kind if kind in REQUEST_KINDS else "other"
        self.requests.labels(kind, outcome_of(status)).inc()
        self.ack_seconds.labels(kind).observe(seconds)

    def record_delivery(self, result: str, kind: OutboxKind) -> None:
        """Called by the outbox worker for each attempt's result."""
        self.deliveries.labels(result, kind.value).inc()
        if result == "delivered" and kind is OutboxKind.MANAGER_ALERT:
            self.sla_alerts.inc()

    async def render(self, core: Core, *, time_limit: float) -> bytes:
        """The Prometheus text exposition, with the database figures read now (or marked down
        when they take longer than `time_limit` seconds)."""
        try:
            figures = await asyncio.wait_for(read_database_figures(core), timeout=time_limit)
        except Exception as error:  # a scrape reports the database as down; it never fails
            log.warning(
                "metrics: database figures unavailable", extra={"error": type(error).__name__}
            )
            figures = DatabaseFigures()
        self._scrape.figures = figures
        return generate_latest(self.registry)
