"""Charsets for the parse stage (bytes -> ParsedMail, pure): every octet of a mail read
as its sender meant it.

    intake (raw bytes) -> [parse: mime.parse_message -> charsets.decode] -> classify -> ...

The parse stage (``parsing.headerfields``, ``parsing.mimetree``) hands every run of bytes
it must turn into text here: a body part, a file name, an RFC 2047 encoded-word, a raw
8-bit header value.  ``decode`` reads it by the charset the sender declared for it,
falling back in this order when that label is missing, unknown or wrong:

1. strict UTF-8 (RFC 6532 headers, and most undeclared 8-bit text today);
2. UTF-8 with a replacement character for each invalid sequence, when the bytes are
   mostly valid UTF-8: one bad byte must not turn a whole part into Latin-1 mojibake;
3. the charsets the same mail declares elsewhere (``CharsetHints``: other parts'
   Content-Type, RFC 2047 words in any header, what its other raw header bytes were
   read as): a mail that labels its Subject iso-8859-1 writes its unlabelled body in
   it too, and a Shift_JIS From goes with a Shift_JIS Subject;
4. detection (charset-normalizer), limited to the charsets mail arrives in.

ISO-2022-JP as Windows mailers write it (Microsoft's CP50220-50222) carries NEC and IBM
extension characters (circled digits, roman numerals) that the JIS codecs refuse:
``iso2022jp_windows`` reads it through the cp932 mapping, as Japanese mail clients do,
and with replacement characters rather than raw escape sequences when nothing fits.
"""

from __future__ import annotations

import codecs
import functools
import re
from email.message import Message

import charset_normalizer

__all__ = ["CharsetHints", "codecs_for", "decode", "guess", "iso2022jp_windows", "scalar"]

# Labels mail clients decode with a superset, because senders emit the
# superset's characters under the narrower label (WHATWG Encoding Standard).
_SUPERSETS: dict[str, tuple[str, ...]] = {
    "iso8859-1": ("cp1252", "iso8859-1"),
    "iso8859-9": ("cp1254", "iso8859-9"),
    "tis-620": ("cp874", "tis-620"),
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "shift_jis": ("cp932", "shift_jis"),
    "euc_kr": ("cp949",),  # also what Python maps ks_c_5601-1987 to
    "big5": ("cp950", "big5hkscs"),
    # ISO-2022-JP mail often carries half-width katakana (JIS X 0201) too; Windows
    # mailers add NEC/IBM extensions, read by ``iso2022jp_windows`` (see decode).
    "iso2022_jp": ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2"),
}
_ISO2022_JP = frozenset({"iso2022_jp", "iso2022_jp_ext", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_3"})
# Where raw 8-bit bytes in a mail that declares a 7-bit charset come from: a Japanese
# mailer that labels its body ISO-2022-JP writes raw header bytes in Shift_JIS or EUC-JP.
_EIGHT_BIT_SISTERS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(_ISO2022_JP, ("cp932", "euc_jp")),
    "iso2022_jp_2004": ("cp932", "euc_jp"),
    "iso2022_kr": ("cp949",),
    "hz": ("gb18030",),
}
# Codecs that never explain 8-bit bytes (UTF-8 is tried before any hint anyway).
_NOT_EIGHT_BIT = frozenset(
    {"ascii", "utf-8", "utf-7", "utf-16", "utf-16-be", "utf-16-le", "utf-32", "utf-32-be", "utf-32-le"}
)
_MULTIBYTE = frozenset({"cp932", "shift_jis", "euc_jp", "gb18030", "cp949", "cp950", "big5hkscs", "big5", "euc_kr"})
# Python codecs that are not charsets a sender may pick for us to run.
_REFUSED_CODECS = frozenset({"undefined", "idna", "punycode", "unicode_escape", "raw_unicode_escape", "mbcs"})
_DETECT_SAMPLE = 64 * 1024
_EIGHT_BIT = re.compile(rb"[\x80-\xff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_C1_CONTROLS = re.compile("[\x80-\x9f]")


@functools.lru_cache(maxsize=256)
def codecs_for(label: str) -> tuple[str, ...] | None:
    """Python codecs to try for a charset label; None if unknown or refused."""
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        return None  # "base64", "rot13", "zlib"... are codecs, not charsets
    return _SUPERSETS.get(info.name, (info.name,))


def scalar(text: str) -> str:
    """Replace lone surrogates (UTF-7/UTF-16 can produce them) so UTF-8 sinks never fail."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


# Charsets that mail actually arrives in, most common first.  Detection is
# limited to them (charset-normalizer alone calls short French text cp1006 and
# cp1252 punctuation mac_roman), and the order breaks ties between candidates
# that explain the bytes equally well: short headers often tie.
_MAIL_CHARSETS = (
    "utf_8", "cp1252", "latin_1", "iso8859_15", "cp1250", "iso8859_2", "cp1251", "koi8_r", "koi8_u",
    "cp1253", "iso8859_7", "cp1254", "cp1255", "cp1256", "cp1257", "cp932", "euc_jp", "iso2022_jp",
    "gb18030", "big5", "cp949", "cp874", "utf_16",
)  # fmt: skip
_CHARSET_RANK = {name: rank for rank, name in enumerate(_MAIL_CHARSETS)}


def _rank(name: str) -> int:
    return _CHARSET_RANK.get(name, len(_MAIL_CHARSETS))


def guess(data: bytes) -> tuple[str, str]:
    """Decode bytes whose charset is unknown or wrong: (encoding used, text)."""
    try:
        # Strict UTF-8 validity is a near-certain signal (it is also
        # charset-normalizer's first answer) and costs nothing.
        return "utf-8", data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    first = _EIGHT_BIT.search(data)
    start = max(0, first.start() - 1024) if first else 0
    results = charset_normalizer.from_bytes(data[start : start + _DETECT_SAMPLE], cp_isolation=list(_MAIL_CHARSETS))
    if len(results):
        best = min(results, key=lambda m: (m.chaos, -m.coherence, min(map(_rank, m.could_be_from_charset))))
        # Charsets that decode these bytes identically: report the usual one.
        encoding = min(best.could_be_from_charset or [best.encoding], key=_rank)
        try:
            return encoding, scalar(data.decode(encoding, "replace"))
        except LookupError:
            pass
    return "utf-8 with replacement characters", data.decode("utf-8", "replace")


def _mostly_utf8(data: bytes) -> tuple[str, int] | None:
    """(text, invalid sequences) when ``data`` is UTF-8 with a few invalid bytes, else None.

    Mostly: at least one valid multi-byte character and no more invalid sequences than
    valid ones.  Text in a single-byte charset almost never forms a valid multi-byte
    sequence (an accented letter is followed by ASCII), so it stays with detection.
    """
    text = data.decode("utf-8", "replace")
    invalid = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")  # minus U+FFFD sent as such
    valid = len(text) - len(text.encode("ascii", "ignore")) - invalid
    if invalid > 0 and valid >= 1 and invalid <= valid:
        return scalar(text), invalid
    return None


# --- ISO-2022-JP as Windows writes it ----------------------------------------------

# RFC 1468 designations (plus JIS X 0201 katakana, and SO/SI as CP50222 shifts katakana).
_JIS_SEGMENT = re.compile(rb"(\x1b\([BJIH]|\x1b\$[@B]|\x1b\$\([@BDOPQ]|\x1b\$A|\x1b\.[AF]|\x1bN|\x0e|\x0f)")
_ASCII, _ROMAN, _KATAKANA, _KANJI, _OTHER = range(5)
_MODES = {
    b"\x1b(B": _ASCII,
    b"\x1b(H": _ROMAN,
    b"\x1b(J": _ROMAN,
    b"\x1b(I": _KATAKANA,
    b"\x1b$@": _KANJI,
    b"\x1b$B": _KANJI,
    b"\x1b$(B": _KANJI,
    b"\x1b$(@": _KANJI,
    b"\x1b$(O": _KANJI,  # JIS X 0213 plane 1 shares JIS X 0208's rows
    b"\x1b$(Q": _KANJI,
}
_ROMAN_TABLE = {0x5C: "\u00a5", 0x7E: "\u203e"}


@functools.lru_cache(maxsize=1)
def _jis_table() -> dict[bytes, str]:
    """Every JIS X 0208 code point (rows 1-94, as 2 bytes 0x21-0x7E) that cp932 maps,
    through its Shift_JIS bytes: NEC row 13 and the NEC-selected IBM rows 89-92 included."""
    table: dict[bytes, str] = {}
    for j1 in range(0x21, 0x7F):
        s1 = ((j1 - 0x21) >> 1) + 0x81
        if s1 > 0x9F:
            s1 += 0x40
        for j2 in range(0x21, 0x7F):
            s2 = (j2 + 0x1F + (j2 >= 0x60)) if j1 & 1 else j2 + 0x7E
            try:
                table[bytes((j1, j2))] = bytes((s1, s2)).decode("cp932")
            except UnicodeDecodeError:
                continue
    return table


def iso2022jp_windows(data: bytes, errors: str = "strict") -> str:
    """ISO-2022-JP read through the cp932 mapping (Microsoft's CP50220-50222).

    Windows mailers send NEC special characters (row 13: circled digits, roman
    numerals, "No.") and IBM extensions under ESC $ B; Python's iso2022_jp codecs
    refuse them, and every Japanese mail client shows them.  No maintained library
    offers this codec, so it is written here: each JIS X 0208 pair is looked up in a
    table built from cp932 itself.  ``errors="replace"`` gives U+FFFD for what does
    not fit (never the escape sequences); "strict" raises UnicodeDecodeError.
    """
    if b"\n" in data or b"\r" in data:
        # ISO-2022-JP lines end in ASCII: each line alone, through the C codec when it
        # can (most lines), this decoder only for lines with extension characters.
        out_lines: list[str] = []
        for line in data.splitlines(keepends=True):
            try:
                out_lines.append(line.decode("iso2022_jp_ext"))
            except UnicodeDecodeError:
                out_lines.append(_iso2022jp_line(line, errors))
        return "".join(out_lines)
    return _iso2022jp_line(data, errors)


def _iso2022jp_line(data: bytes, errors: str) -> str:
    replace = errors != "strict"
    table = _jis_table()
    out: list[str] = []
    mode = _ASCII
    shifted = False  # SO ... SI: half-width katakana (CP50222)
    position = 0
    for piece in _JIS_SEGMENT.split(data):
        if not piece:
            continue
        if piece in _MODES:
            mode, shifted = _MODES[piece], False
        elif piece == b"\x0e":
            shifted = True
        elif piece == b"\x0f":
            shifted = False
        elif piece[:1] == b"\x1b" and _JIS_SEGMENT.fullmatch(piece):
            mode = _OTHER  # JIS X 0212, GB 2312, ISO-8859 G2: not in cp932
        else:
            text = _jis_text(piece, _KATAKANA if shifted else mode, table, replace)
            if text is None:
                raise UnicodeDecodeError("iso2022_jp (cp932)", data, position, position + len(piece), "not ISO-2022-JP")
            out.append(text)
            if mode in (_KANJI, _OTHER) and (b"\n" in piece or b"\r" in piece):
                mode = _ASCII  # a line that ended in two-byte mode: mail clients reset
        position += len(piece)
    return "".join(out)


def _jis_text(piece: bytes, mode: int, table: dict[bytes, str], replace: bool) -> str | None:
    """One run of bytes between escape sequences; None (strict) when something does not fit."""
    chars: list[str] = []
    if mode in (_ASCII, _ROMAN):
        if piece.isascii():
            text = piece.decode("ascii")
            return text.translate(_ROMAN_TABLE) if mode == _ROMAN else text
        if not replace:
            return None
        return piece.decode("ascii", "replace")
    i, n = 0, len(piece)
    while i < n:
        b = piece[i]
        if b < 0x21 or b == 0x7F:  # line ends and controls stay what they are
            chars.append(chr(b))
            i += 1
            continue
        if mode == _KATAKANA:
            char = chr(0xFF61 + b - 0x21) if b <= 0x5F else None
            i += 1
        else:
            char = table.get(piece[i : i + 2]) if mode == _KANJI else None
            i += 2
        if char is None:
            if not replace:
                return None
            char = "\ufffd"
        chars.append(char)
    return "".join(chars)


# --- the mail's own hints -------------------------------------------------------

_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:+-]{1,40})""", re.IGNORECASE)
_WORD_CHARSET = re.compile(r"=\?([^?\s*]{1,75})[*?]")
_MAX_HINT_PARTS = 200


class CharsetHints:
    """The charsets one mail declares, for reading its undeclared 8-bit text.

    Collected on first use only (most mail never needs them): the charset parameter of
    every part's Content-Type, the charset of every RFC 2047 word in any header of any
    part, and (``add``) what the mail's own raw header bytes were read as.  Labels are
    mapped to the codec a mail client would use (iso-8859-1 -> cp1252), 7-bit charsets
    to where their mailers' 8-bit bytes come from (ISO-2022-JP -> Shift_JIS, EUC-JP).
    """

    def __init__(self, root: Message | None = None) -> None:
        self._root = root
        self._declared: list[str] | None = None
        self._seen: list[str] = []

    def add(self, codec: str) -> None:
        """What this mail's raw header bytes turned out to be (ranked before declarations)."""
        names = codecs_for(codec)
        if names and names[0] not in self._seen:
            self._seen.append(names[0])

    def codecs(self) -> list[str]:
        if self._declared is None:
            self._declared = self._collect()
        found = dict.fromkeys([*self._seen, *self._declared])
        return [name for name in found if name not in _NOT_EIGHT_BIT]

    def _collect(self) -> list[str]:
        labels: list[str] = []
        stack = [self._root] if self._root is not None else []
        parts = 0
        while stack and parts < _MAX_HINT_PARTS:
            part = stack.pop()
            parts += 1
            for name, value in part.raw_items():
                value = str(value)
                if name.lower() == "content-type":
                    labels.extend(_CHARSET_PARAM.findall(value))
                if "=?" in value:
                    labels.extend(_WORD_CHARSET.findall(value))
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
        codecs_found: list[str] = []
        for label in labels:
            names = codecs_for(label.strip().lower())
            if not names:
                continue
            for name in _EIGHT_BIT_SISTERS.get(names[0], (names[0],)):
                if name not in codecs_found:
                    codecs_found.append(name)
        return codecs_found

    def read(self, data: bytes) -> tuple[str, str] | None:
        """(codec, text) by the first hinted charset that reads ``data`` plausibly, else None.

        Plausibly: a strict decode, and for single-byte charsets no C1 control characters
        (what bytes of another charset leave behind in ISO-8859-1).  A multi-byte charset
        that decodes strictly is strong evidence; so are the mail's own declarations.
        """
        for name in self.codecs():
            try:
                text = data.decode(name)
            except (UnicodeDecodeError, LookupError):
                continue
            if name not in _MULTIBYTE and _C1_CONTROLS.search(text):
                continue
            return name, scalar(text)
        return None


# --- decode -----------------------------------------------------------------------


def _fallback(data: bytes, hints: CharsetHints | None) -> tuple[str, str]:
    """Bytes without a usable label: UTF-8, mostly-UTF-8, the mail's hints, detection."""
    try:
        return "utf-8", data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    mostly = _mostly_utf8(data)
    if mostly is not None:
        text, invalid = mostly
        return f"utf-8 with {invalid} invalid byte sequence{'s' if invalid != 1 else ''} replaced", text
    if hints is not None:
        found = hints.read(data)
        if found is not None:
            return f"{found[0]} (a charset this mail declares)", found[1]
    return guess(data)


def decode(data: bytes, label: str | None, where: str, defects: list[str], hints: CharsetHints | None = None) -> str:
    """Decode ``data`` by its declared charset ``label``, falling back as the module says."""
    if not data:
        return ""
    label = label.strip().strip("\"'").lower() if label else ""
    if not label:
        # RFC 2045 5.2: no charset means US-ASCII; 8-bit text here is usually UTF-8.
        if data.isascii():
            return data.decode("ascii")
        encoding, text = _fallback(data, hints)
        if encoding != "utf-8":
            defects.append(f"8-bit text without a declared charset in {where}, decoded as {encoding}")
        return text
    names = codecs_for(label)
    if names is None:
        encoding, text = _fallback(data, hints)
        defects.append(f"unknown charset {label[:40]} in {where}, decoded as {encoding}")
        return text
    for name in names:
        try:
            return scalar(data.decode(name))
        except UnicodeError:
            continue
    if names[0] in _ISO2022_JP:
        try:
            return iso2022jp_windows(data)
        except UnicodeDecodeError:
            pass
        if data.isascii():  # 7-bit as ISO-2022-JP must be: never show escape sequences
            defects.append(f"characters outside ISO-2022-JP in {where} replaced")
            return iso2022jp_windows(data, "replace")
    if names[0] == "utf-8":
        mostly = _mostly_utf8(data)
        if mostly is not None:
            text, invalid = mostly
            defects.append(f"{invalid} invalid UTF-8 byte sequence{'s' if invalid != 1 else ''} in {where} replaced")
            return text
    encoding, text = _fallback(data, hints)
    defects.append(f"bytes invalid for declared charset {label[:40]} in {where}, decoded as {encoding}")
    return text
