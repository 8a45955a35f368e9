"""The satisfaction survey's answers (the survey itself is sent by outbound/notices/requester.py).

    desk.resolved_notice (a ticket became resolved)
        -> outbound/notices.survey: templates/survey.* with a reply token of
           purpose "survey"; event "survey_sent"
    worker/followup.py: correlate found a token of purpose "survey"
        -> [record_answer] parse_score(the reply's new text)
                           -> "survey_answered" {score, comment, message}
                           -> or "survey_unreadable" {message, text}
                           never reopens, never answers, never tells the agents

Reporting computes satisfaction from the history: per ticket, the latest
"survey_answered" event counts (a second answer replaces the first).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any

from mailbridge.store.pending import Pending

__all__ = ["COMMENT_MAX", "SCORE_MAX", "SCORE_MIN", "parse_score", "record_answer"]

COMMENT_MAX = 2000
SCORE_MIN, SCORE_MAX = 1, 10

# A number as written: digits, perhaps a sign or decimals (so "7.5", "-3" or "1,000" are
# read whole and refused, never taken for 7, 3 or 1), not part of a word ("A4", "win10").
# A number standing alone; "9点" (Japanese "9 points") counts as standing alone.
_NUMBER = re.compile(r"(?<![\w.,])[-+]?[0-9]+(?:[.,][0-9]+)?(?![0-9]|[.,][0-9]|(?!点)\w)")
# "8/10", "8 / 10", "9 out of 10", "9 of 10" right after the score (and the same in the
# languages the survey is shipped in: "9 von 10", "9 sur 10", "9 de 10").
_OUT_OF = re.compile(r"^\s*(?:/|out\s+of|of|von|sur|de)\s*10(?![0-9])", re.IGNORECASE)
# What may stand before the score and is no comment: nothing, or a label.
_LABEL = re.compile(r"^\s*(?:my\s+)?(?:score|rating|grade|mark|note|points?)?\s*[:=\-\u2013\u2014]?\s*$", re.I)
_LEADING = " \t-\u2013\u2014:;,.|)点、。"


def parse_score(text: str) -> tuple[int | None, str]:
    """The score and the comment of a survey answer.

    The score is the first number on the first non-empty line, when it is a whole
    number from 1 to 10 ("8", "8/10", "Score: 9", "10 - great"); numbers only, no
    words. The comment is the rest: that line without the score (and a "/10" or "out of
    10" after it, and a "Score:" label before it), then the lines below; when the
    line has words before the score ("I give it a 9 because ..."), the whole line.
    No score: (None, the whole text). The comment is cut to COMMENT_MAX characters."""
    lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return None, ""
    # Full-width digits and punctuation ("９", "：") as Japanese input methods type them.
    line = unicodedata.normalize("NFKC", lines[first])
    found = _NUMBER.search(line)
    score: int | None = None
    if found is not None and re.fullmatch(r"[+]?[0-9]+", found.group()):
        value = int(found.group())
        if SCORE_MIN <= value <= SCORE_MAX:
            score = value
    if score is None or found is None:
        return None, (text or "").strip()[:COMMENT_MAX]
    before, after = line[: found.start()], line[found.end() :]
    after = _OUT_OF.sub("", after, count=1).lstrip(_LEADING).strip()
    head = after if _LABEL.match(before) else line.strip()
    rest = "\n".join(lines[first + 1 :]).strip()
    comment = "\n".join(part for part in (head, rest) if part)
    return score, comment[:COMMENT_MAX]


def record_answer(
    ticket_id: int, sender: str, text: str, message_pk: int, now: datetime, pending: Pending
) -> int | None:
    """A reply to the survey, stored as message ``message_pk``: "survey_answered" with
    its score and comment, or "survey_unreadable" with the text. Returns the score."""
    score, comment = parse_score(text)
    if score is None:
        data: dict[str, Any] = {"message": message_pk, "text": comment}
        pending.event(ticket_id, now, "survey_unreadable", sender, data)
        return None
    data = {"score": score, "comment": comment, "message": message_pk}
    pending.event(ticket_id, now, "survey_answered", sender, data)
    return score
