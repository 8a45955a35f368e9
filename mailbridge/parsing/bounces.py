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


def _read_dsn_blocks(blocks: list[list[tuple[str, str]]]) -> _DsnResult:
    result = _DsnResult()
    for block in blocks:
        fields: dict[str, str] = {}
        for name, value in block:
            fields.setdefault(name.lower(), value)
        if result.reporting_mta is None and fields.get("reporting-mta"):
            result.reporting_mta = _one_line(_field_value(fields["reporting-mta"]), 120) or None
        recipient_fields = ("original-recipient", "final-recipient", "x-actual-recipient")
        if not any(f in fields for f in recipient_fields) and "action" not in fields and "status" not in fields:
            continue  # the per-message block (Reporting-MTA, Arrival-Date...)
        action = fields.get("action", "").split("(", 1)[0].strip().lower() or None
        if action:
            result.actions.add(action)
        status = _status_of(fields.get("status", ""))
        diagnostic = _field_value(fields["diagnostic-code"]) if fields.get("diagnostic-code") else None
        if status is None and diagnostic:
            # Garbage or missing Status: the Diagnostic-Code usually repeats it.
            status = _status_of(diagnostic) or _status_from_reply_code(diagnostic)
        if action in _SUCCESS_ACTIONS or (status is not None and status[0] == "2" and not _failed(action)):
            result.successes += 1
            continue  # success reports for this recipient: nothing failed
        if action is None and status is None:
            continue  # nothing says this recipient failed
        if action is not None and not _failed(action) and status is None:
            continue  # an Action we do not know, and no failure status
        delayed = action is not None and action.startswith("delay")
        temporary = delayed or (status is not None and status[0] == "4")
        # Original-Recipient is what the sender (we) addressed; Final-Recipient
        # may be an alias expansion.  Some MTAs write "unknown" or nothing there.
        address = None
        for name in recipient_fields:
            if fields.get(name):
                address = _dsn_address(_field_value(fields[name]))
                if address:
                    break
        recipient = BouncedRecipient(
            address=address or "",
            status=status,
            temporary=temporary,
            diagnostic=_one_line(diagnostic) if diagnostic else None,
            action=action if action else None,
        )
        if address:
            result.recipients.append(recipient)
        else:
            result.orphans.append(recipient)
    return result


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
        return _analyse(mail, raw, own_addresses, exclude_addresses, exclude_domains, use_library, problems)
    except Exception as exc:
        problems.append(f"bounce analysis failed: {type(exc).__name__}: {exc}"[:200])
        return BounceReport(problems=tuple(problems))


def _analyse(
    mail: ParsedMail,
    raw: bytes,
    own_addresses: Collection[str],
    exclude_addresses: Collection[str],
    exclude_domains: Collection[str],
    use_library: bool,
    problems: list[str],
) -> BounceReport:
    own = {_base_address(a) for a in own_addresses if a} | {d.lower() for d in exclude_domains if d}
    exclude = own | {_base_address(a) for a in exclude_addresses if a}
    try:
        tree: Message | None = parse_structure(bytes(raw[:_TREE_MAX_BYTES]), ParseLimits())
    except Exception as exc:  # the parse stage accepted it with the same limits; belt and braces
        problems.append(f"MIME structure unreadable: {type(exc).__name__}: {exc}"[:200])
        tree = None
    dsn_parts, originals = _walk(tree) if tree is not None else ([], [])
    text = mail.text[:_TEXT_MAX_CHARS]
    section = _report_section(text)
    section_lower = section.lower()
    after_section = text[len(section) :].lower()
    original_ids = _returned_ids(mail, raw, text, originals, problems)
    ids_lower = {i.lower() for i in original_ids}

    recipients: dict[str, BouncedRecipient] = {}
    sources: list[str] = []

    def add(items: Iterable[BouncedRecipient], source: str) -> None:
        added = False
        for item in items:
            key = item.address.lower()
            if key and key not in recipients and len(recipients) < _MAX_RECIPIENTS:
                recipients[key] = item
                added = True
        if added:
            sources.append(source)

    def plausible(address: str) -> bool:
        """A heuristic or library find that is not us, a robot or a Message-ID."""
        local, _, domain = address.rpartition("@")
        lowered = address.lower()
        return not (
            _base_address(address) in own
            or domain in own
            or _ROBOT_LOCAL.match(local)
            or lowered in ids_lower
            # Named only in the returned original below the report: its From/To/ids.
            or (lowered not in section_lower and lowered in after_section)
        )

    dsn = _DsnResult()
    fields_in_text = not dsn_parts and _DSN_FIELDS_IN_TEXT.search(text) is not None
    if dsn_parts or fields_in_text:
        # Delivery-status fields in the text: a DSN whose MIME structure broke
        # (a lost boundary) or an MTA that writes them inline.
        try:
            dsn = _read_dsn(dsn_parts) if dsn_parts else _read_dsn_text(text)
        except Exception as exc:
            problems.append(f"delivery-status unreadable: {type(exc).__name__}: {exc}"[:200])
        add(dsn.recipients, "dsn" if dsn_parts else "delivery-status fields in the text")
    # Every recipient block reports success (delivered, relayed, Postfix's
    # "deliverable" for sendmail -bv): a delivery report, nothing to dig for.
    success_only = dsn.successes > 0 and not dsn.recipients and not dsn.orphans

    evidence = _BOUNCE_PHRASES.search(section)
    delayed_report = bool(_DELAY_PHRASES.search(mail.subject) or _DELAY_PHRASES.search(section[:4000]))

    def described(addresses: list[str], temporary: set[str], source: str) -> None:
        # Bounded: each address costs a scan of the report, and a hostile
        # X-Failed-Recipients header can name a hundred thousand.
        addresses = list(dict.fromkeys(addresses))[:_MAX_RECIPIENTS]
        single = len(addresses) == 1
        found: list[BouncedRecipient] = []
        for address in addresses:
            status, diagnostic = _detail_for(section, address, single)
            if status is not None and status[0] == "2":
                continue  # the report says this one was delivered
            # A delay notice's words count unless the status says permanent (5.x.x).
            delayed = delayed_report and (status is None or status[0] != "5")
            is_temporary = address in temporary or delayed or (status is not None and status[0] == "4")
            found.append(BouncedRecipient(address, status, is_temporary, diagnostic))
        add(found, source)

    if not recipients and not success_only:
        # Exim lists the failed addresses in a header: structured, so before the library.
        header_addresses = [
            a for value in mail.header_all("X-Failed-Recipients") for a in map(_clean_address, value.split(",")) if a
        ]
        described(header_addresses, set(), "X-Failed-Recipients")

    library_hit = False
    unseen: list[str] = []
    temporary: list[str] = []
    haystack: list[bytes] = []

    def in_mail(address: str) -> bool:
        if not haystack:
            haystack.append(bytes(raw[:_RAW_SCAN_MAX_BYTES]).lower() + text.lower().encode("utf-8", "replace"))
        return address.lower().encode("utf-8", "replace") in haystack[0]

    if use_library and tree is not None and not success_only and (not recipients or dsn.orphans):
        temporary, permanent = _library(tree, raw, problems)
        library_hit = bool(temporary or permanent)
        lowered_text = text.lower()

        def position(address: str) -> int:  # report order, not the library's set order
            found = lowered_text.find(address.lower())
            return found if found != -1 else len(lowered_text)

        addresses = sorted((a for a in temporary + permanent if plausible(a)), key=position)
        # A detector's guess that appears nowhere in the mail (a local part joined to the
        # wrong host) must not beat what the report or the returned original names.
        unseen = [a for a in addresses if not in_mail(a)]
        described([a for a in addresses if a not in unseen], set(temporary), "flufl.bounce")

    if not recipients and not success_only:
        described([a for a in _text_addresses(section, exclude) if plausible(a)], set(), "report text")
        if not recipients:
            # Last resort: the returned original, attached or quoted below the report:
            # the recipient its Received header was for, else its To.  Our mails have
            # one recipient; a list would be a guess.
            rest = text[len(section) :]
            for source, found in (
                ("returned original's Received", _originals_for(originals) if originals else _quoted_for(rest)),
                ("returned original's To", _originals_to(originals) if originals else _quoted_to(rest)),
            ):
                candidates = list(dict.fromkeys(a for a in found if _base_address(a) not in own))
                if len(candidates) == 1:
                    described(candidates, set(), source)
                    break
        if not recipients and unseen:
            described(unseen, set(temporary), "flufl.bounce (not named in the mail)")

    if dsn.orphans and len(dsn.orphans) == len(recipients) == 1 and "dsn" not in sources:
        # A DSN block with Action/Status but no usable recipient field, and one
        # address found elsewhere: they describe the same recipient.
        orphan = dsn.orphans[0]
        ((key, found_one),) = recipients.items()
        recipients[key] = BouncedRecipient(
            address=found_one.address,
            status=orphan.status or found_one.status,
            temporary=orphan.temporary,
            diagnostic=orphan.diagnostic or found_one.diagnostic,
            action=orphan.action,
        )

    return BounceReport(
        recipients=tuple(recipients.values()),
        original_message_ids=original_ids,
        dsn=bool(dsn_parts),
        dsn_success_only=success_only,
        reporting_mta=dsn.reporting_mta,
        library_hit=library_hit,
        returned_original=bool(originals),
        inline_original=not originals and _inline_original(text, section),
        text_evidence=_one_line(evidence.group(0), 60) if evidence else None,
        sources=tuple(sources),
        problems=tuple(problems),
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
