"""What every disposition of the worker's chain may use, built once per worker.

    runner (Pipeline) builds a [Context] → each disposition (context, step) → Outcome | None

The services (config, people, the rules' router, the agents' desk, the outbox, the
correlator, the flood guards) and the questions about a mail's people that several
dispositions ask: who is the requester, is this the requester writing, which addresses
are ours, may an automatic answer go out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from mailbridge.agents.auth import AuthVerdict, own_mail
from mailbridge.agents.desk import AgentDesk, raw_header_values
from mailbridge.config import Config
from mailbridge.outbound import notices
from mailbridge.outbound.outbox import Outbox
from mailbridge.parsing.mime import Address
from mailbridge.parsing.requester import RequesterPolicy, requester_of
from mailbridge.parsing.robots import auto_reply_block_reason
from mailbridge.people import People
from mailbridge.routing import Router
from mailbridge.rules import RuleSet
from mailbridge.store.pending import Pending
from mailbridge.tickets import decisions
from mailbridge.tickets.correlate import Correlator
from mailbridge.tickets.decisions import RuleDecisions, RuleNotice, RuleNotifier
from mailbridge.tickets.floods import FloodGuard
from mailbridge.tickets.refs import ReferenceFormat
from mailbridge.tickets.senderflood import SenderFloods
from mailbridge.worker.message import Inbound


def rule_notifier(config: Config, outbox: Outbox, refs: ReferenceFormat) -> RuleNotifier:
    """How a rule's `notify` goes out: outbound/notices.rule_notification, logged under
    tickets/decisions' name (where the rules' effects are logged)."""

    def send(conn: Connection, notice: RuleNotice, pending: Pending, now: datetime) -> None:
        notices.rule_notification(
            conn,
            notice.ticket_id,
            notice.ticket,
            notice.recipients,
            notices.Sending(config, outbox, refs, pending, now),
            log=decisions.log,
            subject=notice.subject,
            sender=notice.sender,
            text=notice.text,
            rule=notice.rule,
        )

    return send


@dataclass
class Context:
    config: Config
    people: People
    outbox: Outbox
    correlator: Correlator
    router: Router | None
    refs: ReferenceFormat
    desk: AgentDesk
    decisions: RuleDecisions
    requester_policy: RequesterPolicy
    floods: FloodGuard
    sender_floods: SenderFloods
    own: list[str] = field(default_factory=list)  # our support addresses, as configured
    own_lower: set[str] = field(default_factory=set)
    support_domains: set[str] = field(default_factory=set)

    @classmethod
    def build(
        cls, config: Config, people: People, outbox: Outbox, correlator: Correlator, rules: RuleSet | None
    ) -> Context:
        refs = ReferenceFormat(config.tickets.reference, config.tickets.prefix)
        router = Router(rules, people) if rules is not None else None
        own = list(config.support.addresses)
        support_domains = {d.lower() for d in config.support.domains}
        policy = RequesterPolicy.build(
            config.tickets.requester_from, config.support.addresses, config.support.domains,
            config.tickets.noreply_senders,
        )  # fmt: skip
        own_domains = {a.rpartition("@")[2] for a in own} | support_domains
        return cls(
            config=config,
            people=people,
            outbox=outbox,
            correlator=correlator,
            router=router,
            refs=refs,
            desk=AgentDesk(config, people, outbox, refs),
            decisions=RuleDecisions(config, people, router, rule_notifier(config, outbox, refs)),
            requester_policy=policy,
            floods=FloodGuard(config.autoreply, own_domains),
            sender_floods=SenderFloods(config.autoreply.flood_window_minutes),
            own=own,
            own_lower={a.lower() for a in own},
            support_domains=support_domains,
        )

    def sending(self, pending: Pending, now: datetime) -> notices.Sending:
        """What a notice from this worker goes out with (outbound/notices)."""
        return notices.Sending(self.config, self.outbox, self.refs, pending, now)

    def is_ours(self, address: str) -> bool:
        """One of our addresses, with or without a +tag (a reply token), or at our domains."""
        local, _, domain = address.lower().partition("@")
        return f"{local.split('+', 1)[0]}@{domain}" in self.own_lower or domain in self.support_domains

    def not_copied(self, requester: str) -> Callable[[str], bool]:
        """Who is never copied as a participant: the requester, us, agents."""
        requester = requester.lower()
        return lambda a: a == requester or a in self.own_lower or self.is_ours(a) or self.people.is_agent(a)

    def requester(self, msg: Inbound) -> Address:
        """The person a new ticket is for (parsing/requester.py): a web form's email
        field, the Reply-To of a no-reply sender ([tickets] requester_from), From."""
        extraction = msg.analysis.extraction
        form = extraction.fields if extraction is not None else None
        return requester_of(msg.analysis.mail, msg.mail_from, self.requester_policy, form).address

    def from_requester(self, msg: Inbound, requester: str) -> bool:
        """This mail is the ticket's requester writing: From, or (with [tickets]
        requester_from = "reply-to-when-noreply") a no-reply sender's Reply-To."""
        requester = requester.lower()
        if msg.sender == requester or msg.speaks_for == requester:  # or another address of their contact
            return True
        if self.requester_policy.mode == "from" or not msg.sender:
            return False
        chosen = requester_of(msg.analysis.mail, msg.mail_from, self.requester_policy)
        return chosen.address.address.lower() == requester

    def automatic_reply_blocked(self, msg: Inbound) -> str | None:
        """Why no automatic mail may answer this one (RFC 3834, robots, bulk, alerts), or None."""
        mail = msg.analysis.mail
        vouched = requester_of(mail, msg.mail_from, self.requester_policy).source == "reply-to"
        reason = auto_reply_block_reason(
            mail, msg.mail_from, self.own, self.config.support.domains, noreply_vouched=vouched
        )
        cls = msg.analysis.classification
        extraction = msg.analysis.extraction
        if reason is None and cls.kind != "normal":
            reason = f"{cls.kind.replace('_', ' ')} mail: {cls.reason}"
        if reason is None and extraction is not None and extraction.dedupe_key:
            reason = f"monitoring alert (extractor {extraction.extractor_id}): nobody reads acknowledgements there"
        return reason

    def own_mail(self, msg: Inbound) -> AuthVerdict:
        """Is the mail its From address's own (agents/auth.own_mail)?"""
        auth = self.config.authentication
        return own_mail(
            raw_header_values(msg.raw, "Authentication-Results"),
            from_address=msg.sender,
            envelope_from=msg.mail_from,
            intake_trust=auth.trust_of(msg.source, msg.mailbox),
            trusted_authserv_ids={a.lower() for a in auth.trusted_authserv_ids},
        )
