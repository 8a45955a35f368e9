"""Is an agent's reply authenticated? The receiving MTA's verdict, read with suspicion.

    pipeline -> [agents.auth.authenticate -> AuthVerdict] -> may the agent's reply act?

An agent's reply executes commands only if it carries our token bound to that agent and
that ticket *and* `authenticate` says the message is authenticated. The From header alone
proves nothing; this module decides the second half, nothing else.

Authenticated means one of:

* ``intake_trust == "internal"``: it arrived on a listener or mailbox configured as
  trusted internal (how="internal"). No header is looked at.
* ``intake_trust == "authentication-results"``: the *topmost* Authentication-Results
  header (RFC 8601) was added by one of ``trusted_authserv_ids`` (case-insensitive) and
  shows, aligned with the From domain, one of

  - ``dkim=pass`` whose signing domain (``header.d``, else the domain of ``header.i``)
    is aligned (how="dkim");
  - ``dmarc=pass`` whose ``header.from`` equals the From domain (how="dmarc");
  - ``spf=pass`` whose ``smtp.mailfrom`` domain (an address or a bare domain) is aligned
    (how="spf"); ``smtp.helo`` does not count: HELO names say nothing about the sender.

  Any one aligned pass suffices, whatever else the header says. Other results (fail,
  softfail, neutral, none, temperror, permerror, policy, ...) never authenticate.

``intake_trust == "none"`` (or any unknown value) never authenticates: on such an intake
whoever sent the mail may have written every Authentication-Results header in it.

Only the topmost header counts because an MTA prepends its header above everything the
sender wrote: an attacker can add headers *below* the receiving MTA's, never above. So
headers below the topmost are not even parsed, and a topmost header from anyone else
(or without an authserv-id, as Microsoft 365 writes them) means "not authenticated".
There is no DNS here: we never verify DKIM or SPF ourselves, we trust the MTA's verdict.

Alignment is relaxed and without a public-suffix list: the domains are equal, or one is a
subdomain of the other on a label boundary ("evil-example.com" is not aligned with
"example.com"). A parent must have two labels at least, so a bare TLD ("com") never
aligns by suffix. An empty From domain never authenticates.

Input: every Authentication-Results value of the mail, top first, each the header's raw
text (unfolded or folded). They must NOT be RFC 2047-decoded: the MTA copies
sender-controlled text (the envelope sender, the HELO name) into its header, and an
encoded-word there decodes into "; dkim=pass header.d=victim.example" if anything
decodes it before this parser sees the header.

The parser is hand-written, not the PyPI package ``authres``: authres (1.2.0, 2019)
rejects a whole header over deviations that real receivers write - a trailing ";", an
IPv6 address in ``smtp.remote-ip`` (authentication_milter, as at Fastmail) - which would
lock out legitimate agents; it recurses on nested comments (RecursionError on hostile
input) and costs ~0.2 ms per result. This one is tolerant where real MTAs deviate
(trailing or empty ";", properties without a ptype such as ``action=none``, results that
are not keywords), fails closed on anything else, never raises, and is linear in the
header, which is capped at MAX_HEADER_CHARS anyway.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["MAX_HEADER_CHARS", "AuthVerdict", "IntakeTrust", "authenticate", "own_mail"]

IntakeTrust = Literal["none", "authentication-results", "internal"]

# Real Authentication-Results headers are under 4 KB (Fastmail's, among the longest, ~1.5 KB);
# a longer topmost header is refused unread, so the cost per agent reply stays small.
MAX_HEADER_CHARS = 16_384


@dataclass(frozen=True)
class AuthVerdict:
    authenticated: bool
    how: str  # "internal" | "dkim" | "spf" | "dmarc" | "envelope" (own_mail) | "" (not authenticated)
    reason: str  # one human sentence: why yes, or why not (shown to agents and in ticket history)


def authenticate(
    auth_results: Sequence[str],
    *,
    from_domain: str,
    intake_trust: IntakeTrust,
    trusted_authserv_ids: Collection[str],
) -> AuthVerdict:
    """Decide whether a mail is authenticated (see the module docstring for the rules).

    ``auth_results``: every Authentication-Results value, top first, raw (not RFC 2047
    decoded). ``from_domain``: the From address's domain, "" if none. Never raises on
    hostile header text: anything unreadable is "not authenticated".
    """
    if intake_trust == "internal":
        return AuthVerdict(True, "internal", "It arrived on a trusted internal intake.")
    if intake_trust != "authentication-results":
        # "none", and any value a config typo could produce: fail closed.
        return AuthVerdict(False, "", "It arrived on an intake whose Authentication-Results are not trusted.")
    if isinstance(auth_results, str):  # one value passed bare would otherwise be read letter by letter
        auth_results = (auth_results,)
    if not auth_results:
        return _no("It has no Authentication-Results header.")
    top = auth_results[0]
    if not isinstance(top, str):
        return _no("Its topmost Authentication-Results header is unparseable.")
    if len(top) > MAX_HEADER_CHARS:
        return _no("Its topmost Authentication-Results header is too long to be read.")
    try:
        authserv_id, results = _parse(top)
    except Exception:  # _Malformed, and whatever hostile text might still provoke: fail closed
        return _no("Its topmost Authentication-Results header is unparseable.")
    if authserv_id is None:
        return _no("Its topmost Authentication-Results header names no authserv-id, so no trusted receiver added it.")
    trusted = {_domain(t) for t in trusted_authserv_ids if isinstance(t, str)}
    if _domain(authserv_id) not in trusted:
        return _no(
            f"Its topmost Authentication-Results header is from {_shown(authserv_id)}, "
            "which is not a trusted authserv-id."
        )
    return _judge(_shown(authserv_id), results, _domain(from_domain))


def own_mail(
    auth_results: Sequence[str],
    *,
    from_address: str,
    envelope_from: str | None,
    intake_trust: IntakeTrust,
    trusted_authserv_ids: Collection[str],
) -> AuthVerdict:
    """Is this mail its From address's own? Asked before a requester's mail adds people
    to their ticket (pipeline): a forged From: of the requester with the attacker in Cc
    had made the attacker a participant, who then got the next answer.

    An internal intake vouches for it. Where the intake's Authentication-Results are
    trusted and the topmost one is by a trusted receiver, it decides, as for agents: an
    aligned DKIM, DMARC or SPF pass (authenticate()); a forger who sets the envelope
    sender to the requester's address too fails SPF there. Otherwise the envelope sender
    must be the From address: weaker (the envelope can be forged too, where nothing
    checks SPF), which is why the requester is also told of every addition."""
    domain = from_address.rpartition("@")[2].lower() if "@" in from_address else ""
    if intake_trust == "internal" or (
        intake_trust == "authentication-results" and _by_trusted_receiver(auth_results, trusted_authserv_ids)
    ):
        return authenticate(
            auth_results, from_domain=domain, intake_trust=intake_trust, trusted_authserv_ids=trusted_authserv_ids
        )
    envelope = (envelope_from or "").strip().strip("<>").lower()
    if envelope and envelope == from_address.lower():
        return AuthVerdict(True, "envelope", "Its envelope sender is its From address.")
    shown = _shown(envelope) if envelope else "empty"
    return _no(f"Its envelope sender ({shown}) is not its From address, and nothing else vouches for it.")


def _by_trusted_receiver(auth_results: Sequence[str], trusted_authserv_ids: Collection[str]) -> bool:
    """Whether the topmost Authentication-Results is readable and by a trusted authserv-id."""
    top = auth_results[0] if auth_results and not isinstance(auth_results, str) else auth_results or ""
    if not isinstance(top, str) or not top or len(top) > MAX_HEADER_CHARS:
        return False
    try:
        authserv_id, _results = _parse(top)
    except Exception:  # unreadable: not by anyone we trust
        return False
    trusted = {_domain(t) for t in trusted_authserv_ids if isinstance(t, str)}
    return authserv_id is not None and _domain(authserv_id) in trusted


def _no(reason: str) -> AuthVerdict:
    return AuthVerdict(False, "", reason)


# --- the verdict ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Result:
    method: str  # lowercase, without "/version"
    result: str  # lowercase
    props: dict[str, str]  # "ptype.property" lowercase -> value unquoted; the first of duplicates


def _judge(by: str, results: list[_Result], from_domain: str) -> AuthVerdict:
    if not from_domain:
        return _no("It has no From domain to align the authentication results with.")
    shown_from = _shown(from_domain)
    dkim = spf = dmarc = ""
    for r in results:
        if r.result != "pass":
            continue
        if r.method == "dkim" and not dkim:
            signer = _domain(r.props.get("header.d") or _after_at(r.props.get("header.i", "")))
            if _aligned(signer, from_domain):
                dkim = signer
        elif r.method == "dmarc" and not dmarc:
            if _domain(_after_at(r.props.get("header.from", ""))) == from_domain:
                dmarc = from_domain
        elif r.method == "spf" and not spf:
            # smtp.mailfrom only: smtp.helo is the client's name for itself, not the sender's domain.
            sender = _domain(_after_at(r.props.get("smtp.mailfrom", "")))
            if _aligned(sender, from_domain):
                spf = sender
    # Several may pass; report the strongest: a signature over the message, then the
    # receiver's DMARC verdict, then the envelope-only SPF.
    if dkim:
        return AuthVerdict(
            True, "dkim", f"{by} verified a DKIM signature by {_shown(dkim)}, aligned with {shown_from}."
        )
    if dmarc:
        return AuthVerdict(True, "dmarc", f"{by} reports a DMARC pass for {shown_from}.")
    if spf:
        return AuthVerdict(True, "spf", f"{by} reports an SPF pass for {_shown(spf)}, aligned with {shown_from}.")
    seen = ", ".join(_shown(f"{r.method}={r.result}", 24) for r in results[:8]) or "no results"
    return _no(f"{by} reports no DKIM, DMARC or SPF pass aligned with {shown_from} ({seen}).")


def _after_at(value: str) -> str:
    # The last "@": a quoted local part may hold "@" too, a domain never does.
    return value.rpartition("@")[2]


def _domain(value: str) -> str:
    # Spaces and tabs only: str.strip() would also eat Unicode separators a value smuggled in.
    return value.strip(" \t").strip("<>").strip(" \t").rstrip(".").lower()


def _aligned(a: str, b: str) -> bool:
    """Relaxed alignment without a public-suffix list: equal, or a subdomain on a label boundary."""
    if not a or not b:
        return False
    if a == b:
        return True
    child, parent = (a, b) if len(a) > len(b) else (b, a)
    # The parent needs two labels: "com" would otherwise align every .com domain.
    return "." in parent and child.endswith("." + parent)


def _shown(text: str, limit: int = 64) -> str:
    """Sender-influenced text made safe for a one-line reason: short, and printable (no
    line breaks, no bidi overrides or other format characters that could disguise it)."""
    cut = text if len(text) <= limit else text[: limit - 1] + "…"
    return "".join(c if c.isprintable() else "?" for c in cut)


# --- RFC 8601 parsing -----------------------------------------------------------------


class _Malformed(ValueError):
    pass


# Folding (RFC 5322 2.2.3): a line break followed by whitespace. Any other line break or
# control character means the value was not one header: refuse it (header injection).
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")  # as parsing.mime: what can end a line
_WS = re.compile(r"[ \t]+")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]*")  # method, "ptype.property", or a bare property
_VERSION = re.compile(r"[0-9]+")
_PLAIN = re.compile(r'[^ \t;()"]+')  # a value's unquoted run ("=", "@", "/" and "+" included)
_COMMENT_STOP = re.compile(r"[()\\]")
_QUOTED_STOP = re.compile(r'["\\]')


def _parse(value: str) -> tuple[str | None, list[_Result]]:
    """(authserv-id or None when the header has none, results). Raises _Malformed."""
    text = _FOLD.sub("", value)
    if _CONTROL.search(text):
        raise _Malformed("control character")
    p = _Parser(text)
    p.cfws()
    authserv_id, has_equals = p.word()
    if has_equals or not authserv_id:
        # "spf=pass ...; dkim=..." (Microsoft 365): the first token is a result, not an id.
        return None, []
    p.cfws()
    version = _VERSION.match(text, p.pos)
    if version:
        p.pos = version.end()
        p.cfws()
    results: list[_Result] = []
    while not p.at_end():
        p.expect(";")
        p.cfws()
        if p.at_end() or p.peek() == ";":
            continue  # trailing or doubled ";": common, harmless
        name = p.name()
        p.cfws()
        if p.peek() != "=":
            if name.lower() == "none":  # "authserv-id; none": no results (RFC 8601 2.2)
                continue
            raise _Malformed("expected '=' after a method")
        p.pos += 1
        p.cfws()
        result, _ = p.word()
        p.cfws()
        props: dict[str, str] = {}
        while not p.at_end() and p.peek() != ";":
            prop = p.name().lower()
            p.cfws()
            p.expect("=")
            p.cfws()
            props.setdefault(prop, p.word()[0])
            p.cfws()
        results.append(_Result(name.lower().partition("/")[0], result.lower(), props))
    return authserv_id, results


class _Parser:
    """A cursor over one unfolded header value; every step advances or raises."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise _Malformed(f"expected {char!r}")
        self.pos += 1

    def name(self) -> str:
        match = _NAME.match(self.text, self.pos)
        if match is None:
            raise _Malformed("expected a name")
        self.pos = match.end()
        return match.group()

    def cfws(self) -> None:
        """Skip whitespace and comments (nested ones too: a depth count, no recursion)."""
        text = self.text
        while True:
            ws = _WS.match(text, self.pos)
            if ws:
                self.pos = ws.end()
            if self.peek() != "(":
                return
            depth, pos = 0, self.pos
            while True:
                stop = _COMMENT_STOP.search(text, pos)
                if stop is None:
                    raise _Malformed("unterminated comment")
                pos = stop.end()
                if stop.group() == "\\":
                    pos += 1  # quoted-pair: the next character is literal
                    continue
                depth += 1 if stop.group() == "(" else -1
                if depth == 0:
                    break
            self.pos = pos

    def word(self) -> tuple[str, bool]:
        """A token or quoted-string, or a run of both (``"a b"@example.com``), unquoted.

        Also says whether an "=" stood outside quotes (an authserv-id never has one).
        """
        text = self.text
        parts: list[str] = []
        has_equals = False
        while self.pos < len(text):
            if text[self.pos] == '"':
                parts.append(self._quoted())
                continue
            run = _PLAIN.match(text, self.pos)
            if run is None:
                break
            parts.append(run.group())
            has_equals = has_equals or "=" in run.group()
            self.pos = run.end()
        return "".join(parts), has_equals

    def _quoted(self) -> str:
        text = self.text
        parts: list[str] = []
        pos = self.pos + 1
        while True:
            stop = _QUOTED_STOP.search(text, pos)
            if stop is None:
                raise _Malformed("unterminated quoted string")
            parts.append(text[pos : stop.start()])
            if stop.group() == '"':
                self.pos = stop.end()
                return "".join(parts)
            if stop.end() >= len(text):
                raise _Malformed("unterminated quoted string")
            parts.append(text[stop.end()])  # quoted-pair
            pos = stop.end() + 1
