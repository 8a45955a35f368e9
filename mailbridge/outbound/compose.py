"""Compose one outgoing mail, from scratch, as bytes ready for the transport.

Where this sits in the flow: the pipeline renders a template
(:mod:`mailbridge.outbound.render`), then calls :func:`compose` with the
rendered text and the addresses/ids it chose, and hands the bytes to
:mod:`mailbridge.outbound.transport`.  Nothing from an inbound message is ever
re-serialised: we only take strings out of it and build a new message here.

Why the identity headers are written by hand instead of ``msg["Subject"] = x``:
Python 3.11's ``email`` package parses every header value it is given, and
decodes RFC 2047 encoded-words while doing so.  A customer subject that is
literally ``=?utf-8?q?x=0D=0ABcc:_evil@example.com?=`` (no CR/LF in it, so no
sanitiser catches it) comes out of ``EmailMessage.as_bytes()`` as a real
``Bcc:`` header line; long non-ASCII display names are also refolded with
altered spacing.  So this module builds the header block itself -- every line
7-bit ASCII, non-ASCII text as RFC 2047 encoded-words, folded per RFC 5322
section 2.2.3 -- and uses ``EmailMessage`` (``policy.SMTP``, CRLF) only for the
MIME body, whose headers carry values we choose (content type, charset,
transfer encoding).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import quote

__all__ = ["ComposeError", "OutgoingAttachment", "compose", "sanitize_header_text", "trim_references"]


class ComposeError(ValueError):
    """An input cannot be put into a mail safely (bad address, id, date, header)."""


# --------------------------------------------------------------------------
# Header text sanitising
# --------------------------------------------------------------------------

# C0 controls (incl. CR, LF, TAB), DEL, C1 controls and the Unicode line and
# paragraph separators: some software treats each of them as a line break.
_CONTROL_TABLE: dict[int, str | None] = {
    cp: " " for cp in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029)
}
# Removed: the Unicode Bidi_Control characters (ALM, LRM, RLM, the embeddings and
# overrides LRE..RLO, the isolates LRI..PDI). A customer's subject or name with U+202E
# (RIGHT-TO-LEFT OVERRIDE) shows reversed text in our mail ("invoice_txt.exe" as
# "invoice_exe.txt"); a header has no use for them (Unicode TR 9, TR 36 3.3). Also the
# BOM / zero-width no-break space, the interlinear annotation marks and the deprecated
# format characters U+206A..U+206F, which only hide or reorder text.
_CONTROL_TABLE.update(
    dict.fromkeys((0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x2070), 0xFEFF), None)
)
_CONTROL_TABLE.update(dict.fromkeys(range(0xFFF9, 0xFFFC), None))


def _scrub_surrogates(text: str) -> str:
    # Text decoded with errors="surrogateescape" holds lone surrogates, which
    # cannot be encoded as UTF-8 at all; show them as U+FFFD instead of crashing.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)
    return text


def sanitize_header_text(value: str, max_len: int = 900) -> str:
    """Make ``value`` safe as header text: one line, no control or bidi characters.

    Control characters become spaces, bidi controls are removed, runs of whitespace collapse to one
    space, the ends are stripped and the result is cut to ``max_len``
    characters (900 keeps ``Name: value`` under the 998-octet line limit of
    RFC 5322 section 2.1.1 even before folding).
    """
    if max_len < 0:
        raise ValueError("max_len must be >= 0")
    text = str(value)
    # Cut first: a hostile subject can be megabytes, and only its start is kept. The
    # margin leaves room for what the collapsing of white space below removes.
    text = text[: max_len * 8 + 1024]
    text = _scrub_surrogates(text.translate(_CONTROL_TABLE))
    text = " ".join(text.split())
    if len(text) > max_len:
        text = text[:max_len].rstrip()
    return text


# --------------------------------------------------------------------------
# Syntax checks
# --------------------------------------------------------------------------

# RFC 5322 section 3.2.3 atext.
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"  # "-" escaped so the class can be extended
_LOCAL_RE = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")

# msg-id (RFC 5322 section 3.6.4) without the angle brackets.  The left side is
# dot-atom-text in the RFC; real mailers produce ids with leading/doubled dots,
# and dropping those would break threading for the customer, so dots are
# allowed anywhere.  Nothing that could end the id or the header is allowed.
_MSGID_RE = re.compile(rf"[{_ATEXT}.]+@(?:[{_ATEXT}.]+|\[[!-Z^-~]*\])")
_MSGID_MAX = 500
_REFERENCES_MAX = 20

_FIELD_NAME_RE = re.compile(r"[!-9;-~]{1,76}")  # RFC 5322 section 3.6.8 ftext
_RESERVED_FIELDS = frozenset(
    {
        "from", "to", "cc", "bcc", "subject", "date", "message-id", "in-reply-to",
        "references", "reply-to", "sender", "auto-submitted", "x-auto-response-suppress",
        "precedence", "mime-version", "return-path", "received",
    }
)  # fmt: skip
_AUTO_SUBMITTED_RE = re.compile(r"[A-Za-z0-9-]{1,64}")  # RFC 3834 section 5: token


def _check_address(address: str, what: str) -> str:
    """Return ``address`` if it is a plain ASCII addr-spec, else raise.

    Strict on purpose: a dot-atom local part and a host name, so no quoting,
    comments, group syntax, commas, angle brackets or line breaks can reach
    the header or the SMTP envelope.
    """
    if not isinstance(address, str) or not address.isascii():
        raise ComposeError(f"{what}: address must be an ASCII addr-spec: {address!r}")
    local, at, domain = address.partition("@")
    if (
        not at
        or len(local) > 64
        or len(address) > 254
        or not _LOCAL_RE.fullmatch(local)
        or not _DOMAIN_RE.fullmatch(domain)
    ):
        raise ComposeError(f"{what}: not a plain addr-spec (local@domain): {address!r}")
    return address


def _valid_msgid(msgid: object) -> bool:
    return isinstance(msgid, str) and len(msgid) <= _MSGID_MAX and bool(_MSGID_RE.fullmatch(msgid))


def trim_references(references: Sequence[str], parent: str | None, keep: int = _REFERENCES_MAX) -> list[str]:
    """The References to write: valid ids, each once, in order, cut to ``keep``: the
    thread's root (the first id) and the most recent ones, ending with ``parent``.

    RFC 5322 section 3.6.4: a reply's References are the parent's References followed
    by the parent's Message-ID; RFC 5537 section 3.4.4 trims a long list by keeping
    the first id and the last ones, which is what threading needs. The list comes from
    a customer's mail and can hold hundreds of thousands of ids, so it is walked from
    the end only until enough are found, with a set for the duplicates: linear, and
    usually a handful of steps.
    """
    tail: list[str] = []
    seen: set[str] = set()
    if parent is not None:
        tail.append(parent)
        seen.add(parent)
    for ref in reversed(references):
        if len(tail) >= keep - 1:
            break
        if ref not in seen and _valid_msgid(ref):
            seen.add(ref)
            tail.append(ref)
    root = next((ref for ref in references if _valid_msgid(ref)), None)
    if root is not None and root not in seen and keep > 0:
        return [root, *reversed(tail)]
    return list(reversed(tail))[-keep:] if keep > 0 else []


# --------------------------------------------------------------------------
# Header writing
# --------------------------------------------------------------------------

_LINE_MAX = 78  # RFC 5322 section 2.1.1: lines SHOULD be at most 78 characters.
_EW_LINE_MAX = 76  # RFC 2047 section 2: lines with encoded-words at most 76.
_EW_MAX = 75  # RFC 2047 section 2: an encoded-word is at most 75 characters.
_EW_PREFIX = "=?utf-8?"  # what every encoded-word we write starts with
_EW_SUFFIX = "?="

# Characters left as-is in Q-encoded words.  In unstructured text (RFC 2047
# section 4.2) anything printable except "=", "?", "_" and space may stay; in a
# display name (section 5 rule 3) only letters, digits and "!*+-/" may.
_Q_SAFE_TEXT = frozenset(chr(c) for c in range(0x21, 0x7F)) - set("=?_")
_Q_SAFE_PHRASE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_ATOM_RE = re.compile(rf"[{_ATEXT}]+")


def _encoded_words(text: str, safe: frozenset[str], first_room: int) -> list[str]:
    """Split ``text`` into RFC 2047 encoded-words that each fit on a line.

    Q encoding keeps mostly-Latin text readable; B (base64) is much shorter
    for other scripts.  Whichever needs fewer words wins, because every split
    is a place where decoders can disagree (see :func:`_phrase_tokens`).
    """
    q_words = _chunk_words(text, first_room, "q", safe)
    b_words = _chunk_words(text, first_room, "b", safe)
    return b_words if len(b_words) < len(q_words) else q_words


def _q_piece(ch: str, safe: frozenset[str]) -> str:
    if ch == " ":
        return "_"
    if ch in safe:
        return ch
    return "".join(f"={byte:02X}" for byte in ch.encode("utf-8"))


def _chunk_words(text: str, first_room: int, enc: str, safe: frozenset[str]) -> list[str]:
    """Greedy split into encoded-words of whole characters (RFC 2047 section 5).

    Spaces travel inside the words: whitespace *between* two encoded-words is
    not part of the text (RFC 2047 section 6.2).
    """
    prefix = f"=?utf-8?{enc}?"
    overhead = len(prefix) + len(_EW_SUFFIX)
    min_payload = 16  # one 4-byte UTF-8 character always fits (Q: 12, B: 8)
    room = max(min(_EW_MAX, first_room) - overhead, min_payload)
    words: list[str] = []
    chars: list[str] = []
    q_len = 0  # Q: sum of the pieces
    n_bytes = 0  # B: 4 characters per started 3 bytes

    def flush() -> None:
        if enc == "q":
            payload = "".join(_q_piece(ch, safe) for ch in chars)
        else:
            payload = base64.b64encode("".join(chars).encode("utf-8")).decode("ascii")
        words.append(prefix + payload + _EW_SUFFIX)

    for ch in text:
        if enc == "q":
            piece_len = len(_q_piece(ch, safe))
            new_len = q_len + piece_len
        else:
            ch_bytes = len(ch.encode("utf-8"))
            new_len = 4 * -(-(n_bytes + ch_bytes) // 3)
        if chars and new_len > room:
            flush()
            chars, q_len, n_bytes = [], 0, 0
            room = max(_EW_LINE_MAX - 1 - overhead, min_payload)
        chars.append(ch)
        if enc == "q":
            q_len += piece_len
        else:
            n_bytes += ch_bytes
    if chars:
        flush()
    return words


def _field(name: str, tokens: Sequence[str]) -> str:
    """One header field: tokens joined by single spaces, folded at those spaces.

    Folding inserts CRLF before an existing space (RFC 5322 section 2.2.3), so
    unfolding gives back exactly the single-spaced value.  Lines holding an
    encoded-word are kept to 76 characters (RFC 2047 section 2).
    """
    lines: list[str] = []
    line = f"{name}:"
    bare = True  # nothing after "Name:" yet; never fold there
    line_has_ew = False
    for token in tokens:
        is_ew = token.startswith(_EW_PREFIX)
        limit = _EW_LINE_MAX if (is_ew or line_has_ew) else _LINE_MAX
        if not bare and len(line) + 1 + len(token) > limit:
            lines.append(line)
            line = " " + token
            line_has_ew = is_ew
        else:
            line += " " + token
            line_has_ew = line_has_ew or is_ew
        bare = False
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _first_room(name: str) -> int:
    return _EW_LINE_MAX - len(name) - 2  # "Name: "


def _unstructured_tokens(name: str, text: str) -> list[str]:
    """Tokens for unstructured text (Subject, extension fields), already sanitised."""
    if not text:
        return []
    words = text.split(" ")
    # Plain ASCII goes out as-is.  "=?" must not: decoders would take it for
    # an encoded-word and show (or inject) something else.
    if text.isascii() and "=?" not in text and max(map(len, words)) <= 900:
        return words
    return _encoded_words(text, _Q_SAFE_TEXT, _first_room(name))


def _phrase_tokens(name: str, display: str) -> list[str]:
    """Tokens for a display name (RFC 5322 section 3.2.5 phrase).

    Plain atoms stay as they are; each run of other words becomes one
    quoted-string (ASCII) or encoded-words (anything else, and anything
    containing "=?").  Encoding only the runs that need it keeps the spaces
    between runs as ordinary, significant whitespace: decoders disagree about
    whitespace between two adjacent encoded-words inside a phrase (RFC 2047
    section 6.2 says drop it; Python's parser keeps it), so we avoid relying
    on it except for very long runs.
    """
    tokens: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if not run:
            return
        text = " ".join(run)
        run.clear()
        if text.isascii() and "=?" not in text:
            tokens.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            room = _first_room(name) if not tokens else _EW_LINE_MAX - 1
            tokens.extend(_encoded_words(text, _Q_SAFE_PHRASE, room))

    for word in display.split(" ") if display else ():
        if "=?" not in word and _ATOM_RE.fullmatch(word):
            flush()
            tokens.append(word)
        else:
            run.append(word)
    flush()
    return tokens


def _address_field(name: str, display: str, address: str) -> str:
    phrase = _phrase_tokens(name, sanitize_header_text(display, max_len=200))
    if not phrase:
        return _field(name, [address])
    return _field(name, [*phrase, f"<{address}>"])


def _address_list_field(name: str, people: Sequence[tuple[str, str]]) -> str:
    """Several addresses: each "phrase <addr>" (or the bare address), comma-separated."""
    tokens: list[str] = []
    for index, (display, address) in enumerate(people):
        phrase = _phrase_tokens(name, sanitize_header_text(display, max_len=200))
        group = [*phrase, f"<{address}>"] if phrase else [address]
        if index < len(people) - 1:
            group[-1] += ","
        tokens.extend(group)
    return _field(name, tokens)


# --------------------------------------------------------------------------
# Body
# --------------------------------------------------------------------------


_SEVEN_BIT_RE = re.compile(r"[\t\r\n\x20-\x7e]*")


def _cte(text: str) -> str:
    # 7bit only when it truly is: printable ASCII and lines within the
    # 998-octet limit of RFC 5322 section 2.1.1.  Otherwise quoted-printable,
    # so the mail needs no 8BITMIME support from any relay on the way.
    if _SEVEN_BIT_RE.fullmatch(text) and all(len(line) <= 998 for line in text.encode("ascii").splitlines()):
        return "7bit"
    return "quoted-printable"


def _encoded_part(text: str, subtype: str) -> tuple[bytes, bytes]:
    """(MIME headers, encoded body) of one text part, CRLF line endings."""
    text = _scrub_surrogates(text).replace("\r\n", "\n").replace("\r", "\n")
    cte = _cte(text)
    data = text.encode("utf-8")
    if cte == "quoted-printable":
        # RFC 2045 6.7; binascii is C code, and keeps lines within 76 octets.
        data = binascii.b2a_qp(data, istext=True)
    if not data.endswith(b"\n"):
        data += b"\n"
    head = (f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n').encode("ascii")
    return head, data.replace(b"\n", b"\r\n")


@dataclass(frozen=True)
class OutgoingAttachment:
    """A file to send along (an agent's attachment relayed to the requester, or the
    requester's to the agent): the filename was sanitised when the mail was parsed."""

    filename: str
    content_type: str
    data: bytes


_CONTENT_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")


def _attachment_part(att: OutgoingAttachment) -> bytes:
    """One base64 part; the name as RFC 2231 (UTF-8, percent-encoded) whatever it is,
    so no character of it can end the header or open a parameter of its own."""
    ctype = att.content_type.lower() if _CONTENT_TYPE_RE.fullmatch(att.content_type.lower()) else ""
    ctype = ctype or "application/octet-stream"
    name = sanitize_header_text(att.filename, max_len=200) or "attachment"
    encoded = "utf-8''" + quote(name, safe="")
    head = (
        f"Content-Type: {ctype}; name*={encoded}\r\n"
        f"Content-Disposition: attachment; filename*={encoded}\r\n"
        "Content-Transfer-Encoding: base64\r\n"
    ).encode("ascii")
    body = base64.encodebytes(att.data).replace(b"\n", b"\r\n")
    return head + b"\r\n" + body


def _mixed(text: str, html: str | None, attachments: Sequence[OutgoingAttachment]) -> bytes:
    """multipart/mixed: the text (and HTML) part, then each attachment."""
    inner = _body(text, html)
    assert inner.startswith(b"MIME-Version: 1.0\r\n")
    inner = inner[len(b"MIME-Version: 1.0\r\n") :]
    parts = [inner, *(_attachment_part(att) for att in attachments)]
    while True:
        boundary = "=_mb_" + secrets.token_hex(12)
        marker = boundary.encode("ascii")
        if not any(marker in part for part in parts):
            break
    out = [b"MIME-Version: 1.0\r\n", f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()]
    for part in parts:
        # The CRLF before a delimiter belongs to it (RFC 2046 5.1.1): one more keeps
        # each part's own last line break.
        out += [b"--" + marker + b"\r\n", part, b"\r\n"]
    out.append(b"--" + marker + b"--\r\n")
    return b"".join(out)


def _body(text: str, html: str | None) -> bytes:
    """MIME-Version, content headers and the body (after the caller's header block).

    Written directly rather than through EmailMessage.set_content(): that costs ~2 ms a
    mail, which on the worker's hot path was the largest single cost of an
    acknowledgement; the structure here is fixed (one text part, or text + HTML as
    multipart/alternative), so nothing of MIME's generality is needed.
    """
    plain_head, plain = _encoded_part(text, "plain")
    if html is None:
        return b"MIME-Version: 1.0\r\n" + plain_head + b"\r\n" + plain
    html_head, html_body = _encoded_part(html, "html")
    while True:
        boundary = "=_mb_" + secrets.token_hex(12)
        # "=_" cannot occur in quoted-printable output ("=" is "=3D"), but a 7bit
        # body could contain anything: make sure the delimiter is unique (RFC 2046 5.1.1).
        marker = boundary.encode("ascii")
        if marker not in plain and marker not in html_body:
            break
    # The CRLF before each delimiter belongs to the delimiter (RFC 2046 5.1.1), so
    # every part's own final line break is kept by adding one more.
    delim = b"--" + marker
    return b"".join(
        [
            b"MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode("ascii"),
            delim,
            b"\r\n",
            plain_head,
            b"\r\n",
            plain,
            b"\r\n",
            delim,
            b"\r\n",
            html_head,
            b"\r\n",
            html_body,
            b"\r\n",
            delim,
            b"--\r\n",
        ]
    )


# --------------------------------------------------------------------------
# compose
# --------------------------------------------------------------------------


def compose(
    *,
    from_name: str,
    from_address: str,
    to_name: str,
    to_address: str,
    subject: str,
    text: str,
    html: str | None,
    message_id: str,
    date: datetime,
    reply_to: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    auto_submitted: str | None = "auto-replied",
    extra_headers: Mapping[str, str] | None = None,
    cc: Sequence[tuple[str, str]] = (),
    attachments: Sequence[OutgoingAttachment] = (),
) -> bytes:
    """Build one complete message (CRLF line endings, 7-bit clean) as bytes.

    Message ids are given without angle brackets.  An invalid ``message_id``
    raises :class:`ComposeError`; invalid ``in_reply_to``/``references``
    entries (they come from customers' mail) are silently dropped.
    """
    _check_address(from_address, "from_address")
    _check_address(to_address, "to_address")
    for _name, address in cc:
        _check_address(address, "cc")
    if reply_to is not None:
        _check_address(reply_to, "reply_to")
    if not _valid_msgid(message_id):
        raise ComposeError(f"message_id is not a valid msg-id (id-left@id-right, no <>): {message_id!r}")
    if not isinstance(date, datetime) or date.tzinfo is None or date.utcoffset() is None:
        raise ComposeError("date must be a timezone-aware datetime")

    parent = in_reply_to if in_reply_to is not None and _valid_msgid(in_reply_to) else None
    refs = trim_references(references, parent)

    head: list[str] = [
        _address_field("From", from_name, from_address),
        _address_field("To", to_name, to_address),
        *([_address_list_field("Cc", list(cc))] if cc else []),
        _field("Subject", _unstructured_tokens("Subject", sanitize_header_text(subject))),
        _field("Date", [format_datetime(date)]),
        _field("Message-ID", [f"<{message_id}>"]),
    ]
    if parent is not None:
        head.append(_field("In-Reply-To", [f"<{parent}>"]))
    if refs:
        head.append(_field("References", [f"<{ref}>" for ref in refs]))
    if reply_to is not None:
        head.append(_field("Reply-To", [reply_to]))
    if auto_submitted is not None:
        if not _AUTO_SUBMITTED_RE.fullmatch(auto_submitted):
            raise ComposeError(f"auto_submitted must be a token such as 'auto-replied': {auto_submitted!r}")
        # RFC 3834 section 5: tells vacation responders and other automata not
        # to answer us, which prevents mail loops.
        head.append(_field("Auto-Submitted", [auto_submitted]))
        if auto_submitted.lower() != "no":
            # Not standards, but what Exchange/Outlook (X-Auto-Response-Suppress)
            # and older vacation programs (Precedence: bulk, a convention RFC
            # 3834 acknowledges) actually look at to stay silent.
            head.append(_field("X-Auto-Response-Suppress", ["All"]))
            head.append(_field("Precedence", ["bulk"]))
    for field_name, value in (extra_headers or {}).items():
        if not isinstance(field_name, str) or not _FIELD_NAME_RE.fullmatch(field_name):
            raise ComposeError(f"invalid header field name: {field_name!r}")
        lowered = field_name.lower()
        if lowered in _RESERVED_FIELDS or lowered.startswith(("content-", "resent-")):
            raise ComposeError(f"header {field_name!r} is set by compose() and cannot be overridden")
        head.append(_field(field_name, _unstructured_tokens(field_name, sanitize_header_text(value))))

    # Every header line is built from checked ASCII pieces; encode("ascii")
    # would raise rather than let anything else through.
    body = _mixed(text, html, attachments) if attachments else _body(text, html)
    return "".join(head).encode("ascii") + body
