"""Everything the worker learns from one stored mail before touching the database.

    raw bytes ─► parse (mime.py) ─► reply text (reply.py)
                                 ─► classification (classify.py: normal | auto_reply |
                                    bounce | bulk | loop, bounced recipients)
                                 ─► structured incident (extractors.py; parsers/*.toml loaded by extractorfiles.py)

Pure and side-effect free: the worker runs it outside its transaction (so several
workers parse in parallel), `mailbridge parse` runs it on a file, and bench/parse.py
measures it. Raises only ParseError / LimitExceeded, like parse_message.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from mailbridge.parsing.classify import Classification, classify
from mailbridge.parsing.extractors import Extraction, ExtractorSet
from mailbridge.parsing.mime import ParsedMail, ParseLimits, parse_message
from mailbridge.parsing.reply import extract_reply

__all__ = ["Analyser", "Analysis", "REPLY_SCAN_CHARS", "REPLY_SCAN_LINES"]

# The start of the text searched for the new reply (reply.py works line by line, ~6
# microseconds a line: 8 million short lines took it 20 s). The new text of a reply is
# at its top; a longer text keeps this much as its reply text, and all of it as the text.
REPLY_SCAN_LINES = 20_000
REPLY_SCAN_CHARS = 512 * 1024


def _reply_head(text: str) -> str:
    head = text[:REPLY_SCAN_CHARS]
    pos = -1
    for _ in range(REPLY_SCAN_LINES):
        pos = head.find("\n", pos + 1)
        if pos < 0:
            return head
    return head[:pos]


@dataclass(frozen=True)
class Analysis:
    mail: ParsedMail
    reply_text: str
    classification: Classification
    extraction: Extraction | None

    @property
    def kind(self) -> str:
        """What the worker does with the mail. A mail an extractor recognises is an
        incident even when its sender marks it automatic (monitoring systems send
        "Auto-Submitted: auto-generated" or "Precedence: bulk"); a bounce or a loop
        never is."""
        cls = self.classification.kind
        if self.extraction is not None and cls in ("normal", "auto_reply", "bulk"):
            return "incident"
        return cls

    def to_json(self) -> dict[str, Any]:
        """`mailbridge parse --json`: the parsed mail plus what the worker would decide
        from it; keys are only ever added."""
        data = self.mail.to_json()
        data["reply_text"] = self.reply_text
        data["classification"] = self.classification.kind
        data["classification_reason"] = self.classification.reason
        data["bounced_recipients"] = [
            {"address": r.address, "status": r.status, "temporary": r.temporary}
            for r in self.classification.bounced_recipients
        ]
        data["original_message_ids"] = list(self.classification.original_message_ids)
        data["incident"] = self.extraction.to_json() if self.extraction is not None else None
        return data


class Analyser:
    def __init__(
        self,
        own_addresses: Collection[str],
        own_domains: Collection[str] = (),
        extractors: ExtractorSet | None = None,
        limits: ParseLimits = ParseLimits(),
    ) -> None:
        self._own = list(own_addresses)
        self._domains = list(own_domains)
        self._extractors = extractors if extractors is not None else ExtractorSet()
        self._limits = limits

    def analyse(self, raw: bytes, envelope_from: str | None) -> Analysis:
        mail = parse_message(raw, self._limits)
        return self.analyse_parsed(mail, raw, envelope_from)

    def analyse_parsed(self, mail: ParsedMail, raw: bytes, envelope_from: str | None) -> Analysis:
        classification = classify(mail, raw, envelope_from, self._own, self._domains)
        extraction = None
        if classification.kind not in ("bounce", "loop"):
            extraction = self._extractors.match(mail)
        # Sanitise the HTML here, where workers run in parallel, not in the serial apply step.
        _ = mail.safe_html
        return Analysis(mail, extract_reply(_reply_head(mail.text)), classification, extraction)
