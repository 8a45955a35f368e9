"""Ticket references (`MB-2026-000042`) and the subject tag that carries them.

The format comes from `[tickets] reference`; the sequence is global and never reset
(a counter row incremented in the ticket's own transaction, store/pending.next_sequence:
no gaps from rollbacks and no duplicates across processes).
"""

from __future__ import annotations

import re
from datetime import datetime

_FIELD = re.compile(r"{(\w+)(?::[^}]*)?}")


class ReferenceFormat:
    def __init__(self, template: str, prefix: str) -> None:
        self.template = template
        self.prefix = prefix
        self._pattern = re.compile(r"\[(" + self._regex() + r")\]", re.IGNORECASE)

    def format(self, seq: int, created: datetime) -> str:
        return self.template.format(prefix=self.prefix, year=created.year, seq=seq)

    def tag(self, reference: str) -> str:
        return f"[{reference}]"

    def find_in_subject(self, subject: str) -> list[str]:
        """References tagged in a subject, upper-cased as we issue them."""
        return [m.group(1).upper() for m in self._pattern.finditer(subject or "")]

    def without_tags(self, subject: str) -> str:
        """``subject`` with our reference tags taken out, before a ticket's own tag goes
        in front: a stranger's linked ticket or a late reply to a closed one had carried
        two ("[MB-2] Re: [MB-1] Old laptop"), and a reply to it named both. Other text,
        other desks' tags included, stays; spaces close up only where a tag was."""
        if not subject or "[" not in subject:
            return subject
        stripped = self._pattern.sub(" ", subject)
        return subject if stripped == subject else " ".join(stripped.split())

    def _regex(self) -> str:
        out, pos = [], 0
        for match in _FIELD.finditer(self.template):
            out.append(re.escape(self.template[pos : match.start()]))
            name = match.group(1)
            out.append(re.escape(self.prefix) if name == "prefix" else r"\d{4}" if name == "year" else r"\d+")
            pos = match.end()
        out.append(re.escape(self.template[pos:]))
        return "".join(out)
