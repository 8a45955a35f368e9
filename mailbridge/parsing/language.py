"""The language a customer writes in, from the new text of their first mail.

    worker, new ticket: analysis.reply_text -> detect_language -> tickets.language
                        (tickets/language.py stores it; outbound/render.py picks the
                        templates/<lang>/ mails by it)

Only the new text is looked at (``parsing.reply.extract_reply`` has cut quoted history and
mobile signatures), so an English reply above a German quote is English.  The detector is
py3langid restricted to :data:`LANGUAGES`: chosen on the shared corpus's hand-labelled
human-written mails (bench/language.py, bench/RESULTS.md), where it was as accurate as
lingua-language-detector on those texts at a fraction of the cost per mail and with a
small, fixed memory footprint.

Conservative by design: a wrong language is worse than none (None means the desk's
English templates).  So the text must have enough letters to say anything
(:data:`MIN_LETTERS`; fewer in a CJK script, where one character is a word), and the
detector must be sure (:data:`MIN_CONFIDENCE`) among the languages it may answer.  Linear
and capped: only the first :data:`MAX_CHARS` characters are read.  Pure, never raises.
"""

from __future__ import annotations

import difflib
import re
import threading
import unicodedata

__all__ = [
    "KNOWN_CODES",
    "LANGUAGES",
    "MAX_CHARS",
    "MIN_CONFIDENCE",
    "MIN_LETTERS",
    "NAMES",
    "describe",
    "detect_language",
    "language_code",
    "suggest_code",
]

# The languages the detector may answer (ISO 639-1).  A mail in any other language gets no
# language rather than the nearest of these.  py3langid's Norwegian is "no" (Bokmål).
LANGUAGES: tuple[str, ...] = (
    "cs", "da", "de", "en", "es", "fi", "fr", "it", "ja", "ko",
    "nl", "no", "pl", "pt", "ru", "sv", "tr", "uk", "zh",
)  # fmt: skip

# Every code ``#language`` and ``tickets set --language`` accept: the detected ones plus
# languages an agent may know better than the detector.
KNOWN_CODES: frozenset[str] = frozenset(LANGUAGES) | frozenset(
    ("ar", "bg", "ca", "el", "et", "he", "hi", "hr", "hu", "id", "is", "lt", "lv", "ms",
     "ro", "sk", "sl", "sr", "th", "vi")
)  # fmt: skip

# English names, for agents' notifications and reports ("de (German)").
NAMES: dict[str, str] = {
    "ar": "Arabic", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian",
    "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian",
    "hu": "Hungarian", "id": "Indonesian", "is": "Icelandic", "it": "Italian", "ja": "Japanese",
    "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian", "ms": "Malay", "nl": "Dutch",
    "no": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian",
    "sk": "Slovak", "sl": "Slovenian", "sr": "Serbian", "sv": "Swedish", "th": "Thai",
    "tr": "Turkish", "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese",
}  # fmt: skip

MAX_CHARS = 1000  # the start of a long mail says as much about its language as the rest
MIN_LETTERS = 12  # "Hi", "test", "Danke!" say too little
MIN_CJK = 2  # kana, hangul and han carry a word in one or two characters
MIN_CONFIDENCE = 0.90  # normalised probability among LANGUAGES (bench/language.py)

# Addresses, links and numbers are not language; left in, they pull short texts to English.
_NOISE = re.compile(r"\S+@\S+|https?://\S+|www\.\S+|[\d_]+")

_lock = threading.Lock()
_identifier: object | None = None


def _get_identifier():  # type: ignore[no-untyped-def]
    """py3langid's model, loaded once per process (about 0.3 s; the worker loads it on its
    first new ticket)."""
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            identifier.set_languages(list(LANGUAGES))
            _identifier = identifier
        return _identifier


def _enough_letters(text: str) -> bool:
    """Whether ``text`` has enough letters to tell a language by (stops counting once it has)."""
    letters = cjk = 0
    for char in text:
        if char.isalpha():
            letters += 1
            if unicodedata.east_asian_width(char) == "W":
                cjk += 1
            if letters >= MIN_LETTERS or cjk >= MIN_CJK:
                return True
    return False


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the language ``text`` is written in, or None when unsure."""
    sample = _NOISE.sub(" ", text[:MAX_CHARS])
    if not _enough_letters(sample):
        return None
    try:
        language, confidence = _get_identifier().classify(sample)  # type: ignore[attr-defined]
    except Exception:  # A detector failure must never cost the mail; no language then.
        return None
    if confidence < MIN_CONFIDENCE or language not in LANGUAGES:
        return None
    return str(language)


def language_code(value: str) -> str | None:
    """The language code an agent or admin typed ("de", "DE", "de-AT", "de_CH", or the
    English name "German"), if it names a known language; None otherwise."""
    written = value.strip().lower()
    by_name = {name.lower(): code for code, name in NAMES.items()}
    if written in by_name:
        return by_name[written]
    code = written.replace("_", "-").split("-")[0]
    if code == "nb":
        code = "no"
    return code if code in KNOWN_CODES else None


def describe(code: str | None) -> str:
    """ "de (German)" for agents and reports; "unknown" for no language."""
    if not code:
        return "unknown"
    name = NAMES.get(code)
    return f"{code} ({name})" if name else code


def suggest_code(written: str) -> str:
    """ "; did you mean 'fr' or 'fi'?" for a mistyped code or name, or "".  Two-letter codes
    are close to many others, so the bar is lower than for other names (one letter right)."""
    choices = {**{code: code for code in KNOWN_CODES}, **{name.lower(): code for code, name in NAMES.items()}}
    close = difflib.get_close_matches(written.strip().lower(), list(choices), n=4, cutoff=0.5)
    codes = list(dict.fromkeys(choices[c] for c in close))[:3]
    return f"; did you mean {' or '.join(repr(c) for c in codes)}?" if codes else ""
