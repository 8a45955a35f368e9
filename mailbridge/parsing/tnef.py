"""winmail.dat (TNEF) unpacking for the parse stage (bytes -> ParsedMail; pure, no DB).

    parse_message -> mimetree.TreeWalk meets application/ms-tnef or a file named winmail.dat
                  -> [unpack_tnef] -> the files inside replace winmail.dat;
                     the TNEF's own body becomes the text when the mail has no other

Outlook wraps attachments (and sometimes the only copy of the body, as plain
text, HTML or compressed RTF) in a Transport Neutral Encapsulation Format
blob.  tnefparse decodes it; this module puts bounds around it first, because
tnefparse trusts the counts in the blob:

* its MAPI reader loops ``range(count)`` over property and value counts taken
  from the data, and keeps looping past the end of the data (a count of 2**32
  is a hang, plus an object per iteration);
* it reads each attribute from ``data[offset:]``, a copy of the whole rest of
  the stream per attribute: quadratic in the attribute count;
* an attached Outlook item is parsed as a nested TNEF stream, recursively.

``_check_stream`` walks the same structure linearly before tnefparse sees it
and refuses counts the bytes cannot hold, too many attributes or values, and
nesting beyond the caller's remaining depth.  Everything tnefparse then does
is linear in the input.  Failures raise ``TnefError``; the caller keeps the
winmail.dat as it is, with a defect.

tnefparse is pinned below 1.5: this module mirrors its 1.4 traversal (see
``_check_mapi``) and reads its compressed-RTF attribute (``_rtfbody``).
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from tnefparse import properties as mapi
from tnefparse.mapi import IMESSAGE_SIG
from tnefparse.tnef import TNEF

__all__ = [
    "MAX_RTF_COMPRESSED_BYTES",
    "TnefContent",
    "TnefError",
    "TnefFile",
    "is_tnef",
    "rtf_to_text",
    "unpack_tnef",
]

# Silenced: tnefparse logs what it meets through format strings that do not always fit
# (a 2.8 MB winmail.dat made 9.6 MB of log); what matters is reported as defects here.
logging.getLogger("tnefparse").setLevel(logging.CRITICAL + 10)

_SIGNATURE = b"\x78\x9f\x3e\x22"  # 0x223E9F78, little-endian (MS-OXTNEF 2.1.3.1)
# Real TNEF has ~10 attributes plus ~7 per attachment and a few hundred MAPI
# values; these bounds are far above that and keep hostile counts cheap.
_MAX_ATTRIBUTES = 20_000
_MAX_MAPI_VALUES = 100_000
# Bytes tnefparse copies while slicing nested (embedded-message) streams.
_MAX_NESTED_COPY_BYTES = 256 * 1024 * 1024
# compressed_rtf decompresses in pure Python at ~1 microsecond per input byte.
MAX_RTF_COMPRESSED_BYTES = 128 * 1024

_LEVEL_ATTACHMENT = 0x02
_ATT_MAPI_PROPS = 0x9003
_ATT_RECIP_TABLE = 0x9004
_ATT_ATTACHMENT = 0x9005

_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from


def _UINT16(data: bytes, offset: int) -> int:
    return int(_U16(data, offset)[0])


def _UINT32(data: bytes, offset: int) -> int:
    return int(_U32(data, offset)[0])


class TnefError(Exception):
    """The blob is not TNEF we can unpack within bounds; ``str()`` says why."""


@dataclass(frozen=True)
class TnefFile:
    """One attachment found inside the TNEF blob."""

    name: str | None  # long file name if given, else the 8.3 name; None if neither
    content_type: str | None  # the MAPI MIME tag, if the sender's Outlook set one
    content_id: str | None  # what the TNEF's HTML body refers to as cid:, if anything
    data: bytes
    embedded_message: bool  # an attached Outlook item: ``data`` is itself a TNEF stream


@dataclass
class TnefContent:
    files: list[TnefFile]
    body_text: str | bytes | None  # bytes when no code page was declared
    body_html: str | bytes | None
    body_rtf: bytes | None  # compressed RTF (MS-OXRTFCP), decompressed only on demand
    charset: str | None  # the message's code page as a Python codec name


def is_tnef(data: bytes) -> bool:
    return data[:4] == _SIGNATURE


def unpack_tnef(data: bytes, max_depth: int) -> TnefContent:
    """Decode a TNEF blob; ``max_depth`` bounds nested Outlook items.  Raises TnefError."""
    if not is_tnef(data):
        raise TnefError("no TNEF signature")
    try:
        _check_stream(data, max_depth, _Budget())
        tnef = TNEF(_Stream(data), do_checksum=False)
        charset = tnef.codepage if isinstance(tnef.codepage, str) else None
        files = [_file(att, charset) for att in tnef.attachments]
        rtf = getattr(tnef, "_rtfbody", None)  # tnefparse 1.4 keeps it compressed here
        body_text, body_html = tnef.body or None, tnef.htmlbody or None
    except TnefError:
        raise
    except RecursionError as exc:
        raise TnefError("nested too deeply") from exc
    except Exception as exc:  # tnefparse raises whatever its struct reads and decodes raise
        raise TnefError(f"{type(exc).__name__}: {exc}"[:160]) from exc
    return TnefContent(
        files=files,
        body_text=body_text if isinstance(body_text, str | bytes) else None,
        body_html=body_html if isinstance(body_html, str | bytes) else None,
        body_rtf=rtf if isinstance(rtf, bytes) and rtf else None,
        charset=charset,
    )


def _file(att: object, charset: str | None) -> TnefFile:
    attrs = {a.name: a for a in getattr(att, "mapi_attrs", [])}

    def prop(code: int) -> str | None:
        return _text(attrs[code].data, charset) if code in attrs else None

    # The 8.3 title is bytes in the OEM code page (tnefparse's .name assumes UTF-8).
    name = prop(mapi.MAPI_ATTACH_LONG_FILENAME) or _text(getattr(att, "_name", None), charset)
    mime_tag = prop(mapi.MAPI_ATTACH_MIME_TAG)
    cid = prop(mapi.MAPI_ATTACH_CONTENT_ID)
    data = getattr(att, "data", b"")
    return TnefFile(
        name=name or None,
        content_type=mime_tag.strip().lower() if mime_tag else None,
        content_id=(cid.strip("<>") or None) if cid else None,
        data=data if isinstance(data, bytes) else b"",
        embedded_message=hasattr(att, "embed"),
    )


def _text(value: object, charset: str | None) -> str | None:
    if isinstance(value, bytes):
        try:
            text = value.decode(charset or "cp1252", "replace")
        except LookupError:
            text = value.decode("cp1252", "replace")
    elif isinstance(value, str):
        text = value
    else:
        return None
    return text.replace("\x00", "").strip()


class _Stream(bytes):
    """TNEF bytes whose open slice ``data[offset:]`` stops at that attribute's end.

    tnefparse reads every attribute as ``TNEFObject(data[offset:])``, which
    only looks at the attribute's own ``length + 11`` bytes; returning just
    those makes the top-level loop linear instead of quadratic (a 20 MB
    winmail.dat with 50 attachments would copy ~7 GB).  Any other indexing
    behaves as for bytes.
    """

    def __getitem__(self, key):  # type: ignore[no-untyped-def,override]
        if isinstance(key, slice) and key.stop is None and key.step is None and key.start:
            start = key.start
            header = bytes.__getitem__(self, slice(start + 5, start + 9))
            if len(header) == 4:
                return bytes.__getitem__(self, slice(start, start + 11 + int.from_bytes(header, "little")))
        return bytes.__getitem__(self, key)


class _Budget:
    def __init__(self) -> None:
        self.attributes = 0
        self.values = 0
        self.nested_copy = 0


def _check_stream(data: bytes, depth_left: int, budget: _Budget, nested: bool = False) -> None:
    """Walk the attribute framing exactly as tnefparse 1.4's ``TNEF.__init__`` does."""
    if depth_left < 0:
        raise TnefError("attached Outlook items nested too deeply")
    if len(data) < 6 or not is_tnef(data):
        return  # tnefparse raises on it: an error, not a hang
    size = len(data)
    offset = 6
    while offset + 12 < size:  # tnefparse's loop condition (MIN_OBJ_SIZE)
        budget.attributes += 1
        if budget.attributes > _MAX_ATTRIBUTES:
            raise TnefError(f"more than {_MAX_ATTRIBUTES} TNEF attributes")
        if nested:  # our _Stream only wraps the top level
            budget.nested_copy += size - offset
            if budget.nested_copy > _MAX_NESTED_COPY_BYTES:
                raise TnefError("attached Outlook items too large to unpack")
        level = data[offset]
        name = _UINT16(data, offset + 1)
        length = min(size - offset, _UINT32(data, offset + 5) + 11)
        body = data[offset + 9 : offset + length - 2]
        if level == _LEVEL_ATTACHMENT:
            if name == _ATT_ATTACHMENT:
                _check_mapi(body, 0, depth_left, budget, attachment=True)
        elif name == _ATT_MAPI_PROPS:
            _check_mapi(body, 0, depth_left, budget, attachment=False)
        elif name == _ATT_RECIP_TABLE and len(body) >= 4:
            rows, at = _UINT32(body, 0), 4
            for _ in range(rows):  # each row consumes >= 4 bytes or tnefparse stops
                if at + 4 > len(body):
                    break
                at = _check_mapi(body, at, depth_left, budget, attachment=False)
        offset += length


_FIXED_SIZE = {0x0002: 2, 0x000B: 2, 0x0003: 4, 0x0004: 4, 0x000A: 4, 0x0005: 8, 0x0006: 8, 0x0007: 8}
_FIXED_SIZE |= {0x0014: 8, 0x0040: 8, 0x0048: 16}
_VARIABLE = frozenset({0x001E, 0x001F, 0x000D, 0x0102, 0x0000})


def _check_mapi(data: bytes, offset: int, depth_left: int, budget: _Budget, *, attachment: bool) -> int:
    """Mirror tnefparse 1.4's ``decode_mapi``; return where it would stop.

    Refuses a property count or multi-value count larger than the remaining
    bytes could hold: tnefparse would loop that many times regardless.
    """
    size = len(data)
    if offset + 4 > size:
        return size
    count = _UINT32(data, offset)
    offset += 4
    if count > (size - offset) // 4 + 1:
        raise TnefError(f"MAPI property count {count} larger than its {size - offset} bytes")
    try:
        for index in range(count):
            if offset >= size:
                if count - index > 16:  # tnefparse would log a warning for each one left
                    raise TnefError(f"{count - index} MAPI properties past the end of their data")
                break
            attr_type, attr_name = _UINT16(data, offset), _UINT16(data, offset + 2)
            offset += 4
            if attr_name >= 0x8000:  # named property: GUID, then an id or a name
                kind = _UINT32(data, offset + 16)
                offset += 20
                if kind == 0:
                    offset += 4
                else:
                    name_len = _UINT32(data, offset)
                    offset += 4 + name_len + (-name_len % 4)
            multi = 0
            if attr_type & 0x1000:
                attr_type ^= 0x1000
                multi = _UINT32(data, offset)
                offset += 4
                if multi > (size - offset) // 2 + 1:
                    raise TnefError(f"MAPI value count {multi} larger than its {size - offset} bytes")
            values = multi or 1  # tnefparse reads a zero count as one value
            budget.values += values
            if budget.values > _MAX_MAPI_VALUES:
                raise TnefError(f"more than {_MAX_MAPI_VALUES} MAPI values")
            if attr_type in _FIXED_SIZE:
                offset += _FIXED_SIZE[attr_type] * values
                if values % 2 and attr_type in (0x0002, 0x000B):
                    offset += 2
                continue
            if attr_type not in _VARIABLE:
                return size  # tnefparse stops at an unknown type
            embedded = attachment and attr_name == mapi.MAPI_ATTACH_DATA_OBJ and attr_type in (0x000D, 0x0102, 0x0000)
            for _ in range(values):
                # One MAPI value: a count of items unless multi-valued, then length-prefixed items.
                items = 1 if multi else _UINT32(data, offset)
                if not multi:
                    offset += 4
                parts: list[bytes] = []
                for _ in range(items):  # each item consumes >= 4 bytes, or the read fails
                    length = _UINT32(data, offset)
                    offset += 4
                    length += -length % 4
                    if embedded:
                        parts.append(data[offset : offset + length])
                    offset += length
                joined = b"".join(p.rstrip(b"\x00") for p in parts)
                if joined.startswith(IMESSAGE_SIG):  # tnefparse parses it as a nested TNEF
                    _check_stream(joined[len(IMESSAGE_SIG) :], depth_left - 1, budget, nested=True)
    except struct.error:
        return size  # tnefparse's read fails here too and it stops
    return offset


# --- compressed RTF body -> text ---------------------------------------------------------

# One RTF token: control word (+ numeric parameter, + one delimiting space),
# hex-escaped byte, control symbol, group brace, line break, or a text run.
_RTF_TOKEN = re.compile(
    rb"\\([a-zA-Z]{1,32})(-?[0-9]{1,10})? ?|\\'([0-9a-fA-F]{2})|\\([^a-zA-Z'])|([{}])|[\r\n]+|([^\\{}\r\n]+)|\\'?"
)
# Destinations whose text is not part of what the reader sees.
_RTF_HIDDEN = frozenset(
    b"fonttbl colortbl stylesheet info pict object header footer headerl headerr headerf footerl footerr "
    b"footerf fldinst listtable listoverridetable rsidtbl generator xmlnstbl themedata colorschememapping "
    b"latentstyles datastore mmathPr pgdsctbl filetbl revtbl bkmkstart bkmkend".split()
)
_RTF_CHARS = {
    b"par": "\n", b"line": "\n", b"sect": "\n\n", b"page": "\n\n", b"tab": "\t", b"cell": "\t", b"row": "\n",
    b"emdash": "\u2014", b"endash": "\u2013", b"bullet": "\u2022", b"lquote": "\u2018", b"rquote": "\u2019",
    b"ldblquote": "\u201c", b"rdblquote": "\u201d", b"emspace": " ", b"enspace": " ",
}  # fmt: skip
_RTF_SYMBOLS = {b"~": "\u00a0", b"_": "-", b"-": "", b"\\": "\\", b"{": "{", b"}": "}"}
_MAX_RTF_TEXT_CHARS = 512 * 1024


def rtf_to_text(compressed: bytes) -> tuple[str, list[str]]:
    """Decompress an RTF body (MS-OXRTFCP) and return its visible text, plus notes.

    A minimal converter on purpose: mail bodies need paragraphs and
    characters, not layout.  Encapsulated HTML (``\\fromhtml1``) gives its text
    too, since its tags sit in ignorable ``\\*\\htmltag`` destinations.
    """
    if len(compressed) > MAX_RTF_COMPRESSED_BYTES:
        return "", [f"TNEF RTF body too large to convert ({len(compressed)} bytes compressed)"]
    try:
        from compressed_rtf import decompress  # only TNEF mail without another body needs it

        rtf = decompress(compressed + b"\x00")  # as tnefparse's own rtfbody does
    except Exception as exc:  # raises plain Exception on a bad CRC or header
        return "", [f"TNEF RTF body could not be decompressed ({type(exc).__name__}: {str(exc)[:60]})"]
    return _rtf_text(rtf), []


def _rtf_text(rtf: bytes) -> str:
    return _RtfText().read(rtf)


class _RtfText:
    """The visible text of an RTF document, read token by token (one method per kind)."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.size = 0
        self.pending = bytearray()  # \'hh bytes, decoded together (double-byte code pages)
        self.codepage = "cp1252"
        self.stack: list[tuple[bool, int]] = []  # (hidden, uc) of the enclosing groups
        self.hidden = False
        self.uc = 1  # characters of fallback that follow each \uN
        self.skip = 0  # fallback characters still to drop
        self.high_surrogate = 0

    def read(self, rtf: bytes) -> str:
        for match in _RTF_TOKEN.finditer(rtf):
            if self.size > _MAX_RTF_TEXT_CHARS:
                break
            word, param, hexbyte, symbol, brace, run = match.groups()
            if brace is not None:
                self.brace(brace)
            elif hexbyte is not None:
                self.hex_byte(hexbyte)
            elif word is not None:
                self.control_word(word, param)
            elif symbol is not None:
                self.control_symbol(symbol)
            elif run is not None:
                self.text_run(run)
        self.flush()
        text = "".join(self.out).replace("\r", "").replace("\x00", "")
        return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+\n", "\n", text)).strip()

    def flush(self) -> None:
        if self.pending:
            text = self.pending.decode(self.codepage, "replace")
            self.pending.clear()
            self.out.append(text)
            self.size += len(text)

    def emit(self, text: str) -> None:
        self.flush()
        self.out.append(text)
        self.size += len(text)

    def brace(self, brace: bytes) -> None:
        self.flush()
        self.skip = 0
        if brace == b"{":
            if len(self.stack) < 1000:  # hostile nesting only flattens
                self.stack.append((self.hidden, self.uc))
        elif self.stack:
            self.hidden, self.uc = self.stack.pop()

    def hex_byte(self, hexbyte: bytes) -> None:
        if self.skip:
            self.skip -= 1
        elif not self.hidden:
            self.pending.append(int(hexbyte, 16))

    def control_word(self, word: bytes, param: bytes | None) -> None:
        if word in _RTF_HIDDEN:
            self.hidden = True
        elif word in _RTF_PARAMETER_WORDS and param:
            _RTF_PARAMETER_WORDS[word](self, int(param))
        elif not self.hidden and word in _RTF_CHARS:
            self.emit(_RTF_CHARS[word])

    def code_page(self, number: int) -> None:
        with contextlib.suppress(LookupError):
            self.codepage = codecs.lookup(f"cp{number}").name

    def fallback_count(self, count: int) -> None:
        self.uc = min(count, 8)

    def unicode_char(self, number: int) -> None:
        value = number % 65536
        self.skip = self.uc
        if self.hidden:
            return
        if 0xD800 <= value < 0xDC00:
            self.high_surrogate = value
        elif 0xDC00 <= value < 0xE000 and self.high_surrogate:
            self.emit(chr(0x10000 + ((self.high_surrogate - 0xD800) << 10) + value - 0xDC00))
            self.high_surrogate = 0
        elif not 0xD800 <= value < 0xE000:
            self.emit(chr(value))

    def control_symbol(self, symbol: bytes) -> None:
        if symbol == b"*":
            self.hidden = True
        elif not self.hidden and symbol in _RTF_SYMBOLS:
            self.emit(_RTF_SYMBOLS[symbol])

    def text_run(self, run: bytes) -> None:
        if self.skip:
            dropped = min(self.skip, len(run))
            run = run[dropped:]
            self.skip -= dropped
        if run and not self.hidden:
            self.emit(run.decode(self.codepage, "replace"))


# Control words with a numeric parameter that change how what follows is read.
_RTF_PARAMETER_WORDS: dict[bytes, Callable[[_RtfText, int], None]] = {
    b"ansicpg": _RtfText.code_page,
    b"uc": _RtfText.fallback_count,
    b"u": _RtfText.unicode_char,
}
