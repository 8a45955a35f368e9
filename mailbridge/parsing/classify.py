"""What kind of mail is this? normal | auto_reply | bounce | bulk | loop (classify stage).

    intake (raw bytes) -> parse (ParsedMail) -> [classify] -> correlate -> decide -> apply

``classify`` runs right after the parse stage on every inbound mail.  It is pure
(no database, no I/O, no clock) and never raises; the pipeline uses the answer to
route the mail: a ``bounce`` marks our outgoing mail to ``bounced_recipients`` as
failed (``original_message_ids`` names which mail it was), an ``auto_reply`` or
``bulk`` mail is filed without an acknowledgement, a ``loop`` is our own mail
coming back and must never be answered.  ``robots.py`` (RFC 3834: may we answer
automatically?) is a separate, stricter question and stays the guard for
acknowledgements whatever the kind here.

Kinds, strongest first, and why this order when several apply:

1. ``loop``: the mail is ours (From or envelope sender is one of our addresses or
   domains, its own Message-ID is one of our ``mb-...@`` ids, an X-Loop names us)
   or has passed through 30 or more Received hops.  First because every other
   kind could be answered or acted on, and acting on our own mail is how storms
   start: our acknowledgements carry Auto-Submitted, so without this rule our own
   ack coming back would look like an auto_reply.
2. ``bounce``: a delivery failure report.  Before auto_reply because most MTAs
   mark their DSNs ``Auto-Submitted: auto-replied`` (RFC 3834 5) and some add
   Precedence: bulk; the bounce is the more useful fact (who failed).  It needs
   bounce evidence: a delivery-status part (RFC 3464), an X-Failed-Recipients
   header, or a machine sender (null envelope, MAILER-DAEMON, postmaster) plus a
   bounce subject, bounce text, an attached original or a flufl.bounce hit.  A
   person writing "my mail bounced" is normal, even with the pasted error.
3. ``auto_reply``: out-of-office and other automatic answers (Auto-Submitted
   other than "no", Precedence: auto_reply, X-Autoreply/X-Autorespond,
   X-Apple-Action: vacation, an OOF subject in one of many languages), read
   receipts (multipart/report; report-type=disposition-notification), success
   DSNs and ARF feedback reports.  Before bulk because vacation programs add
   Precedence: bulk/junk to their replies to keep other robots quiet.
4. ``bulk``: mailing lists and newsletters (Precedence: bulk|junk|list, List-Id,
   List-Unsubscribe or another List-* header, a bulk-mailer header).
5. ``normal``: everything else.

Deliberately *not* evidence on their own:

* ``X-Auto-Response-Suppress``: a request to others not to auto-answer this mail.
  Exchange sets ``All`` on OOF replies, but Outlook also sets it on meeting
  requests and ordinary mail, and we set it on our own acknowledgements; it says
  nothing about whether the mail itself is automatic.
* ``X-MS-Exchange-Inbox-Rules-Loop``: set when an Exchange inbox rule forwarded or
  redirected the mail (OOF replies carry it too, but with Auto-Submitted, which
  is what we go by); a customer's forwarding rule is not a robot talking.
* a noreply@ sender: notifications from services are mail a person may need.

Cost: normal mail costs one pass over the header list and two anchored regexes
on the subject (a few microseconds).  The MIME tree, the bounce heuristics and
flufl.bounce run only when a cheap check says "maybe a bounce" (``bounces.py``).

Errors: nothing escapes.  If the bounce analysis fails, the answer falls back to
what the headers alone say (a DSN stays a bounce, with the error in the reason).
If the classifier itself fails, the answer is ``normal`` with the error in the
reason: the mail then becomes a ticket a person reads, which loses nothing, and
robots.py still keeps acknowledgements away from robots.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from mailbridge.parsing.bounces import LIBRARY, BouncedRecipient, BounceReport, analyse
from mailbridge.parsing.mime import ParsedMail

__all__ = ["KINDS", "BouncedRecipient", "Classification", "LIBRARY", "classify"]

KINDS = ("normal", "auto_reply", "bounce", "bulk", "loop")

# RFC 5321 6.3 asks MTAs that count Received fields to reject only from about
# 100, but real paths rarely pass 15 hops; sendmail's default limit is 25,
# Postfix's 50.  A mail that far along is going round in circles.
MAX_RECEIVED = 30


@dataclass(frozen=True)
class Classification:
    kind: str  # one of KINDS
    reason: str  # why, for people: "DSN (RFC 3464) from mx.example.net", "Auto-Submitted: auto-replied"
    bounced_recipients: tuple[BouncedRecipient, ...] = ()
    # Message-ID / In-Reply-To / References of the returned original (without <>),
    # plus any of our mb-...@ ids found in the bounce: which of our mails bounced.
    original_message_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "classification": self.kind,
            "reason": self.reason,
            "bounced_recipients": [r.to_json() for r in self.bounced_recipients],
            "original_message_ids": list(self.original_message_ids),
        }


def classify(
    mail: ParsedMail,
    raw: bytes,
    envelope_from: str | None,
    own_addresses: Collection[str],
    own_domains: Collection[str] = (),
) -> Classification:
    """Classify one parsed inbound mail.  Pure; never raises.

    ``envelope_from`` is the SMTP MAIL FROM ("" for the null sender ``<>``), or
    None when unknown (then the Return-Path header stands in for it).
    ``own_addresses`` are the desk's addresses (plus-addressed variants match);
    ``own_domains`` are domains all of whose mail is ours: list only domains no
    customer or colleague writes from.
    """
    try:
        return _Classifier(mail, raw, envelope_from, own_addresses, own_domains).run()
    except Exception as exc:  # the contract: never raise (see the module docstring)
        return Classification("normal", _clip(f"classifier failed ({type(exc).__name__}: {exc}); treated as normal"))


# --- patterns -------------------------------------------------------------------

_REPORT_TYPE = re.compile(r"report-type\s*=\s*\"?([A-Za-z0-9._-]+)", re.I)
_DSN_REPORT_TYPES = frozenset({"delivery-status", "global-delivery-status"})
_DSN_PART_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_MDN_PART_TYPES = frozenset({"message/disposition-notification", "message/global-disposition-notification"})
_NOT_BOUNCE_REPORT_TYPES = frozenset({"disposition-notification", "global-disposition-notification", "feedback-report"})

# Machine senders of bounces.  Local parts (RFC 5321 4.5.5: bounces come from the
# null sender and are signed MAILER-DAEMON or postmaster by convention) and the
# display names MTAs use; Exchange signs NDRs "MicrosoftExchange<32 hex>".
_BOUNCE_LOCALS = frozenset(
    {"mailer-daemon", "mailerdaemon", "mailer_daemon", "postmaster", "post_master", "mail.delivery.system"}
)
# MTAs that sign their reports with their own name as the local part.
_MTA_LOCALS = frozenset({"mdaemon", "mail-daemon", "maildaemon", "mail_daemon", "postfix", "qmail", "exim", "sendmail"})
_BOUNCE_NAME = re.compile(
    r"mailer[-_ ]?daemon|post_?master|mail ?deliver(?:y|ing)? ?(?:subsystem|system|service)|mail administrator"
    r"|^\s*mail delivery\s*$|^microsoftexchange[0-9a-f]{32}$",
    re.I,
)
# MTA products that sign reports with their name ("MDaemon", "Kerio Connect", "IceWarp
# Mail Server"), alone or with words saying what they are, and nothing else: "Postfix
# Users" (a mailing list) is not one.  Weaker than MAILER-DAEMON: vendors also send
# newsletters under these names, so such a sender needs a bounce subject, or bounce text
# with the original returned or the library's finding, like a bare null sender.
_MTA_PRODUCT = (
    r"mdaemon|postfix|exim|qmail|sendmail|opensmtpd|haraka|courier|(?:microsoft )?exchange(?: online)?"
    r"|(?:lotus |hcl )?domino|notes mail router|groupwise|zimbra|(?:ipswitch )?imail|mailenable|smartermail"
    r"|kerio(?: connect)?|icewarp|merak|communigate(?: pro)?|axigen|hmailserver|mercury(?:/32)?|coremail"
    r"|surgemail|mirapoint|mailsite|firstclass|gordano|mail ?router|mail ?gateway|mail ?server|mail ?system"
    r"|mail transport|internet mail|smtp"
)
_MTA_WHAT = (
    r"(?: (?:mail|e-?mail|smtp))?(?: (?:server|system|daemon|mta|gateway|service|relay|router|agent|notification"
    r"|delivery(?: (?:system|subsystem|agent|service))?))?"
)
_MTA_NAME = re.compile(rf"^\s*(?:{_MTA_PRODUCT}){_MTA_WHAT}(?: (?:at|on|@) [a-z0-9.-]+)?\s*$", re.I)
# A robot's local part in a From header no address parser accepts ("<postmaster>",
# "MAILER-DAEMON@", "postmaster@[garbage"): still a machine's signature.
_ROBOT_IN_RAW = re.compile(r"(?:^|[<\s\"'(])(?:mailer[-_]?daemon|post_?master)(?:$|[@>\s\"')])", re.I)

# Subjects MTAs give their bounces, anchored at the start so "Re:"/"Fwd:" of a
# person's mail about a bounce never matches.
_BOUNCE_SUBJECT = re.compile(
    r"\s*(?:\[[^\]]{0,40}\]\s*)?(?:"
    r"undeliver(?:able|ed)|undelivered mail|returned mail|return(?:ed|ing)? (?:mail )?to sender"
    r"|(?:mail|message|e-?mail) (?:delivery )?(?:failed|failure|problem|error|could not be delivered|not delivered"
    r"|delivery (?:failed|failure|status)|system error)"
    r"|(?:mail )?delivery (?:status notification|status|failure|failed|has failed|notification|report|problem)"
    r"|(?:e-?mail )?bounced? (?:notification|notice|message)"
    r"|failure notice|failed delivery|failure delivery|non[- ]?delivery|nondeliverable|permanent delivery failure"
    r"|delayed mail|warning:? ?-*could not send|warning: message .{0,60}delayed|could not send message"
    r"|(?:mail |message )?delivery (?:status )?warning|warning: ?<?[^\s<>@]{1,64}@[^\s<>]{1,255}>? -"
    r"|delivery delay(?:ed)?(?: notification| notice)?\b"
    r"|postmaster notify|sorry, your message could not be delivered|there was an error sending your mail"
    r"|message delivery has failed|mail failure|mail could not be delivered|unable to deliver"
    r"|unzustellbar|nicht zustellbar|non remis|non recapitabile|onbestelbaar|no se pudo entregar|non distribuito"
    r"|no entregado|não entregue|n[ãa]o foi poss[ií]vel entregar|zustellung fehlgeschlagen|rapport de non-remise"
    r"|недоставленное сообщение|ваше сообщение не доставлено|メッセージを配信できません|メールエラー通知"
    r"|退信|未送达|系统退信|배달 실패|onbezorgbaar"
    r")",
    re.I,
)

# Out-of-office and other automatic answers, by subject, in several languages
# (what Exchange/Outlook, Gmail, Apple, Zimbra, Domino, Sieve vacation write).
_AUTO_REPLY_SUBJECT = re.compile(
    r"\s*(?:\[[^\]]{0,40}\]\s*)?(?:"
    r"out of (?:the )?office|ooo\b|auto:|auto[- ]?reply|autoreply|auto[- ]?response|automatic reply"
    r"|automated reply|automatic response|autoresponder|vacation reply|away from (?:the )?office|on vacation"
    r"|automatische antwort|abwesenheitsnotiz|abwesenheitsmeldung|abwesend|automatische rückantwort|urlaubsabwesenheit"
    r"|réponse automatique|reponse automatique|absence du bureau|absent du bureau|message d'absence"
    r"|respuesta automática|respuesta automatica|fuera de la oficina|ausencia"
    r"|resposta automática|resposta automatica|ausente do escritório"
    r"|risposta automatica|fuori sede|fuori ufficio|risposta di assenza"
    r"|automatisch antwoord|afwezigheidsbericht|afwezig"
    r"|autosvar|automatisk svar|automatiskt svar|frånvaro|fravær|fraværende|automaattinen vastaus|poissa"
    r"|automatyczna odpowiedź|automatická odpověď|automatická odpoveď|automatikus válasz|răspuns automat"
    r"|otomatik yanıt|otomatik cevap|automatski odgovor|samodejni odgovor"
    r"|автоматический ответ|автоответ|нет на месте|αυτόματη απάντηση"
    r"|自動回覆|自动回复|自動返信|自動応答|不在通知|자동 회신|자동 응답|부재중"
    r")",
    re.I,
)

_AUTO_REPLY_HEADERS = frozenset(
    {"x-autoreply", "x-autorespond", "x-autoresponder", "x-autoreply-from", "x-mail-autoreply", "x-auto-reply"}
)
_FALSE_VALUES = frozenset({"no", "false", "0", "none"})
# Headers only bulk-mailing services set (Mailchimp/Mandrill, Brevo, campaign
# tools, the Certified Senders Alliance used by newsletter senders).
_BULK_HEADERS = frozenset(
    {"x-mc-user", "x-campaign", "x-campaign-id", "x-campaignid", "x-mailin-campaign", "x-csa-complaints",
     "x-newsletter", "x-newsletter-id", "x-mailchimp-campaign", "x-rpcampaign", "x-listmember", "x-list-id"}
)  # fmt: skip
_BULK_MAILERS = re.compile(
    r"mailchimp|sendinblue|brevo|mailerlite|campaign monitor|constant ?contact|hubspot|klaviyo|phplist|mailpoet"
    r"|getresponse|acumbamail|newsletter|cleverreach|rapidmail|mailjet|sendy|listmonk|mautic|emarsys|salesforce"
    r"|marketo|list ?manager|mass ?mail",
    re.I,
)
_OWN_TOKEN_ID = re.compile(r"mb-[a-z2-7]{42}@", re.I)  # tickets/tokens.py: 42 base32 characters
_OWN_LOOSE_ID = re.compile(r"mb-[A-Za-z0-9]+@(.+)")
_REASON_MAX = 300


def _clip(text: str) -> str:
    return " ".join(text.split())[:_REASON_MAX]


def _split(address: str) -> tuple[str, str]:
    """(local part without +detail, domain), lowercased."""
    local, _, domain = address.strip().strip("<>").lower().rpartition("@")
    return local.split("+", 1)[0], domain


# --- the classifier ---------------------------------------------------------------


class _Classifier:
    def __init__(
        self,
        mail: ParsedMail,
        raw: bytes,
        envelope_from: str | None,
        own_addresses: Collection[str],
        own_domains: Collection[str],
    ) -> None:
        self.mail = mail
        self.raw = raw if isinstance(raw, bytes) else bytes(raw or b"")
        self.envelope_from = envelope_from
        self.own = {"@".join(_split(a)) for a in own_addresses if a and "@" in a}
        self.own_domains = {d.strip().lower().lstrip("@") for d in own_domains if d}
        # Domains our Message-IDs may carry: ours, and those of our addresses.
        self.id_domains = self.own_domains | {a.rpartition("@")[2] for a in self.own}
        self.problems: list[str] = []
        self._scan_headers()

    def _scan_headers(self) -> None:
        """One pass over the headers, keeping what the checks below need."""
        self.received = 0
        self.auto_submitted: str | None = None
        self.precedence: str | None = None
        self.list_header: tuple[str, str] | None = None
        self.failed_recipients = False
        self.autoreply_header: tuple[str, str] | None = None
        self.bulk_header: tuple[str, str] | None = None
        self.x_loop: list[str] = []
        self.return_path: str | None = None
        self.content_type: str | None = None
        self.apple_action: str | None = None
        self.mailer: str | None = None
        for name, value in self.mail.headers:
            key = name.lower()
            if key == "received":
                self.received += 1
            elif key == "auto-submitted":
                if self.auto_submitted is None:
                    self.auto_submitted = value.strip().lower()
            elif key == "precedence":
                if self.precedence is None:
                    self.precedence = value.strip().lower()
            elif key.startswith("list-"):
                # List-Id names the list; otherwise any List-* (RFC 2369/2919/8058).
                if self.list_header is None or (key == "list-id" and self.list_header[0].lower() != "list-id"):
                    self.list_header = (name, value)
            elif key == "x-failed-recipients":
                self.failed_recipients = True
            elif key in _AUTO_REPLY_HEADERS:
                if self.autoreply_header is None and value.strip().lower() not in _FALSE_VALUES:
                    self.autoreply_header = (name, value)
            elif key in _BULK_HEADERS or key.startswith("x-mailchimp"):
                if self.bulk_header is None:
                    self.bulk_header = (name, value)
            elif key == "x-loop":
                self.x_loop.append(value)
            elif key == "return-path":
                if self.return_path is None:
                    self.return_path = value.strip()
            elif key == "content-type":
                if self.content_type is None:
                    self.content_type = value
            elif key == "x-apple-action":
                self.apple_action = value.strip().lower()
            elif key == "x-mailer" and self.mailer is None:
                self.mailer = value

    # -- entry ----------------------------------------------------------------------

    def run(self) -> Classification:
        loop = self._loop()
        if loop is not None:
            return Classification("loop", _clip(loop))
        report_type = self._report_type()
        bounce = self._bounce(report_type)
        if bounce is not None:
            return bounce
        auto = self._auto_reply(report_type)
        if auto is not None:
            return Classification("auto_reply", _clip(auto))
        bulk = self._bulk()
        if bulk is not None:
            return Classification("bulk", _clip(bulk))
        return Classification("normal", "no automation markers")

    # -- loop -----------------------------------------------------------------------

    def _is_own(self, address: str, robots_count: bool) -> bool:
        if not address or "@" not in address:
            return False
        local, domain = _split(address)
        if f"{local}@{domain}" in self.own:
            return True
        # MAILER-DAEMON@our-domain is our own MTA reporting on our mail (a bounce),
        # not the desk writing to itself.
        if domain in self.own_domains:
            return robots_count or local not in _BOUNCE_LOCALS
        return False

    def _loop(self) -> str | None:
        message_id = self.mail.message_id or ""
        if message_id and message_id[:3].lower() == "mb-":
            loose = _OWN_LOOSE_ID.match(message_id)
            if _OWN_TOKEN_ID.match(message_id) or (loose and loose.group(1).lower() in self.id_domains):
                return f"Message-ID <{message_id[:120]}> is one of ours (our own mail came back)"
        sender = self.mail.from_.address if self.mail.from_ else ""
        if self._is_own(sender, robots_count=False):
            return f"From {sender} is one of our own addresses"
        envelope = self._envelope()
        if envelope and self._is_own(envelope, robots_count=False):
            return f"envelope sender {envelope} is one of our own addresses"
        for value in self.x_loop:
            for token in re.split(r"[\s,;<>]+", value):
                if "@" in token and self._is_own(token, robots_count=True):
                    return f"X-Loop names our address {token}"
        if self.received >= MAX_RECEIVED:
            return f"{self.received} Received headers: the mail is circling between servers"
        return None

    def _envelope(self) -> str | None:
        """The envelope sender: as given, else the Return-Path header; "" is <>."""
        if self.envelope_from is not None:
            return self.envelope_from.strip().strip("<>").strip()
        if self.return_path is not None:
            return self.return_path.strip().strip("<>").strip()
        return None

    # -- bounce ----------------------------------------------------------------------

    def _report_type(self) -> str | None:
        if self.mail.content_type != "multipart/report":
            return None
        found = _REPORT_TYPE.search(self.content_type or "")
        return found.group(1).lower() if found else ""

    def _robot_sender(self) -> tuple[str | None, bool]:
        """Who signs this mail as a machine that sends bounces: (description, named).

        ``named`` is a MAILER-DAEMON/postmaster-like sender; a bare null envelope
        sender is weaker evidence, since auto-replies and read receipts use it too.
        """
        envelope = self._envelope()
        if envelope and _split(envelope)[0] in _BOUNCE_LOCALS:
            return f"envelope sender {envelope}", True
        sender = self.mail.from_
        if sender is not None:
            local = _split(sender.address)[0] if sender.address else ""
            if local in _BOUNCE_LOCALS or local.startswith(("microsoftexchange", "mailer-daemon")):
                return f"From {sender.address}", True
            if _BOUNCE_NAME.search(sender.name):
                return f"From {sender.name} <{sender.address}>", True
            raw_from = self.mail.header("From") or ""
            if not sender.address and _ROBOT_IN_RAW.search(raw_from):
                return f"From {raw_from[:80]} (unparseable, a mail system's name)", True
            if _MTA_NAME.match(sender.name) or local in _MTA_LOCALS:
                return f"From {sender.name} <{sender.address}> (named after a mail server)", False
        if envelope == "":
            return "null envelope sender <>", False
        return None, False

    def _bounce(self, report_type: str | None) -> Classification | None:
        mail = self.mail
        dsn_part = any(a.content_type in _DSN_PART_TYPES for a in mail.attachments)
        dsn_hint = report_type in _DSN_REPORT_TYPES or dsn_part
        robot, named_robot = self._robot_sender()
        subject_hit = bool(_BOUNCE_SUBJECT.match(mail.subject))
        if not (dsn_hint or self.failed_recipients or robot or subject_hit):
            return None  # the cheap exit every normal mail takes
        if report_type in _NOT_BOUNCE_REPORT_TYPES and not dsn_part:
            return None  # a read receipt (MDN) or an ARF report: auto_reply says so

        # The bounce goes to the sender of the failed mail: its To is not a failed recipient.
        exclude = {a.address for a in mail.to + mail.cc if a.address}
        report = analyse(mail, self.raw, self.own, exclude_addresses=exclude, exclude_domains=self.own_domains)
        self.problems.extend(report.problems)
        what = self._bounce_kind(report, dsn_hint or report.dsn, robot, named_robot, subject_hit)
        if what is None:
            return None
        return Classification(
            "bounce",
            _clip(what + self._bounce_findings(report)),
            bounced_recipients=report.recipients,
            original_message_ids=report.original_message_ids,
        )

    def _bounce_kind(
        self, report: BounceReport, dsn: bool, robot: str | None, named_robot: bool, subject_hit: bool
    ) -> str | None:
        """What kind of bounce this is, from the strongest sign there is; None when the signs
        do not make it one (or the DSN reports only deliveries: auto_reply says so)."""
        if dsn:
            if report.dsn_success_only:
                return None
            mta = report.reporting_mta or self._sender_domain() or "an unnamed MTA"
            return f"DSN (RFC 3464) from {mta}"
        if self.failed_recipients:
            return f"bounce with X-Failed-Recipients from {self._sender_domain() or 'an MTA'}"
        if robot is not None:
            evidence = self._evidence(report, subject_hit, strong=named_robot)
            return f"non-standard bounce: {robot}, {evidence}" if evidence else None
        return self._subject_bounce(report)  # only the subject says bounce

    def _subject_bounce(self, report: BounceReport) -> str | None:
        """What makes a bounce subject without a machine signature a bounce, or None.

        The subject alone could be a person's (or a parcel service's "Delivery
        failed"), so ask for two more signs, one of them a machine's: Auto-Submitted
        or the original sent back attached.
        """
        auto = self.auto_submitted is not None and self.auto_submitted.split(";", 1)[0].strip() != "no"
        signs = [auto, report.returned_original, report.text_evidence is not None, report.library_hit]
        if sum(signs) >= 2 and (auto or report.returned_original):
            evidence = self._evidence(report, True, strong=True)
            return f"non-standard bounce: {evidence}" + (f", Auto-Submitted: {self.auto_submitted}" if auto else "")
        if report.inline_original and report.text_evidence is not None and report.recipients:
            # No Auto-Submitted, the original quoted inline: the report opens the mail
            # (no greeting), names a failed recipient, and the original's own header
            # lines follow it unquoted.  A person quoting a bounce does none of that.
            evidence = self._evidence(report, True, strong=True)
            return f"non-standard bounce: {evidence}, the original quoted below the report"
        return None

    def _bounce_findings(self, report: BounceReport) -> str:
        """The end of a bounce's reason: the recipients found and where, the first problem."""
        if report.recipients:
            sources = "/".join(report.sources)
            found = f"; {len(report.recipients)} recipient{'s' if len(report.recipients) != 1 else ''} ({sources})"
        else:
            found = "; no failed recipient found"
        return found + (f"; {self.problems[0]}" if self.problems else "")

    def _evidence(self, report: BounceReport, subject_hit: bool, strong: bool) -> str | None:
        """What makes a machine-sent mail a bounce; a bare null sender needs more."""
        found: list[str] = []
        if subject_hit:
            found.append(f"subject {self.mail.subject[:60]!r}")
        if report.library_hit and strong:
            found.append("flufl.bounce found failed recipients")
        returned = report.returned_original or report.inline_original
        if report.text_evidence and (strong or returned or report.library_hit):
            found.append(f"bounce text {report.text_evidence!r}")
        if report.returned_original and strong:
            found.append("the original is attached")
        return ", ".join(found) or None

    def _sender_domain(self) -> str | None:
        sender = self.mail.from_
        if sender and "@" in sender.address:
            return sender.address.rpartition("@")[2]
        return None

    # -- auto_reply -------------------------------------------------------------------

    def _auto_reply(self, report_type: str | None) -> str | None:
        mail = self.mail
        if report_type is not None or any(a.content_type in _MDN_PART_TYPES for a in mail.attachments):
            if report_type in {"disposition-notification", "global-disposition-notification"} or any(
                a.content_type in _MDN_PART_TYPES for a in mail.attachments
            ):
                return "read receipt (MDN, RFC 8098: multipart/report; report-type=disposition-notification)"
            if report_type == "feedback-report":
                return "abuse/feedback report (ARF, RFC 5965)"
            if report_type in _DSN_REPORT_TYPES:
                return "delivery report without failures (DSN, RFC 3464: delivered/relayed/expanded)"
            return f"automatic report (multipart/report; report-type={report_type or 'missing'})"
        if self.auto_submitted is not None:
            value = self.auto_submitted.split(";", 1)[0].strip()
            if value and value != "no":
                # RFC 3834 5: any value other than "no" means automatic.
                return f"Auto-Submitted: {self.auto_submitted[:60]}"
        if self.precedence == "auto_reply":
            return "Precedence: auto_reply"
        if self.autoreply_header is not None:
            name, value = self.autoreply_header
            return f"{name}: {value[:60]}"
        if self.apple_action == "vacation":
            return "X-Apple-Action: vacation"
        if _AUTO_REPLY_SUBJECT.match(mail.subject):
            return f"automatic-reply subject {mail.subject[:60]!r}"
        sender = mail.from_.address if mail.from_ else ""
        if sender and _split(sender)[0] in {"mailer-daemon", "mailerdaemon", "mailer_daemon"}:
            return f"sent by {sender} (a mail system), without bounce evidence"
        return None

    # -- bulk ------------------------------------------------------------------------------

    def _bulk(self) -> str | None:
        if self.precedence in {"bulk", "junk", "list"}:
            return f"Precedence: {self.precedence}"
        if self.list_header is not None:
            name, value = self.list_header
            return f"mailing list or newsletter ({name}: {value[:60]})"
        if self.bulk_header is not None:
            name, value = self.bulk_header
            return f"bulk mailer header {name}: {value[:40]}"
        if self.mailer and _BULK_MAILERS.search(self.mailer):
            return f"bulk mailer X-Mailer: {self.mailer[:40]}"
        return None
