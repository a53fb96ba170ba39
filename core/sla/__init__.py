"""The SLA engine: the timers the ticket services arm and disarm, the scan that fires them
(alerting managers once per ticket and threshold), and the list of tickets at risk or in
breach for `/ticket sla`.

Timers. Every alert of a ticket is a row of ``sla_timers``: (ticket, threshold, due_at,
fired_at). The ticket services keep the armed ones (``fired_at`` empty) in step with the
ticket in the same transaction as the change (``schedule`` and ``stop`` below): created and
reopened tickets get a warning and a breach timer, a priority change moves them, and the first
public staff reply, resolving, closing and deleting remove them. Only armed timers are in the
due index, so the due ones are one short index range away, and the scan never writes to the
wide, heavily indexed tickets table.

The scan is meant to run in every bot replica at once (core/ has no scheduler of its own; see
bot/scheduler.py). It is safe to do so. On PostgreSQL it is one statement:

- It takes the due armed timers, soonest first, locking them ``FOR UPDATE SKIP LOCKED``: a
  concurrent scan skips them instead of waiting, and so does the scan for a ticket whose
  timers a service is changing right now (the services lock them as they move or remove them).
- It fires them: ``fired_at`` is set, and that row, unique per (ticket, threshold), is the
  claim. A fired timer is never armed again (``schedule`` leaves it; ``stop`` keeps it), so
  however many scans race and whatever happens to the ticket later, a (ticket, threshold) is
  claimed once in the ticket's life.
- The timers it fires are marked with the scan's id (``fired_by``), and in the same
  transaction it queues one ``sla_alerts`` outbox message naming that id. Delivering it
  (``fan_out``, run by the delivery worker) writes each alert's own messages in one
  transaction that also records the delivery, so it happens once: the manager alert; on
  breach the assignee's DM and a staff card refresh. That is where the ticket is checked
  again: an alert of a ticket answered, resolved, closed or deleted since the scan is
  dropped. So the scan writes one row per alert and one message however many alerts it
  fires (the per-alert messages cost more than everything else together), and an alert is
  never written for a ticket that was answered before it was written.
- A ticket whose warning and breach have both passed (a late scan, or a priority raised after
  creation) gets both alerts, the warning first: each threshold is a fact worth recording, and
  the messages of a thread are delivered in the order written.
- A failure of the database itself (connection lost, database unavailable) raises; the
  scheduler logs it and runs again at the next interval. In ``fan_out`` an alert whose
  messages the database refuses is logged and its timer armed again (the next scan retries
  it), while the other alerts of the batch go out.

Elsewhere (SQLite) the scan runs the same steps as portable statements; SQLite has one writer
at a time, so there is nothing to race.

Modules: `timers` (schedule, stop, restart), `scanner` (the scan: the claim), `fanout` (one
`sla_alerts` message becomes each alert's messages), `overview` (SLA states, `/ticket sla`),
`claims` (the rows they share).
"""

from core.sla.claims import ClaimedAlert
from core.sla.fanout import FanOutResult, fan_out
from core.sla.overview import SlaState, SlaTicket, at_risk, sla_state
from core.sla.scanner import (
    DUE_CONDITION,
    DUE_ORDER,
    FIRE_SQL,
    ScanResult,
    due_query,
    fire_sql,
    scan,
    scan_alerts,
)
from core.sla.timers import awaits_first_response, restart, schedule, stop

__all__ = [
    "DUE_CONDITION",
    "DUE_ORDER",
    "FIRE_SQL",
    "ClaimedAlert",
    "FanOutResult",
    "ScanResult",
    "SlaState",
    "SlaTicket",
    "at_risk",
    "awaits_first_response",
    "due_query",
    "fan_out",
    "fire_sql",
    "restart",
    "scan",
    "scan_alerts",
    "schedule",
    "sla_state",
    "stop",
]
