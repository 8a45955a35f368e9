"""When an agent is told why their mail did nothing ("Not done"), and when not.

agents/agent_notices.py explains a refused or erroneous agent mail, and a #fwd that opened
nothing, by mail to the agent's configured address. Each explanation answers a mail,
so it can be abused or loop: 30 forged mails in an agent's name made 30 explanations,
and an autoresponder on an agent's mailbox answered every explanation (50 rounds).
`ExplanationLimit.blocked` says why none goes out: automatic mail (RFC 3834) and
bounces never get one, nor a mail that answers one of our explanations, and an agent
gets at most `[autoreply] agent_notices_per_hour` of them. Reads only; runs inside the
worker's transaction, counting the explanations the batch has queued but not written.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, func, select

from mailbridge.config import Config
from mailbridge.parsing.analysis import Analysis
from mailbridge.parsing.robots import auto_reply_block_reason
from mailbridge.people import Agent
from mailbridge.store.pending import Pending
from mailbridge.store.tables import outbox

__all__ = ["EXPLANATIONS", "ExplanationLimit"]

# The outbox kinds of the explanations (AgentNotices.tell_agent and its #fwd variant).
EXPLANATIONS = ("agent-refused", "agent-command-error")
_OUR_EXPLANATION = (
    select(outbox.c.id)
    .where(outbox.c.message_id.in_(bindparam("e_ids", expanding=True)), outbox.c.kind.in_(EXPLANATIONS))
    .limit(1)
)


class ExplanationLimit:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._limit = config.autoreply.agent_notices_per_hour
        # Counted up to the limit only (index ix_outbox_rcpt_created).
        self._recent = select(func.count()).select_from(
            select(outbox.c.id)
            .where(
                outbox.c.rcpt == bindparam("e_rcpt"),
                outbox.c.created_at >= bindparam("e_since"),
                outbox.c.kind.in_(EXPLANATIONS),
            )
            .limit(self._limit + 1)
            .subquery()
        )

    def blocked(
        self,
        conn: Connection,
        analysis: Analysis,
        mail_from: str | None,
        agent: Agent,
        now: datetime,
        pending: Pending,
    ) -> str | None:
        """Why ``agent`` gets no explanation for this mail, or None when they may."""
        support = self._config.support
        mail = analysis.mail
        blocked = auto_reply_block_reason(mail, mail_from, support.addresses, support.domains)
        if blocked is not None:
            return blocked
        if analysis.classification.kind != "normal":
            return f"{analysis.classification.kind.replace('_', ' ')} mail"
        answered = [i for i in dict.fromkeys([mail.in_reply_to, *mail.references[-50:]]) if i]
        if answered and conn.execute(_OUR_EXPLANATION, {"e_ids": answered}).first() is not None:
            return "the mail answers one of our explanations (an autoresponder there would loop)"
        address = agent.email.lower()
        since = now - timedelta(hours=1)
        sent = sum(
            1
            for row in pending.outbox
            if row["rcpt"] == address and row["kind"] in EXPLANATIONS and row["created_at"] >= since
        )
        if sent < self._limit:
            sent += int(conn.execute(self._recent, {"e_rcpt": address, "e_since": since}).scalar_one())
        if sent >= self._limit:
            return (
                f"{self._limit} explanations already went to {address} in the last hour"
                " ([autoreply] agent_notices_per_hour)"
            )
        return None
