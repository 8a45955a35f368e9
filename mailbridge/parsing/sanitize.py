"""Allow-list HTML sanitising of mail bodies, for the parse stage's output (pure, no DB).

    parse_message -> ParsedMail.html (raw) -> [sanitize_html] on first use of
                     ParsedMail.safe_html -> what the agent UI may show

nh3 (Python bindings to the Rust ammonia crate, on the html5ever parser) keeps
only the tags and attributes listed here: text formatting, lists, tables,
links and images.  Gone are script, style, iframe, object, embed, form
controls, event handlers, classes and ids (they would reach the host page's
CSS and scripts), every URL scheme but http/https/mailto on links, and
relative URLs.  Images stay only as ``cid:`` references to the mail's own
parts; any other ``src`` is removed, so showing a mail never loads remote
content (tracking pixels).  ``style`` attributes keep only properties that
cannot take a ``url()``.

ParsedMail computes this lazily, so parse_message does not pay for it: on the
standard corpus it takes ~24 us per HTML body, ~12% of parsing a
multipart/alternative mail.  Input is bounded first: at most
``MAX_SAFE_HTML_CHARS`` characters, and at most ``_MAX_NESTING`` open elements
(html5ever is quadratic in nesting depth, see ``htmltext.tame_markup``), so a
hostile 1 MiB body costs at most ~1 s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set

import nh3

from mailbridge.parsing.htmltext import tame_markup

__all__ = [
    "DROPPED_WITH_CONTENT",
    "MAIL_TAGS",
    "MAX_SAFE_HTML_CHARS",
    "SHARED_ATTRIBUTES",
    "mail_cleaner",
    "sanitize_html",
]

# nh3 cleans ~80 MB/s of mail HTML; 1 MiB is ~12 ms and far above real bodies.
MAX_SAFE_HTML_CHARS = 1024 * 1024
_MAX_NESTING = 256


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# The tags mail HTML keeps; web/display.py's second pass keeps the same tags (with fewer
# attributes): both build their cleaner with ``mail_cleaner``.
MAIL_TAGS = _names(
    "a abbr address b bdi bdo big blockquote br caption center cite code col colgroup dd del dfn div dl dt em "
    "font h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q s samp small span strike strong sub sup table "
    "tbody td tfoot th thead tr tt u ul var wbr"
)
# Dropped with their content (everything else not allowed keeps its text).
DROPPED_WITH_CONTENT = _names(
    "script style title head noscript template iframe frame frameset object embed applet svg math "
    "textarea select button audio video canvas xml noembed noframes"
)
# The attributes both passes keep, this one and web/display.py's stricter second pass;
# each adds its own (``mail_cleaner``'s ``extra_attributes``).
SHARED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "*": frozenset({"title", "dir", "lang"}),
    "a": frozenset({"href"}),
    "img": frozenset({"alt", "width", "height"}),
    "td": frozenset({"colspan", "rowspan"}),
    "th": frozenset({"colspan", "rowspan"}),
    "ol": frozenset({"start", "type", "reversed"}),
    "li": frozenset({"value"}),
}
_ALIGN = {"align", "valign"}
# What mail HTML keeps besides: inline style (see _STYLE_PROPERTIES), cid: images, and
# the presentational attributes of the HTML mail clients write.
_MAIL_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"style"},
    "img": {"src"},
    "font": {"color", "face", "size"},
    "table": {"width", "border", "cellpadding", "cellspacing", "bgcolor"} | _ALIGN,
    "td": {"width", "height", "bgcolor", "nowrap"} | _ALIGN,
    "th": {"width", "height", "bgcolor", "nowrap"} | _ALIGN,
    "tr": {"bgcolor"} | _ALIGN,
    "col": {"span", "width"} | _ALIGN,
    "colgroup": {"span", "width"} | _ALIGN,
    "ul": {"type"},
    "p": set(_ALIGN),
    "div": set(_ALIGN),
    "h1": set(_ALIGN),
    "h2": set(_ALIGN),
    "h3": set(_ALIGN),
    "hr": {"width", "size", "noshade"} | _ALIGN,
}
# CSS properties without a url() form (no background(-image), list-style, content, cursor...).
_STYLE_PROPERTIES = _names(
    "color background-color font-family font-size font-style font-weight font-variant line-height letter-spacing "
    "text-align text-decoration text-indent text-transform vertical-align white-space word-break word-wrap "
    "direction width max-width min-width height margin margin-top margin-right margin-bottom margin-left "
    "padding padding-top padding-right padding-bottom padding-left border border-top border-right "
    "border-bottom border-left border-color border-style border-width border-collapse border-spacing "
    "border-radius list-style-type"
)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    # url_schemes is one list for every attribute; images get a stricter one.
    if tag == "img" and attribute == "src":
        return value if value[:4].lower() == "cid:" else None
    return value


def mail_cleaner(
    *,
    extra_attributes: Mapping[str, Set[str]],
    attribute_filter: Callable[[str, str, str], str | None],
    url_schemes: Set[str],
    style_properties: Set[str] | None = None,
) -> nh3.Cleaner:
    """An nh3 cleaner for mail HTML: MAIL_TAGS kept, DROPPED_WITH_CONTENT dropped with their
    content, SHARED_ATTRIBUTES plus ``extra_attributes`` kept, no relative URLs, links
    marked noopener noreferrer nofollow, comments dropped.  ``style_properties``: the CSS
    properties a style attribute keeps (None for a cleaner that keeps no style attribute)."""
    attributes = {tag: set(names) for tag, names in SHARED_ATTRIBUTES.items()}
    for tag, names in extra_attributes.items():
        attributes.setdefault(tag, set()).update(names)
    return nh3.Cleaner(
        tags=set(MAIL_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes=attributes,
        attribute_filter=attribute_filter,
        url_schemes=set(url_schemes),
        url_relative="deny",
        link_rel="noopener noreferrer nofollow",
        filter_style_properties=set(style_properties) if style_properties is not None else None,
        strip_comments=True,
    )


_CLEANER = mail_cleaner(
    extra_attributes=_MAIL_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    url_schemes={"http", "https", "mailto", "cid"},
    style_properties=_STYLE_PROPERTIES,
)


def sanitize_html(html: str) -> str:
    """Return ``html`` reduced to the allow-list above (cut to MAX_SAFE_HTML_CHARS)."""
    if len(html) > MAX_SAFE_HTML_CHARS:
        html = html[:MAX_SAFE_HTML_CHARS]
        cut = html.rfind("<")
        if cut > html.rfind(">"):
            html = html[:cut]  # do not leave a tag cut in half
    # A tree cannot be deeper than it has tags: most mail skips the extra pass.
    if html.count("<") > _MAX_NESTING:
        html = tame_markup(html, _MAX_NESTING)
    return str(_CLEANER.clean(html))
