"""HTML body to readable text, for the parse stage (bytes -> ParsedMail, pure).

Used by ``parsing.mime`` only when a mail has no text/plain body: the ticket
needs a text version of what the customer wrote.  inscriptis (Apache-2.0, on
lxml) lays out paragraphs, lists and tables as text, keeps link targets
(``[label](https://...)``) and drops ``<script>``/``<style>``/``<head>`` content.
It replaced html2text (GPL-3.0-or-later): on every HTML part of the
real-world corpus it kept html2text's words in order (median 100%) at the same
speed (bench/htmltext.py, bench/RESULTS.md), without the Markdown noise.

The guard below was written for html2text on the stdlib ``html.parser``, which
is quadratic on markup it cannot finish (on Python 3.11.7, 18 KB of ``<a href='``
took 1.6 s and 6,000 ``<a `` took 1.4 s); it stays in front of inscriptis, whose
layout of deep nesting is not linear either: ``_tame`` rewrites the markup in one
linear regex pass (comments, scripts and styles removed, every tag complete and
quote-balanced, every stray ``<`` or ``&`` escaped, lists nested at most 12 deep,
element nesting at most 64 deep). Input is also capped: at ``MAX_HTML_CHARS`` after
that pass (a long newsletter or report fits), and at ``MAX_HTML_TAGS`` tags and
character references, the conversion's cost per mail.

Link targets longer than ``MAX_LINK_CHARS`` (tracking redirects, often hundreds of
characters each) are shortened to their scheme and host in the text: the text is what
search, rules and reply extraction read, and the full link stays in the HTML.

``tame_markup`` is the same pass for ``parsing.sanitize``, whose parser
(html5ever, under nh3) is instead quadratic in element nesting: it caps the
depth of every element, not only lists.
"""

from __future__ import annotations

import re
import urllib.parse

from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

__all__ = ["MAX_HTML_CHARS", "MAX_HTML_TAGS", "MAX_LINK_CHARS", "html_to_text", "tame_markup"]

# A long newsletter or report (its text, after comments, scripts and styles are gone).
MAX_HTML_CHARS = 1024 * 1024
# Conversion costs per tag (start or end) and per character reference ("&nbsp;", and
# each "<" or "&" escaped here): this bounds a mail's conversion to well under a second.
MAX_HTML_TAGS = 50_000
MAX_LINK_CHARS = 80
# Comments, scripts and inline CSS often make up most of a newsletter.
_MAX_RAW_HTML_CHARS = 4 * MAX_HTML_CHARS

# Alternatives are tried at each position.  An unterminated comment or script
# runs to the end of the input (\Z), as in browsers, so it is scanned once; a
# tag cannot contain "<", so a failed tag attempt stops at the next "<".
_MARKUP = re.compile(
    r"""
      (?P<drop> <!--.*?(?:-->|\Z)
              | <(?P<raw>script|style)\b[^<>]*>.*?(?:</(?P=raw)\s*>|\Z)
              | <[!?][^<>]*> )
    | (?P<tag> </?[A-Za-z][^<>]*> )
    | (?P<lt> < )
    | (?P<amp> &(?!\#[0-9]{1,7};?|\#[xX][0-9a-fA-F]{1,6};?|[A-Za-z][A-Za-z0-9]{1,31};?) )
    | (?P<ref> & )
    """,
    re.DOTALL | re.IGNORECASE | re.VERBOSE,
)
_BLANK_LINES = re.compile(r"\n{3,}")


# Each nested list level is indented anew on every item: quadratic (html2text:
# 4,000 nested <ul><li> took 2.7 s).  Deeper levels are flattened.
_NESTING = re.compile(r"</?(ol|ul|dl|blockquote)\b", re.IGNORECASE)
_MAX_NESTING = 12


def _tame(html: str, max_chars: int = MAX_HTML_CHARS, max_tags: int = MAX_HTML_TAGS) -> tuple[str, bool]:
    """Rewrite ``html`` so that html.parser and html2text stay linear on it, stopping
    before ``max_chars`` characters of output or tag (or character reference) number
    ``max_tags + 1``, whichever comes first.  Returns the markup and whether it was cut;
    a cut never splits a tag."""
    depth = 0
    tags = 0
    size = 0
    out: list[str] = []
    pos = 0
    for match in _MARKUP.finditer(html):
        text = html[pos : match.start()]
        if match.group("drop") is not None:
            piece = " "
        else:
            tags += 1  # a tag or a character reference: what html.parser and html2text pay for
            piece, depth = _rewrite(match, depth)
        if tags > max_tags or size + len(text) + len(piece) > max_chars:
            out.append(text[: max(0, max_chars - size)])
            return "".join(out), True
        out.append(text)
        out.append(piece)
        size += len(text) + len(piece)
        pos = match.end()
    rest = html[pos:]
    out.append(rest[: max(0, max_chars - size)])
    return "".join(out), size + len(rest) > max_chars


def _rewrite(match: re.Match[str], depth: int) -> tuple[str, int]:
    """What one tag or stray character becomes, and the list nesting depth after it."""
    tag = match.group("tag")
    if tag is None:
        if match.group("ref") is not None:
            return "&", depth
        return ("&lt;" if match.group("lt") is not None else "&amp;"), depth
    if _NESTING.match(tag):
        if tag[1] == "/":
            if not depth:
                return " ", depth
            depth -= 1
        elif depth >= _MAX_NESTING:
            return " ", depth
        elif not tag.endswith("/>"):
            depth += 1
    # An unbalanced quote makes html.parser search on past the ">".
    for quote in "\"'":
        if tag.count(quote) % 2:
            tag = tag.replace(quote, "")
    return tag, depth


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Elements that hold no content, or that an HTML tree builder closes by itself
# when the next one opens: they do not deepen the tree.
_FLAT = _names(
    "area base br col embed hr img input keygen link meta param source track wbr frame "
    "p li dt dd option optgroup tr td th tbody thead tfoot colgroup caption rb rt rp rtc"
)
_TAG_NAME = re.compile(r"</?([A-Za-z][A-Za-z0-9-]*)")


def tame_markup(html: str, max_depth: int) -> str:
    """Rewrite ``html`` like ``_tame``, capping element nesting at ``max_depth``.

    For ``parsing.sanitize``: html5ever, under nh3, scans its stack of open
    elements for many start tags, so deep nesting is quadratic (100,000 nested
    ``<div>`` took 34 s).  After the same linear pass as ``_tame`` every ``<``
    starts a complete, quote-balanced tag, so counting tags here sees what the
    tree builder will see; start tags past ``max_depth`` open elements are
    dropped.  Counting errs high (a self-closed ``<div/>`` counts as open, as
    html5ever opens it), never low.
    """
    open_counts: dict[str, int] = {}
    depth = 0

    def rewrite(match: re.Match[str]) -> str:
        nonlocal depth
        if match.group("drop") is not None:
            return " "
        tag = match.group("tag")
        if tag is None:
            if match.group("ref") is not None:
                return "&"
            return "&lt;" if match.group("lt") is not None else "&amp;"
        found = _TAG_NAME.match(tag)
        name = found.group(1).lower() if found else ""
        if name not in _FLAT:
            if tag[1] == "/":
                if open_counts.get(name):
                    open_counts[name] -= 1
                    depth -= 1
            elif depth >= max_depth:
                return " "
            else:
                depth += 1
                open_counts[name] = open_counts.get(name, 0) + 1
        for quote in "\"'":
            if tag.count(quote) % 2:
                tag = tag.replace(quote, "")
        return tag

    return _MARKUP.sub(rewrite, html)


# Links keep their target ("[label](url)"); an <img> becomes "[alt text]", never a cid: URL.
# The "strict" profile: inscriptis' default ("relaxed") pads every <div> with spaces.
_MAX_DEPTH = 64
_CONFIG = ParserConfig(css=CSS_PROFILES["strict"], display_links=True, display_images=True)
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)


def html_to_text(html: str) -> tuple[str, list[str]]:
    """Convert ``html`` to text; return the text and any problems found."""
    problems: list[str] = []
    tamed, cut = _tame(html[:_MAX_RAW_HTML_CHARS])
    # Element nesting capped too: lxml (under inscriptis) drops everything below ~256
    # levels, so text deeper than that would vanish from the ticket.
    tamed = tame_markup(tamed, _MAX_DEPTH)
    if cut or len(html) > _MAX_RAW_HTML_CHARS or len(tamed) > MAX_HTML_CHARS:
        problems.append(
            f"HTML body too large ({len(html)} characters); only its start (at most {MAX_HTML_CHARS} characters, "
            f"{MAX_HTML_TAGS} tags and character references) was converted to text"
        )
        tamed = tamed[:MAX_HTML_CHARS]
        if tamed.rfind("<") > tamed.rfind(">"):
            tamed = tamed[: tamed.rfind("<")]  # do not leave a tag cut in half
    try:
        text = get_text(tamed, _CONFIG)
    except Exception as exc:  # a parser bug must not lose the mail
        problems.append(f"HTML to text conversion failed ({type(exc).__name__}); tags stripped instead")
        text = re.sub(r"<[^<>]*>", " ", tamed)
    # Table cells are padded to their column's width; the padding at a line's end is noise.
    text = _BLANK_LINES.sub("\n\n", _LONG_LINK.sub(_shorten_link, _TRAILING_SPACE.sub("", text))).strip()
    return (text + "\n" if text else ""), problems


# An inline link as inscriptis writes it: "[label](target)" (html2text's form too).
_LONG_LINK = re.compile(rf"""\]\((https?://[^\s()<>"]{{{MAX_LINK_CHARS - 10},}})((?:\s+"[^"\n]*")?)\)""", re.I)


def _shorten_link(match: re.Match[str]) -> str:
    url = match.group(1)
    if len(url) <= MAX_LINK_CHARS:
        return match.group(0)
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return match.group(0)
    if not parts.hostname:
        return match.group(0)
    return f"]({parts.scheme.lower()}://{parts.hostname}/\u2026{match.group(2)})"
