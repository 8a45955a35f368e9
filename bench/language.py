#!/usr/bin/env python3
"""Language detector choice: accuracy on short human-written mails and CPU cost per mail.

The labelled set is bench/language-labels.tsv: every human-written mail of the shared
corpus (../shared/corpus: the messages the analyser classifies "normal", the RFC 3834
vacation replies, and the reply bodies of the two email-reply-parser test sets), each
with the language of its *new* text (reply extraction applied) as a person reads it,
"-" where there is no language to detect (test placeholders like "foo", markup, JSON)
and "la" for lorem-ipsum filler.  Duplicate texts (the corpus has many copies) are
counted once.

Scored the way the ticket uses the answer: a mail labelled with one of the detector's
languages is right when the detector says that language; a mail labelled "-", "la" or a
language outside the set is right when the detector says nothing (None: English
templates).  Every detector sees the same input: the first MAX_CHARS characters of the
new text, addresses/links/numbers blanked, and no answer below the letter minimum
(mailbridge.parsing.language).  Cost is CPU time per mail over the set (median of
--runs), model load time separately.

    python bench/language.py [--runs 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from mailbridge.parsing import language as lang  # noqa: E402
from mailbridge.parsing.analysis import Analyser  # noqa: E402
from mailbridge.parsing.extractorfiles import load_extractors  # noqa: E402
from mailbridge.parsing.reply import extract_reply  # noqa: E402

Detector = Callable[[str], str | None]


def labelled_texts(root: Path) -> list[tuple[str, str, str]]:
    """(path, label, new text) for every labelled mail, each distinct text once."""
    analyser = Analyser(["support@helpdesk.example"], (), load_extractors(REPO / "parsers"))
    seen: set[str] = set()
    rows = []
    for line in (REPO / "bench" / "language-labels.tsv").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        name, label = line.split("\t")
        source, _, rest = name.partition("/")
        if "#" in rest:  # an mbox member: not in the labelled set
            continue
        raw = (root / source / rest).read_bytes()
        if source.endswith("email-reply-parser"):
            text = extract_reply(raw.decode("utf-8", "replace").replace("\r\n", "\n"))
        else:
            text = analyser.analyse(raw, None).reply_text
        text = text.strip()
        if text in seen:
            continue
        seen.add(text)
        rows.append((name, label, text))
    return rows


def gated(classify: Callable[[str], tuple[str, float]], threshold: float) -> Detector:
    """The production gate around a raw classifier returning (code, confidence)."""

    def detect(text: str) -> str | None:
        sample = lang._NOISE.sub(" ", text[: lang.MAX_CHARS])
        if not lang._enough_letters(sample):
            return None
        code, confidence = classify(sample)
        return code if confidence >= threshold and code in lang.LANGUAGES else None

    return detect


def detectors() -> dict[str, tuple[Detector, float]]:
    """name -> (detector, model load seconds)."""
    found: dict[str, tuple[Detector, float]] = {}
    began = time.process_time()
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    full = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    load = time.process_time() - began
    restricted = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    restricted.set_languages(list(lang.LANGUAGES))
    for threshold in (0.5, 0.9, 0.99):
        found[f"py3langid, all 97 languages, p>={threshold}"] = (gated(full.classify, threshold), load)
        found[f"py3langid, {len(lang.LANGUAGES)} languages, p>={threshold}"] = (
            gated(restricted.classify, threshold),
            load,
        )
    try:
        import lingua
    except ImportError:
        print("lingua-language-detector not installed: skipped", file=sys.stderr)
        return found
    by_code = {"no": lingua.Language.BOKMAL}
    languages = [
        by_code.get(code) or lingua.Language.from_iso_code_639_1(lingua.IsoCode639_1.from_str(code))
        for code in lang.LANGUAGES
    ]
    for low in (False, True):
        builder = lingua.LanguageDetectorBuilder.from_languages(*languages).with_preloaded_language_models()
        if low:
            builder = builder.with_low_accuracy_mode()
        began = time.process_time()
        detector = builder.build()
        load = time.process_time() - began

        def classify(text: str, detector: lingua.LanguageDetector = detector) -> tuple[str, float]:
            values = detector.compute_language_confidence_values(text)
            if not values:
                return "", 0.0
            best = values[0]
            code = best.language.iso_code_639_1.name.lower()
            return ("no" if code == "nb" else code), best.value

        for threshold in (0.5, 0.9):
            mode = "low accuracy" if low else "high accuracy"
            found[f"lingua 2, {len(languages)} languages, {mode}, p>={threshold}"] = (
                gated(classify, threshold),
                load,
            )
    return found


def score(rows: list[tuple[str, str, str]], detect: Detector) -> tuple[int, int, int, int, int, int, list[str]]:
    """(right on a language, language mails, right abstentions, no-language mails, mails given a
    wrong language, English mails given none (None means the English templates: the customer
    still gets English), misses)."""
    right = total = quiet = quiet_total = wrong = english_none = 0
    misses = []
    for name, label, text in rows:
        said = detect(text)
        if label in lang.LANGUAGES:
            total += 1
            right += said == label
        else:
            quiet_total += 1
            quiet += said is None
        wrong += said is not None and said != label
        english_none += label == "en" and said is None
        if (said != label) if label in lang.LANGUAGES else (said is not None):
            misses.append(f"{name}: {label} -> {said}")
    return right, total, quiet, quiet_total, wrong, english_none, misses


def cost(rows: list[tuple[str, str, str]], detect: Detector, runs: int) -> float:
    texts = [text for _name, _label, text in rows]
    results = []
    for _ in range(runs):
        began = time.process_time()
        for text in texts:
            detect(text)
        results.append((time.process_time() - began) / len(texts))
    return statistics.median(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--misses", action="store_true", help="list every wrong answer")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rows = labelled_texts(SHARED / "corpus")
    counts: dict[str, int] = {}
    for _name, label, _text in rows:
        counts[label] = counts.get(label, 0) + 1
    print(f"== {len(rows)} distinct new texts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for name, (detect, load) in detectors().items():
        right, total, quiet, quiet_total, wrong, english_none, misses = score(rows, detect)
        per_mail = cost(rows, detect, args.runs)
        print(
            f"   {name:48} language right {right:3}/{total}  abstained right {quiet:2}/{quiet_total}"
            f"  wrong language {wrong:2}  English as none {english_none:2}"
            f"  {per_mail * 1e3:6.3f} ms/mail  load {load:5.2f} s"
        )
        if args.misses:
            for miss in misses:
                print(f"      {miss}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
