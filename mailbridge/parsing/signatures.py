"""Mail clients' own signature blocks, cut from an agent's answer.

    agents/desk.py: an agent's reply -> reply.extract_reply (quote, "-- ", "Sent from ...")
        -> commands.parse_commands -> the body
        -> [strip_client_signature(body, the mail's HTML)] -> the answer to the requester

Agents' answers go out with our own signature (the agent's name and the team's), so
the signature their mail client adds must not stand next to it. reply.py already cuts a
"-- " signature and the "Sent from Outlook" / "Von Outlook gesendet" lines; what it
cannot see is a signature without any marker in the text: Outlook and Gmail write one as
plain lines, and only the HTML part says where it is (Gmail's ``gmail_signature`` class,
Outlook's ``<div id="Signature">``, Apple Mail's ``AppleMailSignature``, Thunderbird's
``moz-signature``, Yahoo's ``signature``). This module reads that block's text from the
HTML and cuts the same text from the end of the body.

Only for agents: a customer's words are kept even when they look like a signature (see
reply.py), but an agent's signature next to ours is noise the customer should not get.
Pure, no I/O; linear in the HTML (one pass of the standard library's HTML parser) and
quadratic only in a bounded window of the body's last lines.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["signature_text", "strip_client_signature"]

# Attribute values that mark a signature block (compared case-insensitively).
_SIGNATURE_CLASSES = frozenset({"gmail_signature", "moz-signature", "signature"})
_SIGNATURE_IDS = frozenset({"signature", "x_signature", "applemailsignature", "divrplysignature"})
# What of the HTML is read at most, and how far from the end of the body a signature may start.
_MAX_HTML = 2_000_000
_TAIL_LINES = 60
_MAX_SIGNATURE_WORDS = 200
# The words compared: the signature's first ones are enough to recognise it, and a
# plain-text part may render the rest differently (links, images, table layouts).
_COMPARED_WORDS = 12
_BREAKS = frozenset({"br", "p", "div", "tr", "li", "table", "h1", "h2", "h3", "h4", "h5", "h6"})
_VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr", "source"})
# Text that a plain-text part has and the HTML shows differently: "<https://…>" after a
# link's label, "[cid:image001.png@…]" for a logo, "mailto:" links.
_NOISE = re.compile(r"<[^<>\s]{1,2000}>|\[cid:[^\]\s]{1,500}\]|\[image:[^\]]{0,200}\]", re.IGNORECASE)
_WORD = re.compile(r"\w+")


class _SignatureText(HTMLParser):
    """The text of the last signature block of an HTML body."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._stack: list[bool] = []  # per open element: does it open a signature block?
        self._inside = 0
        self._current: list[str] = []
        self.last = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        marked = False
        for name, value in attrs:
            value = (value or "").lower()
            by_class = name == "class" and bool(_SIGNATURE_CLASSES.intersection(value.split()))
            marked = marked or by_class or (name == "id" and value in _SIGNATURE_IDS)
        if self._inside and tag in _BREAKS:
            self._current.append("\n")
        if tag in _VOID:
            return
        if marked and not self._inside:
            self._current = []
        self._stack.append(marked)
        self._inside += marked

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or not self._stack:
            return
        marked = self._stack.pop()
        if marked:
            self._inside -= 1
            if not self._inside:
                self.last = "".join(self._current)

    def handle_data(self, data: str) -> None:
        if self._inside:
            self._current.append(data)


def signature_text(html: str | None) -> str:
    """The text of the last block the HTML marks as its client's signature, or ""."""
    if not html or "signature" not in html.lower():
        return ""
    parser = _SignatureText()
    try:
        parser.feed(html[:_MAX_HTML])
        parser.close()
    except Exception:  # a parser quirk must not lose an agent's answer: keep it whole
        return ""
    return parser.last.strip()


def _words(text: str) -> list[str]:
    return _WORD.findall(_NOISE.sub(" ", text).casefold())


def strip_client_signature(body: str, html: str | None) -> str:
    """``body`` without the mail client's signature that the HTML part marks, when the
    body ends with it; else ``body`` unchanged."""
    wanted = _words(signature_text(html))[:_MAX_SIGNATURE_WORDS]
    if not wanted:
        return body
    head = wanted[:_COMPARED_WORDS]
    lines = body.split("\n")
    tail: list[str] = []
    # From the last line up: the first line from which the rest starts with the signature's words.
    for i in range(len(lines) - 1, max(-1, len(lines) - 1 - _TAIL_LINES), -1):
        tail = _words(lines[i]) + tail
        if len(tail) > len(wanted) + 40:
            break
        if tail[: len(head)] == head and i > 0:
            return "\n".join(lines[:i]).rstrip()
    return body
