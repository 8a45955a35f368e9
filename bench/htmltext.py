#!/usr/bin/env python3
"""HTML -> text: html2text (before issue 16) against inscriptis and html-text, on every
text/html part of the real-world corpus (../shared/corpus) plus the hostile fixtures.

For each library: time per part (after the same pathological-markup guard,
parsing.htmltext._tame), and how close its words are to html2text's output (the share of
html2text's words, Markdown punctuation aside, found in the same order: difflib on word
lists). Prints figures; record them in bench/RESULTS.md.

    python bench/htmltext.py          (needs html2text, inscriptis and html-text installed)
"""

from __future__ import annotations

import difflib
import email
import email.policy
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from mailbridge.parsing.htmltext import _tame  # noqa: E402

WORD = re.compile(r"[^\W_]+", re.UNICODE)


def html_parts() -> list[str]:
    parts = []
    manifest = (SHARED / "corpus" / "manifest.tsv").read_text().splitlines()[1:]
    files = [SHARED / "corpus" / row.split("\t")[0] / row.split("\t")[1] for row in manifest]
    files += sorted((REPO / "tests" / "fixtures").rglob("*.eml"))
    for path in files:
        try:
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
        except Exception:
            continue
        for part in msg.walk():
            if part.get_content_type() == "text/html":
                try:
                    payload = part.get_payload(decode=True) or b""
                    parts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
                except (LookupError, AssertionError):
                    continue
    return parts


def converters():
    import html2text
    import html_text
    from inscriptis import get_text
    from inscriptis.css_profiles import CSS_PROFILES
    from inscriptis.model.config import ParserConfig

    def h2t(html: str) -> str:
        conv = html2text.HTML2Text()
        conv.body_width = 0
        conv.unicode_snob = True
        conv.images_to_alt = True
        return conv.handle(html)

    config = ParserConfig(css=CSS_PROFILES["strict"], display_links=True, display_images=True)
    return {
        "html2text": h2t,
        "inscriptis": lambda html: get_text(html, config),
        "html-text": lambda html: html_text.extract_text(html, guess_layout=True),
    }


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def main() -> None:
    parts = [_tame(p[: 4 * 128 * 1024]) for p in html_parts()]
    print(f"{len(parts)} text/html parts, {sum(map(len, parts)) / 1e6:.2f} M characters", flush=True)
    results: dict[str, list[str]] = {}
    for name, convert in converters().items():
        outputs, times, failures = [], [], 0
        for html in parts:
            start = time.perf_counter()
            try:
                out = convert(html)
            except Exception:
                failures += 1
                out = ""
            times.append(time.perf_counter() - start)
            outputs.append(out)
        results[name] = outputs
        print(
            f"{name:11} total {sum(times):.2f} s, median {statistics.median(times) * 1000:.2f} ms, "
            f"max {max(times) * 1000:.0f} ms, failures {failures}",
            flush=True,
        )
    base = results["html2text"]
    for name in ("inscriptis", "html-text"):
        ratios = []
        for ref, out in zip(base, results[name], strict=True):
            ref_words, out_words = words(ref), words(out)
            if not ref_words:
                continue
            matcher = difflib.SequenceMatcher(None, ref_words, out_words, autojunk=False)
            ratios.append(sum(b.size for b in matcher.get_matching_blocks()) / len(ref_words))
        ratios.sort()
        print(
            f"{name:11} words of html2text's output kept in order: median {statistics.median(ratios):.3f}, "
            f"p10 {ratios[len(ratios) // 10]:.3f}, min {ratios[0]:.3f} ({len(ratios)} parts)",
            flush=True,
        )


if __name__ == "__main__":
    main()
