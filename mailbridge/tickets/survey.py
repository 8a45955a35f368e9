"""The satisfaction survey, and mail to a requester outside the conversation.

    desk.resolved_notice (a ticket became resolved)
        -> [queue_survey]  templates/survey.* with a reply token of purpose "survey";
                           event "survey_sent"
    pipeline._follow_up: correlate found a token of purpose "survey"
        -> [record_answer] parse_score(the reply's new text)
                           -> "survey_answered" {score, comment, message}
                           -> or "survey_unreadable" {message, text}
                           never reopens, never answers, never tells the agents
    sla/housekeeping.auto_close -> [queue_to_requester] templates/auto-closed.*

Reporting computes satisfaction from the history: per ticket, the latest
"survey_answered" event counts (a second answer replaces the first).

Who gets none of it (requester_block_reason): monitoring alerts (the ticket has an
incident key), robot addresses by the RFC 3834 rules (parsing/robots.py: noreply,
mailer-daemon, ...), and addresses that bounced permanently (undeliverable).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from mailbridge.config import Config
from mailbridge.outbound.compose import ComposeError
from mailbridge.outbound.outbox import Outbox
from mailbridge.outbound.render import TemplateError
from mailbridge.parsing.mime import Address
from mailbridge.parsing.robots import is_robot_address
from mailbridge.routing import ticket_facts_for
from mailbridge.store.tables import undeliverable
from mailbridge.tickets import lifecycle
from mailbridge.tickets.language import language_of
from mailbridge.tickets.refs import ReferenceFormat

log = logging.getLogger(__name__)

__all__ = [
    "COMMENT_MAX",
    "parse_score",
    "queue_survey",
    "queue_to_requester",
    "record_answer",
    "requester_block_reason",
]

COMMENT_MAX = 2000
SCORE_MIN, SCORE_MAX = 1, 10

# A number as written: digits, perhaps a sign or decimals (so "7.5", "-3" or "1,000" are
# read whole and refused, never taken for 7, 3 or 1), not part of a word ("A4", "win10").
# A number standing alone; "9点" (Japanese "9 points") counts as standing alone.
_NUMBER = re.compile(r"(?<![\w.,])[-+]?[0-9]+(?:[.,][0-9]+)?(?![0-9]|[.,][0-9]|(?!点)\w)")
# "8/10", "8 / 10", "9 out of 10", "9 of 10" right after the score (and the same in the
# languages the survey is shipped in: "9 von 10", "9 sur 10", "9 de 10").
_OUT_OF = re.compile(r"^\s*(?:/|out\s+of|of|von|sur|de)\s*10(?![0-9])", re.IGNORECASE)
# What may stand before the score and is no comment: nothing, or a label.
_LABEL = re.compile(r"^\s*(?:my\s+)?(?:score|rating|grade|mark|note|points?)?\s*[:=\-\u2013\u2014]?\s*$", re.I)
_LEADING = " \t-\u2013\u2014:;,.|)点、。"


def parse_score(text: str) -> tuple[int | None, str]:
    """The score and the comment of a survey answer.

    The score is the first number on the first non-empty line, when it is a whole
    number from 1 to 10 ("8", "8/10", "Score: 9", "10 - great"); numbers only, no
    words. The comment is the rest: that line without the score (and a "/10" or "out of
    10" after it, and a "Score:" label before it), then the lines below; when the
    line has words before the score ("I give it a 9 because ..."), the whole line.
    No score: (None, the whole text). The comment is cut to COMMENT_MAX characters."""
    lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return None, ""
    # Full-width digits and punctuation ("９", "：") as Japanese input methods type them.
    line = unicodedata.normalize("NFKC", lines[first])
    found = _NUMBER.search(line)
    score: int | None = None
    if found is not None and re.fullmatch(r"[+]?[0-9]+", found.group()):
        value = int(found.group())
        if SCORE_MIN <= value <= SCORE_MAX:
            score = value
    if score is None or found is None:
        return None, (text or "").strip()[:COMMENT_MAX]
    before, after = line[: found.start()], line[found.end() :]
    after = _OUT_OF.sub("", after, count=1).lstrip(_LEADING).strip()
    head = after if _LABEL.match(before) else line.strip()
    rest = "\n".join(lines[first + 1 :]).strip()
    comment = "\n".join(part for part in (head, rest) if part)
    return score, comment[:COMMENT_MAX]


def requester_block_reason(conn: Connection, ticket: Any) -> str | None:
    """Why no automatic mail (survey, notice) may go to this ticket's requester, or None.
    ``ticket`` needs ``requester`` and ``incident_key``."""
    if ticket.incident_key:
        return "monitoring alert: nobody reads mail there"
    if is_robot_address(str(ticket.requester or "")):
        return f"{ticket.requester or '<>'} is a robot address (RFC 3834)"
    bounced = conn.execute(select(undeliverable.c.address).where(undeliverable.c.address == ticket.requester))
    if bounced.first() is not None:
        return f"{ticket.requester} is undeliverable"
    return None


def queue_to_requester(
    conn: Connection,
    ticket: Any,
    template: str,
    *,
    config: Config,
    outbox: Outbox,
    refs: ReferenceFormat,
    pending: lifecycle.Pending,
    now: datetime,
    status: str,
    purpose: str = "reply",
    extra: dict[str, Any] | None = None,
) -> str | None:
    """Queue templates/TEMPLATE.* to the ticket's requester (auto-generated, a reply
    token for ``purpose`` bound to them); its Message-ID, or None when it cannot be
    composed (then "auto_reply_suppressed" says why). ``ticket`` needs id, reference,
    subject, requester, requester_name. Checking requester_block_reason is the caller's."""
    ticket_id = int(ticket.id)
    requester = Address(ticket.requester_name or "", str(ticket.requester))
    context = {
        "ticket": {"reference": ticket.reference, "subject": ticket.subject, "status": status},
        "requester": {"name": requester.name, "address": requester.address},
        "subject_tag": refs.tag(ticket.reference),
        "support": {"name": config.support.name, "address": config.support.address},
        **(extra or {}),
    }
    try:
        return outbox.queue(
            pending,
            ticket_id=ticket_id,
            ticket=ticket_facts_for(conn, ticket_id) if outbox.checks_outgoing else None,
            kind=template[:32],
            template=template,
            context=context,
            to=requester,
            in_reply_to=None,
            references=[],
            now=now,
            auto_submitted="auto-generated",
            token_purpose=purpose,
            language=language_of(conn, ticket_id),  # the customer's, not the desk's
        )
    except (ComposeError, TemplateError) as exc:
        log.error("no %s mail for %s: %s", template, ticket.reference, exc)
        data = {"reason": f"cannot compose {template}: {exc}"}
        pending.events.append(lifecycle.event_row(ticket_id, now, "auto_reply_suppressed", "system", data))
        return None


def queue_survey(
    conn: Connection,
    ticket: Any,
    *,
    config: Config,
    outbox: Outbox,
    refs: ReferenceFormat,
    pending: lifecycle.Pending,
    now: datetime,
    reopen_address: str = "",
) -> str | None:
    """The survey to the requester of a ticket that just became resolved, with the
    event "survey_sent"; its Message-ID, or None. ``reopen_address``: where a mail
    reopens the ticket (the survey's own Reply-To only scores). The caller checked
    [sla] survey and requester_block_reason."""
    context = {"scale": {"low": SCORE_MIN, "high": SCORE_MAX}, "reopen_address": reopen_address}
    message_id = queue_to_requester(
        conn,
        ticket,
        "survey",
        config=config,
        outbox=outbox,
        refs=refs,
        pending=pending,
        now=now,
        status="resolved",
        purpose="survey",
        extra=context,
    )
    if message_id is not None:
        data = {"to": str(ticket.requester), "message_id": message_id}
        pending.events.append(lifecycle.event_row(int(ticket.id), now, "survey_sent", "system", data))
    return message_id


def record_answer(
    ticket_id: int, sender: str, text: str, message_pk: int, now: datetime, pending: lifecycle.Pending
) -> int | None:
    """A reply to the survey, stored as message ``message_pk``: "survey_answered" with
    its score and comment, or "survey_unreadable" with the text. Returns the score."""
    score, comment = parse_score(text)
    if score is None:
        data: dict[str, Any] = {"message": message_pk, "text": comment}
        pending.events.append(lifecycle.event_row(ticket_id, now, "survey_unreadable", sender, data))
        return None
    data = {"score": score, "comment": comment, "message": message_pk}
    pending.events.append(lifecycle.event_row(ticket_id, now, "survey_answered", sender, data))
    return score
