"""Bounce analysis for the classify stage: who failed, how, and which mail of ours it was.

    intake -> parse -> [classify] -> correlate -> decide -> apply
                         |
                         +-- classify.py decides the kind from cheap header checks;
                             only when they say "maybe a bounce" does it call
                             ``analyse`` here, which does the expensive work.

``analyse`` reads one suspected bounce (the ``ParsedMail`` and its raw bytes;
pure, no database, no I/O) and returns a ``BounceReport``:

* the failed recipients, from these sources in order of trust:
  1. RFC 3464 delivery-status fields (``message/delivery-status``; also
     RFC 6533 ``message/global-delivery-status``), parsed here because they are
     structured: Action failed/delayed, Status class 4 or 5, Diagnostic-Code;
  2. the ``X-Failed-Recipients`` header (Exim, Gmail, mail.ru);
  3. flufl.bounce (Mailman 3's detectors for ~17 MTA families, if installed):
     a second opinion for DSNs whose fields are broken and the main source for
     non-standard bounces (qmail, Postfix without DSN, Yahoo, Exchange...);
  4. our own heuristics: the addresses named in the report text before the
     returned message starts, with the status code and words next to them;
     last, the To of the returned original when it has exactly one address.
* the Message-ID / In-Reply-To / References of the returned original
  (``message/rfc822``, ``text/rfc822-headers``, or header lines quoted in the
  text of a non-standard bounce), plus any of our own ``mb-...@`` ids found
  anywhere in the raw bytes, so the caller can find which of our mails bounced.

Nothing here raises: every step is guarded and a failure becomes a ``problems``
entry, so one odd part costs a detail, never the classification.  The readers of the
report's prose and of the returned original (sources 4 and the ids) are in
``parsing/bouncetext.py``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from mailbridge.parsing.bouncetext import (
    _BOUNCE_PHRASES,
    _DELAY_PHRASES,
    _DSN_TYPES,
    _MAX_IDS,
    _MAX_RECIPIENTS,
    _ORIGINAL_TYPES,
    _RAW_SCAN_MAX_BYTES,
    _ROBOT_LOCAL,
    _TEXT_MAX_CHARS,
    _base_address,
    _clean_address,
    _decoded_text,
    _detail_for,
    _dsn_address,
    _field_blocks,
    _inline_original,
    _one_line,
    _original_ids,
    _originals_for,
    _originals_to,
    _quoted_for,
    _quoted_ids,
    _quoted_to,
    _report_section,
    _status_from_reply_code,
    _status_of,
    _text_addresses,
    find_own_message_ids,
)
from mailbridge.parsing.limits import ParseLimits, parse_structure
from mailbridge.parsing.mime import ParsedMail

_flufl_all_failures: Callable[[Message], tuple[frozenset[bytes], frozenset[bytes]]] | None
try:  # optional: the heuristics below still work without it, with lower recall
    from flufl.bounce import all_failures as _flufl_all_failures
except ImportError:  # pragma: no cover - depends on the environment
    _flufl_all_failures = None

__all__ = ["BounceReport", "BouncedRecipient", "LIBRARY", "analyse", "find_own_message_ids"]

# flufl.bounce logs "Running detector" for every detector at INFO and logs a
# traceback before re-raising a detector's exception.  The classify stage is pure
# and reports such failures in its reason, so keep the library quiet unless an
# operator has configured that logger on purpose.
_FLUFL_LOG = logging.getLogger("flufl.bounce")
if _FLUFL_LOG.level == logging.NOTSET:
    _FLUFL_LOG.setLevel(logging.CRITICAL)

LIBRARY: str | None = "flufl.bounce" if _flufl_all_failures is not None else None

# Detectors iterate over every body line of every part (base64 attachments
# included) once per pattern; a 10 MB returned attachment would cost seconds.
# The report text always comes first, so the library sees only this prefix.
_LIBRARY_MAX_BYTES = 256 * 1024
# The MIME tree for the delivery-status and returned-original parts is built from
# this much of the mail: RFC 3464 puts them before the returned content, and a
# returned original's headers come first in it.  The parse stage has already
# read the whole mail; a 10 MB bounce need not be parsed a second time in full.
_TREE_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class BouncedRecipient:
    """One recipient a bounce reports as failed (or delayed)."""

    address: str
    status: str | None  # RFC 3463 enhanced status "5.1.1"; None when the bounce gives none we can read
    # True when the address is not known to be bad: a delay report, or a failure
    # whose status is 4.x.x (a transient condition that outlived the retries).
    temporary: bool
    diagnostic: str | None = None  # the MTA's words (Diagnostic-Code or report text), one line
    action: str | None = None  # DSN Action ("failed", "delayed"), None from heuristics

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "status": self.status,
            "temporary": self.temporary,
            "diagnostic": self.diagnostic,
            "action": self.action,
        }


@dataclass(frozen=True)
class BounceReport:
    recipients: tuple[BouncedRecipient, ...] = ()
    original_message_ids: tuple[str, ...] = ()
    dsn: bool = False  # a (global-)delivery-status part was found
    dsn_success_only: bool = False  # every recipient block says delivered/relayed/expanded
    reporting_mta: str | None = None
    library_hit: bool = False  # flufl.bounce found failed recipients
    returned_original: bool = False  # a message/rfc822 or rfc822-headers part is attached
    # The original quoted inline below the report, with its own (unquoted) header lines,
    # and the report opens the mail (no greeting): what an MTA writes, not a person.
    inline_original: bool = False
    text_evidence: str | None = None  # the bounce phrase found in the text, if any
    sources: tuple[str, ...] = ()  # where the recipients came from ("dsn", "flufl.bounce", ...)
    problems: tuple[str, ...] = ()  # internal errors that were swallowed


# --- RFC 3464 delivery-status fields --------------------------------------------


def _dsn_blocks(part: Message) -> list[list[tuple[str, str]]]:
    """The field blocks of a delivery-status part, however the parser left it."""
    payload = part.get_payload()
    if isinstance(payload, list):
        # compat32 parses message/delivery-status into one Message per block;
        # other message/* types (global-delivery-status) into one Message whose
        # body holds the remaining blocks; a block without its separating blank
        # line leaves fields in a body too.
        blocks: list[list[tuple[str, str]]] = []
        for sub in payload:
            if not isinstance(sub, Message):
                continue
            fields = [(str(k), " ".join(str(v).split())) for k, v in sub.items()]
            if fields:
                blocks.append(fields)
            body = sub.get_payload()
            if isinstance(body, str) and body.strip():
                blocks.extend(_field_blocks(body))
        return blocks
    return _field_blocks(_decoded_text(part))


def _field_value(value: str) -> str:
    """Strip the RFC 3464 type prefix: "rfc822; a@b" -> "a@b", "dns; mx" -> "mx"."""
    _type, sep, rest = value.partition(";")
    return (rest if sep else value).strip()


@dataclass
class _DsnResult:
    recipients: list[BouncedRecipient] = field(default_factory=list)
    actions: set[str] = field(default_factory=set)
    reporting_mta: str | None = None
    orphans: list[BouncedRecipient] = field(default_factory=list)  # failure fields without an address
    successes: int = 0  # recipient blocks that report a delivery


# RFC 3464 2.3.3 success actions; "deliverable" is Postfix's answer to sendmail -bv.
_SUCCESS_ACTIONS = frozenset({"delivered", "relayed", "expanded", "deliverable"})


def _failed(action: str | None) -> bool:
    # "failed", "delayed"; opensmtpd writes "error", some MTAs "undeliverable".
    return action is not None and action.startswith(("fail", "delay", "error", "undeliver"))


def _read_dsn(parts: list[Message]) -> _DsnResult:
    return _read_dsn_blocks([block for part in parts for block in _dsn_blocks(part)])


# Where a recipient block names the recipient, in order of trust: Original-Recipient is
# what the sender (we) addressed; Final-Recipient may be an alias expansion.  Some MTAs
# write "unknown" or nothing there.
_RECIPIENT_FIELDS = ("original-recipient", "final-recipient", "x-actual-recipient")


def _read_dsn_blocks(blocks: list[list[tuple[str, str]]]) -> _DsnResult:
    result = _DsnResult()
    for block in blocks:
        fields: dict[str, str] = {}
        for name, value in block:
            fields.setdefault(name.lower(), value)
        if result.reporting_mta is None and fields.get("reporting-mta"):
            result.reporting_mta = _one_line(_field_value(fields["reporting-mta"]), 120) or None
        if any(f in fields for f in (*_RECIPIENT_FIELDS, "action", "status")):
            _read_recipient_block(fields, result)
        # else: the per-message block (Reporting-MTA, Arrival-Date...)
    return result


def _read_recipient_block(fields: dict[str, str], result: _DsnResult) -> None:
    """Count a delivered recipient, or record a failed one (an orphan when no address is readable)."""
    action = fields.get("action", "").split("(", 1)[0].strip().lower() or None
    if action:
        result.actions.add(action)
    status, diagnostic = _block_status(fields)
    if action in _SUCCESS_ACTIONS or (status is not None and status[0] == "2" and not _failed(action)):
        result.successes += 1
        return  # success reports for this recipient: nothing failed
    if status is None and not _failed(action):
        return  # nothing says this recipient failed (no Action, or one we do not know)
    delayed = action is not None and action.startswith("delay")
    address = _recipient_address(fields)
    recipient = BouncedRecipient(
        address=address or "",
        status=status,
        temporary=delayed or (status is not None and status[0] == "4"),
        diagnostic=_one_line(diagnostic) if diagnostic else None,
        action=action if action else None,
    )
    (result.recipients if address else result.orphans).append(recipient)


def _block_status(fields: dict[str, str]) -> tuple[str | None, str | None]:
    """(enhanced status, Diagnostic-Code) of a recipient block."""
    status = _status_of(fields.get("status", ""))
    diagnostic = _field_value(fields["diagnostic-code"]) if fields.get("diagnostic-code") else None
    if status is None and diagnostic:
        # Garbage or missing Status: the Diagnostic-Code usually repeats it.
        status = _status_of(diagnostic) or _status_from_reply_code(diagnostic)
    return status, diagnostic


def _recipient_address(fields: dict[str, str]) -> str | None:
    for name in _RECIPIENT_FIELDS:
        if fields.get(name):
            address = _dsn_address(_field_value(fields[name]))
            if address:
                return address
    return None


_DSN_FIELDS_IN_TEXT = re.compile(r"^[ \t>]*(?:final|original)-recipient[ \t]*:", re.I | re.M)


def _read_dsn_text(text: str) -> _DsnResult:
    lines = [re.sub(r"^[ \t>]*(?=[A-Za-z-]+[ \t]*:)", "", line) for line in text.splitlines()]
    result = _DsnResult()
    for block in _field_blocks("\n".join(lines)):
        names = {name.lower() for name, _ in block}
        if names & {"final-recipient", "original-recipient", "reporting-mta"}:
            one = _read_dsn_blocks([block])
            result.recipients.extend(one.recipients)
            result.orphans.extend(one.orphans)
            result.actions |= one.actions
            result.successes += one.successes
            result.reporting_mta = result.reporting_mta or one.reporting_mta
    return result


# --- the library -------------------------------------------------------------------


def _library(tree: Message, raw: bytes, problems: list[str]) -> tuple[list[str], list[str]]:
    """(temporary, permanent) addresses according to flufl.bounce; never raises."""
    scan = _flufl_all_failures
    if scan is None:
        return [], []

    def decode(addresses: Iterable[bytes | str]) -> list[str]:
        texts = (a.decode("ascii", "replace") if isinstance(a, bytes) else str(a) for a in addresses)
        return sorted({address for text in texts if (address := _clean_address(text))})

    try:
        if len(raw) > _LIBRARY_MAX_BYTES:
            tree = parse_structure(bytes(raw[:_LIBRARY_MAX_BYTES]), ParseLimits())
        temporary, permanent = scan(tree)
        return decode(temporary), decode(permanent)
    except Exception as exc:  # the detectors assume well-formed mail; we promise never to raise
        problems.append(f"flufl.bounce failed: {type(exc).__name__}: {exc}"[:200])
        return [], []


# --- the analysis -------------------------------------------------------------------


def _walk(tree: Message) -> tuple[list[Message], list[Message]]:
    """(delivery-status parts, returned originals), not looking inside returned mails."""
    dsn: list[Message] = []
    originals: list[Message] = []
    stack = [tree]
    while stack:
        part = stack.pop()
        ctype = part.get_content_type()
        if ctype in _DSN_TYPES:
            dsn.append(part)
            continue
        if ctype in _ORIGINAL_TYPES:
            originals.append(part)
            continue  # a forwarded bounce inside it is not this mail's report
        if part.is_multipart() and not ctype.startswith("message/"):
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(reversed([c for c in children if isinstance(c, Message)]))
    return dsn, originals


def analyse(
    mail: ParsedMail,
    raw: bytes,
    own_addresses: Collection[str] = (),
    exclude_addresses: Collection[str] = (),
    exclude_domains: Collection[str] = (),
    use_library: bool = True,
) -> BounceReport:
    """Dig the failed recipients and the original's ids out of a suspected bounce.

    ``own_addresses`` and ``exclude_domains`` (ours) are never reported as failed
    recipients except by the DSN fields; ``exclude_addresses`` (the bounce's own
    To/From: the sender side) are also kept out of the text heuristics.  Never raises.
    """
    problems: list[str] = []
    try:
        return _Analysis(mail, raw, own_addresses, exclude_addresses, exclude_domains, problems).run(use_library)
    except Exception as exc:
        problems.append(f"bounce analysis failed: {type(exc).__name__}: {exc}"[:200])
        return BounceReport(problems=tuple(problems))


class _Analysis:
    """One suspected bounce read source by source (see the module docstring), each source
    asked only while the ones trusted more found no failed recipient."""

    def __init__(
        self,
        mail: ParsedMail,
        raw: bytes,
        own_addresses: Collection[str],
        exclude_addresses: Collection[str],
        exclude_domains: Collection[str],
        problems: list[str],
    ) -> None:
        self.mail = mail
        self.raw = raw
        self.problems = problems
        self.own = {_base_address(a) for a in own_addresses if a} | {d.lower() for d in exclude_domains if d}
        self.exclude = self.own | {_base_address(a) for a in exclude_addresses if a}
        self.tree = self._tree()
        self.dsn_parts, self.originals = _walk(self.tree) if self.tree is not None else ([], [])
        self.text = mail.text[:_TEXT_MAX_CHARS]
        self.section = _report_section(self.text)
        self.section_lower = self.section.lower()
        self.after_section = self.text[len(self.section) :].lower()
        self.original_ids = _returned_ids(mail, raw, self.text, self.originals, problems)
        self.ids_lower = {i.lower() for i in self.original_ids}
        self.delayed_report = bool(_DELAY_PHRASES.search(mail.subject) or _DELAY_PHRASES.search(self.section[:4000]))
        self.recipients: dict[str, BouncedRecipient] = {}
        self.sources: list[str] = []
        self.dsn = _DsnResult()
        self.success_only = False
        self.library_hit = False
        self.unseen: list[str] = []  # the library's finds named nowhere in the mail
        self.library_temporary: list[str] = []

    def _tree(self) -> Message | None:
        try:
            return parse_structure(bytes(self.raw[:_TREE_MAX_BYTES]), ParseLimits())
        except Exception as exc:  # the parse stage accepted it with the same limits; belt and braces
            self.problems.append(f"MIME structure unreadable: {type(exc).__name__}: {exc}"[:200])
            return None

    def run(self, use_library: bool) -> BounceReport:
        self.from_dsn()
        if not self.recipients and not self.success_only:
            self.from_failed_recipients_header()
        if (
            use_library
            and self.tree is not None
            and not self.success_only
            and (not self.recipients or self.dsn.orphans)
        ):
            self.from_library(self.tree)
        if not self.recipients and not self.success_only:
            self.from_text()
        self.merge_orphan()
        return self.report()

    # -- collecting

    def add(self, items: Iterable[BouncedRecipient], source: str) -> None:
        added = False
        for item in items:
            key = item.address.lower()
            if key and key not in self.recipients and len(self.recipients) < _MAX_RECIPIENTS:
                self.recipients[key] = item
                added = True
        if added:
            self.sources.append(source)

    def plausible(self, address: str) -> bool:
        """A heuristic or library find that is not us, a robot or a Message-ID."""
        local, _, domain = address.rpartition("@")
        lowered = address.lower()
        return not (
            _base_address(address) in self.own
            or domain in self.own
            or _ROBOT_LOCAL.match(local)
            or lowered in self.ids_lower
            # Named only in the returned original below the report: its From/To/ids.
            or (lowered not in self.section_lower and lowered in self.after_section)
        )

    def described(self, addresses: list[str], temporary: set[str], source: str) -> None:
        """Add addresses found outside the DSN fields, with what the report text says of each."""
        # Bounded: each address costs a scan of the report, and a hostile
        # X-Failed-Recipients header can name a hundred thousand.
        addresses = list(dict.fromkeys(addresses))[:_MAX_RECIPIENTS]
        single = len(addresses) == 1
        found: list[BouncedRecipient] = []
        for address in addresses:
            status, diagnostic = _detail_for(self.section, address, single)
            if status is not None and status[0] == "2":
                continue  # the report says this one was delivered
            # A delay notice's words count unless the status says permanent (5.x.x).
            delayed = self.delayed_report and (status is None or status[0] != "5")
            is_temporary = address in temporary or delayed or (status is not None and status[0] == "4")
            found.append(BouncedRecipient(address, status, is_temporary, diagnostic))
        self.add(found, source)

    @functools.cached_property
    def _haystack(self) -> bytes:
        return bytes(self.raw[:_RAW_SCAN_MAX_BYTES]).lower() + self.text.lower().encode("utf-8", "replace")

    def in_mail(self, address: str) -> bool:
        return address.lower().encode("utf-8", "replace") in self._haystack

    # -- the sources, most trusted first

    def from_dsn(self) -> None:
        fields_in_text = not self.dsn_parts and _DSN_FIELDS_IN_TEXT.search(self.text) is not None
        if self.dsn_parts or fields_in_text:
            # Delivery-status fields in the text: a DSN whose MIME structure broke
            # (a lost boundary) or an MTA that writes them inline.
            try:
                self.dsn = _read_dsn(self.dsn_parts) if self.dsn_parts else _read_dsn_text(self.text)
            except Exception as exc:
                self.problems.append(f"delivery-status unreadable: {type(exc).__name__}: {exc}"[:200])
            self.add(self.dsn.recipients, "dsn" if self.dsn_parts else "delivery-status fields in the text")
        # Every recipient block reports success (delivered, relayed, Postfix's
        # "deliverable" for sendmail -bv): a delivery report, nothing to dig for.
        self.success_only = self.dsn.successes > 0 and not self.dsn.recipients and not self.dsn.orphans

    def from_failed_recipients_header(self) -> None:
        # Exim lists the failed addresses in a header: structured, so before the library.
        header_addresses = [
            a
            for value in self.mail.header_all("X-Failed-Recipients")
            for a in map(_clean_address, value.split(","))
            if a
        ]
        self.described(header_addresses, set(), "X-Failed-Recipients")

    def from_library(self, tree: Message) -> None:
        temporary, permanent = _library(tree, self.raw, self.problems)
        self.library_temporary = temporary
        self.library_hit = bool(temporary or permanent)
        lowered_text = self.text.lower()

        def position(address: str) -> int:  # report order, not the library's set order
            found = lowered_text.find(address.lower())
            return found if found != -1 else len(lowered_text)

        addresses = sorted((a for a in temporary + permanent if self.plausible(a)), key=position)
        # A detector's guess that appears nowhere in the mail (a local part joined to the
        # wrong host) must not beat what the report or the returned original names.
        self.unseen = [a for a in addresses if not self.in_mail(a)]
        self.described([a for a in addresses if a not in self.unseen], set(temporary), "flufl.bounce")

    def from_text(self) -> None:
        self.described(
            [a for a in _text_addresses(self.section, self.exclude) if self.plausible(a)], set(), "report text"
        )
        if not self.recipients:
            self.from_returned_original()
        if not self.recipients and self.unseen:
            self.described(self.unseen, set(self.library_temporary), "flufl.bounce (not named in the mail)")

    def from_returned_original(self) -> None:
        # Last resort: the returned original, attached or quoted below the report:
        # the recipient its Received header was for, else its To.  Our mails have
        # one recipient; a list would be a guess.
        originals = self.originals
        rest = self.text[len(self.section) :]
        for source, found in (
            ("returned original's Received", _originals_for(originals) if originals else _quoted_for(rest)),
            ("returned original's To", _originals_to(originals) if originals else _quoted_to(rest)),
        ):
            candidates = list(dict.fromkeys(a for a in found if _base_address(a) not in self.own))
            if len(candidates) == 1:
                self.described(candidates, set(), source)
                break

    def merge_orphan(self) -> None:
        """A DSN block with Action/Status but no usable recipient field, and one
        address found elsewhere: they describe the same recipient."""
        if not (self.dsn.orphans and len(self.dsn.orphans) == len(self.recipients) == 1 and "dsn" not in self.sources):
            return
        orphan = self.dsn.orphans[0]
        ((key, found_one),) = self.recipients.items()
        self.recipients[key] = BouncedRecipient(
            address=found_one.address,
            status=orphan.status or found_one.status,
            temporary=orphan.temporary,
            diagnostic=orphan.diagnostic or found_one.diagnostic,
            action=orphan.action,
        )

    def report(self) -> BounceReport:
        evidence = _BOUNCE_PHRASES.search(self.section)
        return BounceReport(
            recipients=tuple(self.recipients.values()),
            original_message_ids=self.original_ids,
            dsn=bool(self.dsn_parts),
            dsn_success_only=self.success_only,
            reporting_mta=self.dsn.reporting_mta,
            library_hit=self.library_hit,
            returned_original=bool(self.originals),
            inline_original=not self.originals and _inline_original(self.text, self.section),
            text_evidence=_one_line(evidence.group(0), 60) if evidence else None,
            sources=tuple(self.sources),
            problems=tuple(self.problems),
        )


def _returned_ids(
    mail: ParsedMail, raw: bytes, text: str, originals: list[Message], problems: list[str]
) -> tuple[str, ...]:
    """Message-ID, In-Reply-To, References of the returned original, then our own ids."""
    ids: dict[str, None] = {}
    for part in originals[:1]:
        try:
            ids.update(dict.fromkeys(_original_ids(part)))
        except Exception as exc:
            problems.append(f"returned original unreadable: {type(exc).__name__}: {exc}"[:200])
    if not ids:
        ids.update(dict.fromkeys(_quoted_ids(text)))
    ids.update(dict.fromkeys(find_own_message_ids(raw)))
    own_id = (mail.message_id or "").lower()
    return tuple(i for i in ids if i and i.lower() != own_id)[:_MAX_IDS]
