"""Mail kept "unrendered" is rendered and queued once the templates are good again.

Where this sits in the flow: outbox.Outbox.queue keeps a mail whose template failed on its
data as an outbox row in state "unrendered" (no body yet, its context and addressing in the
row's ``render`` column). After every good reload of the templates, and at a worker's
start, the worker calls :func:`render_waiting`: each such row is rendered with the
templates now in use, composed as it would have been (same Message-ID, reply token and
date), passed through the outgoing rules, and becomes "queued" (or "held") for the
sender ("mail_rendered" in the ticket's history). A row that still fails stays as it
is, with the new error. The state change is
conditional (``WHERE state = 'unrendered'``), so two workers doing this at once queue a
mail once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, select, update

from mailbridge.outbound.compose import ComposeError
from mailbridge.outbound.outbox import Outbox
from mailbridge.outbound.render import TemplateError
from mailbridge.parsing.mime import Address
from mailbridge.rules import TicketFacts
from mailbridge.store.db import Store, write_tx
from mailbridge.store.pending import event_row
from mailbridge.store.tables import outbox as outbox_table
from mailbridge.tickets import lifecycle

__all__ = ["BATCH", "render_waiting"]

log = logging.getLogger(__name__)

BATCH = 200  # rows per transaction: a long backlog does not hold the write lock for long


def render_waiting(
    store: Store,
    box: Outbox,
    now: datetime,
    facts: Callable[[Connection, int], TicketFacts | None] = lambda conn, ticket_id: None,
) -> tuple[int, int]:
    """Render every unrendered outbox row with ``box``'s templates: (queued, still failing).
    ``facts``: the ticket's facts for outgoing rules (routing.ticket_facts_for)."""
    queued = failing = 0
    after = 0
    while True:
        with write_tx(store.main) as conn:
            rows = conn.execute(
                select(outbox_table.c.id, outbox_table.c.ticket_id, outbox_table.c.message_id, outbox_table.c.render)
                .where(outbox_table.c.state == "unrendered", outbox_table.c.id > after)
                .order_by(outbox_table.c.id)
                .limit(BATCH)
            ).all()
            for row in rows:
                after = int(row.id)
                render = row.render or {}
                template = str(render.get("template", "?"))
                try:
                    subject, text, raw = box.compose_unrendered(render, row.message_id)
                except (TemplateError, ComposeError, KeyError, ValueError, TypeError) as exc:
                    failing += 1
                    if isinstance(exc, TemplateError):
                        box.note_failure(template, exc)
                    else:
                        log.error("outbox %s cannot be composed: %s", row.id, exc)
                    conn.execute(
                        update(outbox_table).where(outbox_table.c.id == row.id).values(last_error=str(exc)[:4000])
                    )
                    continue
                name, address = render["to"]
                ticket = facts(conn, int(row.ticket_id)) if row.ticket_id is not None and box.checks_outgoing else None
                state, hold_reason = box.hold(
                    to=Address(name, address),
                    cc=[],
                    subject=subject,
                    text=text,
                    now=now,
                    template=template,
                    author=None,
                    ticket=ticket,
                )
                done = conn.execute(
                    update(outbox_table)
                    .where(outbox_table.c.id == row.id, outbox_table.c.state == "unrendered")
                    .values(
                        raw=raw,
                        state=state,
                        hold_reason=hold_reason,
                        render=None,
                        last_error=None,
                        next_attempt_at=now,
                    )
                )
                if done.rowcount:
                    queued += 1
                    if row.ticket_id is not None:
                        data = {"to": address, "message_id": row.message_id, "template": template, "state": state}
                        lifecycle.add_events(
                            conn, [event_row(int(row.ticket_id), now, "mail_rendered", "system", data)]
                        )
        if len(rows) < BATCH:
            break
    if queued or failing:
        log.info("unrendered mail: %d rendered and queued, %d still failing", queued, failing)
    return queued, failing
