"""HTML body to readable text, for the parse stage (bytes -> ParsedMail, pure).

Used by ``parsing.mime`` only when a mail has no text/plain body: the ticket
needs a text version of what the customer wrote.  html2text keeps link targets
(``[label](https://...)``) and drops ``<script>``, ``<style>`` and ``<head>``
content.  It is a pure-Python HTML parser at roughly 0.5-2 s per MB of markup,
so the input is capped: a hostile 50 MB HTML part must not stall a worker.
"""

from __future__ import annotations

import re

import html2text

__all__ = ["MAX_HTML_CHARS", "html_to_text"]

MAX_HTML_CHARS = 512 * 1024

# Last resort when html2text itself fails: drop scripts, styles and tags.
# An unclosed <script> runs to the end of the input (\Z), so every match
# consumes what it scanned and the substitution stays linear.
_SCRIPT_STYLE = re.compile(r"<(script|style)\b.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^<>]*>")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(html: str) -> tuple[str, list[str]]:
    """Convert ``html`` to text; return the text and any problems found."""
    problems: list[str] = []
    if len(html) > MAX_HTML_CHARS:
        problems.append(f"HTML body of {len(html)} characters; only the first {MAX_HTML_CHARS} converted to text")
        html = html[:MAX_HTML_CHARS]
    converter = html2text.HTML2Text()
    converter.body_width = 0  # no hard wrapping: agents' screens wrap
    converter.unicode_snob = True  # keep "é", not "e"
    converter.images_to_alt = True  # an <img> becomes its alt text, not a cid: URL
    try:
        text = converter.handle(html)
    except Exception as exc:  # html2text/HTMLParser bugs must not lose the mail
        problems.append(f"HTML to text conversion failed ({type(exc).__name__}); tags stripped instead")
        text = _TAG.sub(" ", _SCRIPT_STYLE.sub(" ", html))
    text = _BLANK_LINES.sub("\n\n", text).strip()
    return (text + "\n" if text else ""), problems
