#!/usr/bin/env python3
"""Rules benchmark (issue 5): evaluation time per message and the shipped rules' ingest cost.

Two parts (``--part eval|ingest|both``, default both).

Part 1, evaluation (``eval``): time per message with 10, 100 and 1,000 rules.

Makes the standard corpus (../shared/tools/gen_corpus.py --n 5000 --seed 20240501),
analyses every mail once with ``parsing.analysis.Analyser`` (the shipped parsers/) and
builds ``rules.Facts`` from each analysis, as the worker will.  Then, for each rule
count, it writes a generated rule set of the issue's realistic mix to a temporary
rules directory and loads it with ``load_rules`` (so the timed rules are exactly what
an admin's files give):

- ~60% address/domain/header equality or list membership (a third of them combined
  with a keyword on the subject),
- ~30% keyword ``contains`` on the subject or body (one word or a list of words),
- ~10% RE2 ``regex`` on the subject or body,

and times ``RuleSet.evaluate(facts)`` per message (wall clock, perf_counter_ns, after
one warm-up pass): median and p99, plus the load time, the mean number of rules fired
per message, and ``evaluate(facts, explain=True)`` (every rule traced, for
`mailbridge rules test`) at the largest size.

Part 2, ingest path (``ingest``): the cost of the shipped rules (the repo's rules/) on
the real ingest path, as bench/ingest.py measures it: a real daemon (1 worker) in a
fresh directory, the standard corpus (``--ingest-n`` mails, default 3000) sent over SMTP
in file order with 8 connections, `mailbridge wait --idle`, then the worker's CPU
seconds (user + system) per message.  Runs alternate with the shipped rules and
without them (an empty rules directory): with, without, with, without, ...
(``--ingest-runs`` of each, default 3), so load on the machine hits both alike.  Prints
each run, the medians with and without and the extra cost in percent (target <= 10%),
and whether threading stayed exact in every run (against the corpus manifest).

Figures are printed, never asserted: record them in bench/RESULTS.md.

    python bench/rules.py [--part both|eval|ingest]
        [--n 5000] [--sizes 10,100,1000] [--seed 7]          # part 1
        [--ingest-n 3000] [--ingest-runs 3]                  # part 2
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.ingest import make_corpus, one_run  # noqa: E402
from mailbridge.parsing.analysis import Analyser  # noqa: E402
from mailbridge.parsing.extractorfiles import load_extractors  # noqa: E402
from mailbridge.parsing.mime import LimitExceeded, ParseError  # noqa: E402
from mailbridge.rules import Facts, RuleContext, RuleSet, load_rules  # noqa: E402

TEAMS = [f"team{i}" for i in range(20)]
CORPUS_DOMAINS = ["example.com", "example.net", "mail.example.co.uk", "example.org", "corp.example"]
# Words the corpus generator uses (so keyword rules fire sometimes) and words it never does.
CORPUS_WORDS = [
    "billing",
    "network",
    "portal",
    "refund",
    "invoice",
    "urgent",
    "outage",
    "password",
    "printer",
    "license",
    "vpn",
    "backup",
    "crash",
    "migration",
    "certificate",
    "shipment",
    "quota",
    "token",
    "dashboard",
    "wifi",
    "laptop",
    "contract",
    "renewal",
]
OTHER_WORDS = [
    "kerberos",
    "firmware",
    "warranty",
    "datacenter",
    "toner",
    "payroll",
    "onboarding",
    "offboarding",
    "sla",
    "escalation",
    "gdpr",
    "phishing",
    "malware",
    "ransomware",
    "scanner",
    "projector",
    "headset",
    "docking",
    "keyboard",
    "monitor",
]


def _q(text: str) -> str:
    return "'" + text + "'"  # TOML literal string: no escapes, as admins write patterns


def _word(rng: random.Random) -> str:
    return rng.choice(CORPUS_WORDS) if rng.random() < 0.3 else rng.choice(OTHER_WORDS) + str(rng.randrange(100))


def _equality(rng: random.Random, index: int) -> str:
    kind = rng.random()
    if kind < 0.4:
        domains = [f"customer{rng.randrange(100000)}.example" for _ in range(rng.randint(1, 8))]
        if rng.random() < 0.05:
            domains.append(rng.choice(CORPUS_DOMAINS))
        condition = f"{{ field = 'from.domain', in = [{', '.join(_q(d) for d in domains)}] }}"
    elif kind < 0.65:
        condition = f"{{ field = 'from', equals = {_q(f'person{rng.randrange(100000)}@customer{index}.example')} }}"
    elif kind < 0.85:
        mailer = "perf-corpus-gen/1.0" if rng.random() < 0.02 else f"Mailer {rng.randrange(1000)}"
        condition = f"{{ field = 'header.X-Mailer', equals = {_q(mailer)} }}"
    else:
        boxes = [f"box{rng.randrange(1000)}@helpdesk.example" for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.05:
            boxes.append("support@helpdesk.example")
        condition = f"{{ field = 'to', in = [{', '.join(_q(b) for b in boxes)}] }}"
    if rng.random() < 0.33:
        return f"when.all = [ {condition}, {{ field = 'subject', contains = {_q(_word(rng))} }} ]"
    return f"when = {condition}"


def _keyword(rng: random.Random) -> str:
    where = "subject" if rng.random() < 0.5 else "body"
    if rng.random() < 0.5:
        return f"when = {{ field = '{where}', contains = {_q(_word(rng))} }}"
    words = ", ".join(_q(_word(rng)) for _ in range(rng.randint(2, 4)))
    return f"when = {{ field = '{where}', contains = [{words}] }}"


def _regex(rng: random.Random) -> str:
    where = "subject" if rng.random() < 0.5 else "body"
    pattern = rng.choice(
        [
            rf"\b{_word(rng)}\s+(?:is\s+)?(?:down|broken|failing)\b",
            rf"(?:order|invoice|case)\s*#?\s*\d{{{rng.randint(4, 8)}}}",
            rf"\b{_word(rng)}-\d+\b",
            rf"^{_word(rng)}:",
            rf"\b(?:{_word(rng)}|{_word(rng)})\b.*\b{_word(rng)}\b",
        ]
    )
    return f"when = {{ field = '{where}', regex = {_q(pattern)} }}"


def generate(count: int, seed: int) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    for index in range(count):
        roll = rng.random()
        when = _equality(rng, index) if roll < 0.6 else _keyword(rng) if roll < 0.9 else _regex(rng)
        actions = [f"queue = {_q(rng.choice(TEAMS))}", f"tags = ['t{index % 50}']"]
        if rng.random() < 0.2:
            actions.append(f"priority = {_q(rng.choice(['low', 'medium', 'high']))}")
        out.append(
            f"[[rule]]\nid = 'r{index}'\norder = {rng.randrange(1000)}\n{when}\nthen = {{ {', '.join(actions)} }}\n"
        )
    return "\n".join(out)


def load(count: int, seed: int) -> tuple[RuleSet, float]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bench.toml").write_text(generate(count, seed), encoding="utf-8")
        started = time.perf_counter()
        rules = load_rules(Path(tmp), templates=set(), agents=set(), teams=set(TEAMS), calendars=set())
        return rules, time.perf_counter() - started


def timings(rules: RuleSet, facts: list[Facts], explain: bool = False) -> tuple[list[float], float]:
    for one in facts[:200]:  # warm-up: RE2's DFA caches, the interpreter's caches
        rules.evaluate(one, explain=explain)
    times: list[float] = []
    fired = 0
    clock = time.perf_counter_ns
    for one in facts:
        started = clock()
        decision = rules.evaluate(one, explain=explain)
        times.append((clock() - started) / 1e6)
        fired += len(decision.fired)
    return sorted(times), fired / len(facts)


def evaluation(args: argparse.Namespace) -> None:
    """Part 1: RuleSet.evaluate per message with generated rule sets of each size."""
    analyser = Analyser(["support@helpdesk.example"], (), load_extractors(REPO / "parsers"))
    context = RuleContext(is_vip=lambda a: a.endswith("@example.com"), is_agent=lambda a: False)
    at = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    facts: list[Facts] = []
    for path in sorted(make_corpus(args.n, args.corpus_seed).glob("*.eml")):
        try:
            analysis = analyser.analyse(path.read_bytes(), None)
        except (ParseError, LimitExceeded):
            continue
        facts.append(Facts.from_analysis(analysis, at=at, context=context))
    print(f"== rules: {len(facts)} mails of the standard corpus, wall clock per message")
    sizes = [int(s) for s in args.sizes.split(",")]
    for size in sizes:
        rules, load_time = load(size, args.seed)
        times, fired = timings(rules, facts)
        median = statistics.median(times)
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(
            f"   {size:5d} rules  median {median:7.4f} ms  p99 {p99:7.4f} ms  "
            f"(load {load_time * 1e3:7.1f} ms, {fired:.2f} fired/msg)"
        )
    rules, _ = load(sizes[-1], args.seed)
    times, _ = timings(rules, facts[:1000], explain=True)
    print(
        f"   {sizes[-1]:5d} rules, explain=True (every rule traced): median {statistics.median(times):7.3f} ms  "
        f"p99 {times[int(len(times) * 0.99)]:7.3f} ms  ({len(times)} mails)"
    )


def worker_cpu_ms(run: dict[str, object]) -> float:
    """Worker CPU ms per message of one bench/ingest.py run (all worker processes summed)."""
    cpu = cast(dict[str, float], run["cpu_ms_per_msg"])
    return sum(ms for role, ms in cpu.items() if role == "worker" or role.startswith("worker-"))


def ingest(args: argparse.Namespace) -> None:
    """Part 2: worker CPU per message with and without the shipped rules, interleaved runs."""
    corpus = make_corpus(args.ingest_n, args.corpus_seed)
    manifest = json.loads((corpus / "manifest.json").read_text())
    true_threads = len({item["ticket"] for item in manifest})
    shipped = REPO / "rules"
    print(
        f"== shipped rules on the ingest path: {len(manifest)} mails ({true_threads} threads), file order, "
        f"8 connections, 1 worker; {args.ingest_runs} run(s) each with {shipped} and with an empty rules directory, "
        "interleaved"
    )
    cpu: dict[str, list[float]] = {"with": [], "without": []}
    exact = True
    with tempfile.TemporaryDirectory(prefix="mb-bench-norules-") as empty:
        for index in range(args.ingest_runs):
            for label, rules_dir in (("with", shipped), ("without", Path(empty))):
                run = one_run(corpus, manifest, False, 8, 1, rules_dir=rules_dir)
                ms = worker_cpu_ms(run)
                cpu[label].append(ms)
                run_exact = (
                    run["tickets"] == true_threads
                    and run["split_threads"] == 0
                    and run["mixed_tickets"] == 0
                    and run["missing"] == 0
                )
                exact = exact and run_exact
                print(
                    f"   run {index + 1} {label + ' rules':13s}  worker CPU {ms:5.2f} ms/msg  "
                    f"(end-to-end {run['end_to_end_per_s']} msg/s; tickets {run['tickets']}, "
                    f"split {run['split_threads']}, mixed {run['mixed_tickets']}, missing {run['missing']}, "
                    f"SMTP failures {run['smtp_failures']} -> threading {'EXACT' if run_exact else 'WRONG'})"
                )
    with_ms = statistics.median(cpu["with"])
    without_ms = statistics.median(cpu["without"])
    extra = (with_ms / without_ms - 1) * 100 if without_ms else float("nan")
    print(
        f"   shipped rules: worker CPU {with_ms:.2f} ms/msg with, {without_ms:.2f} without (median of "
        f"{args.ingest_runs} each): {extra:+.1f}% (target <= 10%); threading "
        f"{'EXACT in every run' if exact else 'WRONG in at least one run'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["both", "eval", "ingest"], default="both")
    parser.add_argument("--n", type=int, default=5000, help="corpus size of the evaluation part")
    parser.add_argument("--corpus-seed", type=int, default=20240501)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated rules")
    parser.add_argument("--ingest-n", type=int, default=3000, help="corpus size of the ingest part")
    parser.add_argument("--ingest-runs", type=int, default=3, help="runs with, and as many without, the rules")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    if args.part in ("both", "eval"):
        evaluation(args)
    if args.part in ("both", "ingest"):
        ingest(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
