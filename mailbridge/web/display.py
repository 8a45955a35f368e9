"""A stored message's HTML, made safe again at display time (web/app.py's ticket page),
and the Content-Disposition of an attachment the ticket page offers for download.

The worker stored `messages.safe_html` after parsing/sanitize.py's allow-list; this second
pass does not trust that (an older version, a migration or a bug could have let something
through) and is stricter still, for a page that is shown inside our own origin:

- no script, style, iframe, form, event handler, class or id (nh3 drops every tag and
  attribute it is not told to keep);
- no `src` at all: an image never loads anything, not even `cid:` (which a browser cannot
  resolve anyway) or a remote tracker; the <img> stays, empty, so the CSS shows its alt
  text in a dashed box where the picture was;
- no `style` attribute: the page's Content-Security-Policy (style-src 'self') would refuse
  it anyway, and each refusal is an error in the browser's console;
- links only to http, https and mailto, with rel="noopener noreferrer nofollow".
"""

from __future__ import annotations

from urllib.parse import quote

from markupsafe import Markup

from mailbridge.parsing.sanitize import mail_cleaner


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    # Belt and braces: `src` is not in the allow-list at all; refuse it here too should
    # the list ever grow.
    if attribute == "src" or attribute.startswith("on"):
        return None
    return value


# The worker's tags and the attributes both passes keep, nothing more: no style, no src,
# no presentational attributes; no cid: URLs.
_CLEANER = mail_cleaner(
    extra_attributes={}, attribute_filter=_attribute_filter, url_schemes={"http", "https", "mailto"}
)


def display_html(safe_html: str) -> Markup:
    """`safe_html` cleaned once more; the result is the only HTML from mail a page shows."""
    return Markup(_CLEANER.clean(safe_html))  # noqa: S704 (the string is nh3's output)


def content_disposition(filename: str) -> str:
    """``attachment`` with the file's name (RFC 6266): an ASCII fallback with nothing
    that could end the quoted string or the header, and the full name percent-encoded
    in ``filename*`` (RFC 8187). The name is the sender's text: no CR, LF, quote or
    path separator gets through."""
    name = "".join(ch for ch in filename if ch.isprintable() and ch not in "/\\") or "attachment"
    fallback = "".join(ch if ch.isascii() and ch not in '"%;' else "_" for ch in name)[:150]
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name[:150], safe='')}"
