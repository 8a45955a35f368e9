"""Safe attachment file names for the parse stage (bytes -> ParsedMail, pure).

``parsing.mimetree`` decodes the name a sender gave an attachment (RFC 2231 /
RFC 2047) and keeps it as ``original_filename``; this module turns it into the
``filename`` that later stages may use on disk, in URLs and in the agent UI.
The sender controls every character, so the result has no directory part, no
control or direction-override characters, no Windows-reserved device name, no
leading dot, and a bounded length (characters and UTF-8 bytes).  It is never
empty.  Names of files unpacked from a winmail.dat (``parsing.tnef``) go
through the same function; ``content_type_for`` gives those files a content
type from their name when the TNEF carried none.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata

__all__ = ["MAX_FILENAME_BYTES", "MAX_FILENAME_CHARS", "content_type_for", "fallback_filename", "sanitize_filename"]

MAX_FILENAME_CHARS = 150
# Most file systems allow 255 bytes per name; 150 CJK characters are 450.
MAX_FILENAME_BYTES = 240
# An "extension" longer than this is just part of a long name.
_MAX_EXTENSION_CHARS = 16

# Dropped outright: C0/C1 controls, and the invisible characters used to make
# "invoice\u202efdp.exe" display as "invoiceexe.pdf" (zero-width and bidi
# controls, BOM).
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
# Replaced: characters Windows refuses in names (separators were handled first),
# and slash look-alikes: full-width ones become "/" and "\\" again in Windows'
# "best fit" conversion to an ANSI code page, the others look like a path in a
# UI.  (Full-width ":" "?" and the like are ordinary punctuation in CJK names.)
_FORBIDDEN = re.compile('[<>:"|?*\uff0f\uff3c\u2215\u2044\u29f8\u29f9]')
_SPACES = re.compile(r"\s+")

# Device names Windows resolves in any directory and with any extension
# ("nul.txt" is the NUL device too).
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$", "clock$"}
    | {f"com{i}" for i in "0123456789¹²³"}
    | {f"lpt{i}" for i in "0123456789¹²³"}
)

# mimetypes answers vary with the host's /etc/mime.types; pin the common ones.
_EXTENSIONS = {
    "application/octet-stream": ".bin",
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/ms-tnef": ".dat",
    "application/pgp-signature": ".asc",
    "application/pkcs7-signature": ".p7s",
    "application/x-pkcs7-signature": ".p7s",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "message/rfc822": ".eml",
    "message/delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "message/feedback-report": ".txt",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "text/csv": ".csv",
    "text/rfc822-headers": ".txt",
}


# Extension -> type: reports (message/*) and headers-only parts share ".txt"
# with text/plain, which is what a file called *.txt is.
_TYPES_BY_EXTENSION = {
    extension: ctype
    for ctype, extension in _EXTENSIONS.items()
    if not ctype.startswith("message/") and ctype != "text/rfc822-headers"
}
_TYPES_BY_EXTENSION |= {".eml": "message/rfc822", ".jpeg": "image/jpeg", ".htm": "text/html"}
_TYPES_BY_EXTENSION[".dat"] = "application/octet-stream"  # not every .dat is TNEF


def content_type_for(name: str | None) -> str:
    """A lowercased content type for a file called ``name`` (octet-stream if unknown)."""
    if not name or "." not in name:
        return "application/octet-stream"
    extension = "." + name.rsplit(".", 1)[1].strip().lower()
    found = _TYPES_BY_EXTENSION.get(extension)
    if found is None:
        found = mimetypes.guess_type("x" + extension, strict=False)[0] or "application/octet-stream"
    return found.lower()


def fallback_filename(index: int, content_type: str) -> str:
    """Name for attachment number ``index`` (1-based) that came without one."""
    extension = _EXTENSIONS.get(content_type)
    if extension is None:
        extension = mimetypes.guess_extension(content_type, strict=False) or ".bin"
    return f"attachment-{index}{extension}"


def sanitize_filename(original: str | None, index: int, content_type: str) -> str:
    """Return a safe, non-empty file name for an attachment.

    ``original`` is the decoded name from the mail (or None); ``index`` and
    ``content_type`` build the fallback when nothing usable is left.
    """
    if not original:
        return fallback_filename(index, content_type)
    name = unicodedata.normalize("NFC", original)
    name = _INVISIBLE.sub("", name)
    # Keep only the last path component, whatever the separator: a sender's
    # "../../etc/passwd" or "..\\..\\boot.ini" must not leave the directory.
    components = [c for c in name.replace("\\", "/").split("/") if c.strip() not in ("", ".", "..")]
    name = components[-1] if components else ""
    name = _FORBIDDEN.sub("_", name)
    name = _SPACES.sub(" ", name)
    # Leading dots hide files (and ".." was handled above); Windows silently
    # drops trailing dots and spaces, which would change the name on disk.
    name = name.strip(" .")
    if not name:
        return fallback_filename(index, content_type)
    if name.split(".", 1)[0].strip().lower() in _RESERVED:
        name = "_" + name
    if len(name) > MAX_FILENAME_CHARS or len(name.encode("utf-8", "surrogatepass")) > MAX_FILENAME_BYTES:
        name = _shorten(name)
    return name or fallback_filename(index, content_type)


def _fit(text: str, chars: int) -> str:
    """``text`` cut to ``chars`` characters and, within them, to what fits MAX_FILENAME_BYTES."""
    text = text[:chars]
    while len(text.encode("utf-8", "surrogatepass")) > MAX_FILENAME_BYTES * chars // MAX_FILENAME_CHARS:
        text = text[: len(text) - max(1, len(text) // 8)]
    return text


def _shorten(name: str) -> str:
    """Cut ``name`` to MAX_FILENAME_CHARS / MAX_FILENAME_BYTES, keeping a plausible extension."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) + 1 > _MAX_EXTENSION_CHARS:
        return _fit(name, MAX_FILENAME_CHARS).rstrip(" .")
    room = MAX_FILENAME_CHARS - len(extension) - 1
    stem = _fit(stem, room).rstrip(" .")
    return f"{stem}.{extension}" if stem else _fit(name, MAX_FILENAME_CHARS).rstrip(" .")
