#!/usr/bin/env python3
"""Agents-by-email benchmark (issue 6): the worker's cost of authenticated agent replies.

Issue 6's target: the ingest benchmark with 30% of the follow-ups being authenticated
agent replies with commands costs the worker at most 15% more CPU per message than the
plain run.

Makes the standard corpus (../shared/tools/gen_corpus.py --n 5000 --seed 20240501, via
bench/ingest.py) and, for each run, starts a real daemon (`mailbridge run`, 1 worker,
SQLite) in a fresh directory, configured like bench/ingest.py plus two agents in one
team, ``[authentication]`` trusting the Authentication-Results of ``mx.staff.example`` on
the SMTP intake, a rules directory with one rule (every new ticket is assigned to the
team, round robin) and a relay: an aiosmtpd sink inside this process that records every
mail the daemon sends (acknowledgements, the agents' notifications, answers). Both
modes send their mail out to it alike.

A run has two phases, each sent over SMTP with 8 connections and followed by
`mailbridge wait --idle`:

1. the first mail of every corpus thread (the manifest's threads): new tickets, each
   acknowledged to its requester and notified to its assignee with a reply token;
2. the follow-ups, in file order.  In the ``plain`` mode all of them are the corpus'
   own requester replies.  In the ``agents`` mode 30% of them (chosen with a fixed seed)
   are replaced by an agent's reply to the notification the sink received for that
   thread's ticket (found by the reference in its subject; threads are mapped to
   tickets through the daemon's database): From the assignee, To the notification's
   Reply-To (the token), In-Reply-To its Message-ID, the trusted MTA's
   Authentication-Results (dkim=pass, aligned), ``#priority high`` and ``#tag bench``
   on top, an answer below, the notification quoted.  Both modes build those replies
   (so the pause between the phases is alike); only ``agents`` sends them.

Both modes process the same number of mails.  Measured: the worker's CPU seconds (user
+ system, from /proc, daemon start included as in bench/ingest.py) for the whole run,
per message, and the phase-2 share per follow-up; the end-to-end time (both phases,
without the pause between them).  Checked and printed: threading against the manifest
(the replaced mails left out), and in the ``agents`` mode that the commands took effect
(tickets with priority high and the tag ``bench``), that each answer reached its
requester at the sink (without the commands), and that no agent mail was refused.

Runs alternate plain, agents, plain, agents, ... (``--runs`` of each, default 3), so
load on the machine hits both alike; at the end the medians and the extra cost of the
agents mode in percent (target <= 15%).  Figures are printed, never asserted: record
them in bench/RESULTS.md.

    python bench/agents.py [--n 5000] [--runs 3] [--seed 20240501] [--share 0.3]
        [--connections 8] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import random
import re
import signal
import smtplib
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiosmtpd.controller import Controller  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench.ingest import CONFIG, check_threads, cli, group_cpu_seconds, make_corpus, start_daemon  # noqa: E402
from mailbridge.store.db import Store, read_tx  # noqa: E402
from mailbridge.store.tables import events, messages, outbox, tickets  # noqa: E402

SUPPORT = "support@helpdesk.example"
REQUESTER_FROM = "sender@example.com"  # the envelope sender bench/ingest.py uses
AUTHSERV = "mx.staff.example"
AGENTS = {"alice@staff.example": "Alice Agent", "bob@staff.example": "Bob Agent"}
DKIM_PASS = f"{AUTHSERV}; dkim=pass header.d=staff.example header.s=s1; spf=pass smtp.mailfrom=staff.example"
COMMANDS = "#priority high\n#tag bench"
MARKER = "bench-answer-"

PEOPLE = f"""
[[agents]]
id = "alice"
name = "Alice Agent"
email = "alice@staff.example"
teams = ["helpdesk"]

[[agents]]
id = "bob"
name = "Bob Agent"
email = "bob@staff.example"
teams = ["helpdesk"]

[[teams]]
id = "helpdesk"
name = "Helpdesk"

[authentication]
trusted_authserv_ids = ["{AUTHSERV}"]
intake = {{ smtp = "authentication-results" }}
"""

RULES = """
[[rule]]
id = "bench-assign"
description = "Every new ticket to the helpdesk team, round robin (so agents get notifications)"
when = { field = "ticket.new", equals = true }
then.assign = { team = "helpdesk", strategy = "round_robin" }
"""

Mail = tuple[str, list[str], bytes]  # envelope sender, recipients, data (CRLF)


class Sink:
    """Our relay: an aiosmtpd server in this process that records what the daemon sends."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], bytes]] = []
        self.lock = threading.Lock()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # Controller cannot bind port 0
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.mails.append(([r.lower() for r in envelope.rcpt_tos], envelope.original_content))
        return "250 OK"

    def take(self) -> list[tuple[list[str], bytes]]:
        with self.lock:
            taken, self.mails = self.mails, []
        return taken


def worker_cpu(pgid: int) -> float:
    """CPU seconds of the daemon's worker processes so far (all of them summed)."""
    return sum(s for role, s in group_cpu_seconds(pgid).items() if role == "worker" or role.startswith("worker-"))


def send(port: int, mails: list[Mail], connections: int) -> tuple[float, int]:
    """Send over SMTP with ``connections`` clients; (seconds, failures)."""
    work: queue.Queue[Mail] = queue.Queue()
    for mail in mails:
        work.put(mail)
    failures = [0]
    lock = threading.Lock()

    def client() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            while True:
                try:
                    mail_from, rcpts, raw = work.get_nowait()
                except queue.Empty:
                    break
                try:
                    smtp.sendmail(mail_from, rcpts, raw)
                except smtplib.SMTPException:
                    with lock:
                        failures[0] += 1

    threads = [threading.Thread(target=client) for _ in range(connections)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - began, failures[0]


def wait_idle(config: Path) -> None:
    idle = cli(config, "wait", "--idle", "--timeout", "900", timeout=1000)
    if idle.returncode != 0:
        raise SystemExit("wait --idle failed: " + idle.stderr)


def references(site: Path, first_ids: dict[object, str]) -> dict[object, str]:
    """Corpus thread -> ticket reference, through the first mail's Message-ID in the database."""
    store = Store(f"sqlite:///{site / 'var' / 'mailbridge.db'}")
    with read_tx(store.main) as conn:
        rows = conn.execute(
            select(messages.c.message_id, tickets.c.reference).join(tickets, tickets.c.id == messages.c.ticket_id)
        ).all()
    store.dispose()
    ref_of = {str(mid): str(ref) for mid, ref in rows if mid}
    return {thread: ref_of[mid] for thread, mid in first_ids.items() if mid in ref_of}


def notifications(mails: list[tuple[list[str], bytes]], wanted: set[str]) -> dict[str, tuple[str, EmailMessage]]:
    """Reference -> (agent, its "[assigned]" notification) among the mails the sink received."""
    found: dict[str, tuple[str, EmailMessage]] = {}
    headers = BytesHeaderParser(policy=policy.default)
    for rcpts, raw in mails:
        if len(rcpts) != 1 or rcpts[0] not in AGENTS:
            continue
        subject = str(headers.parsebytes(raw)["Subject"] or "")
        if not subject.startswith("[assigned]"):
            continue
        for ref in re.findall(r"\[([^\]\s]+)\]", subject):
            if ref in wanted and ref not in found:
                msg = message_from_bytes(raw, policy=policy.default)
                assert isinstance(msg, EmailMessage)
                found[ref] = (rcpts[0], msg)
    return found


def plain_text(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    return str(body.get_content()) if body is not None else ""


def agent_reply(note: EmailMessage, agent: str, index: int) -> bytes:
    """An agent's reply to a notification as a mail client writes it: commands and the
    answer on top, the notification quoted below; the trusted MTA's verdict on top."""
    msg = EmailMessage()
    msg["Authentication-Results"] = DKIM_PASS
    msg["From"] = formataddr((AGENTS[agent], agent))
    msg["To"] = str(note["Reply-To"])
    msg["Subject"] = "Re: " + str(note["Subject"])
    msg["Message-ID"] = f"<bench-agent-{index}@staff.example>"
    msg["In-Reply-To"] = str(note["Message-ID"])
    msg["References"] = str(note["Message-ID"])
    msg["Date"] = formatdate()
    quoted = "\n".join("> " + line for line in plain_text(note).splitlines())
    name = AGENTS[agent].split()[0]
    msg.set_content(
        f"{COMMANDS}\n\nHello,\n\nthank you for your mail. We have looked into it and raised its priority;"
        f" the fix is under way and we will write again when it is done. ({MARKER}{index})\n\n"
        f"Kind regards,\n{name}\n\n-- \n{AGENTS[agent]}\nHelpdesk\n\n"
        f"On {note['Date']}, Support wrote:\n{quoted}\n"
    )
    return msg.as_bytes(policy=policy.SMTP)


def db_checks(site: Path, targeted: set[str]) -> dict[str, object]:
    store = Store(f"sqlite:///{site / 'var' / 'mailbridge.db'}")
    with read_tx(store.main) as conn:
        rows = conn.execute(select(tickets.c.reference, tickets.c.priority, tickets.c.tags)).all()
        kinds = {k: n for k, n in conn.execute(select(events.c.type, func.count()).group_by(events.c.type))}
        sent = {
            k: n
            for k, n in conn.execute(
                select(outbox.c.kind, func.count()).where(outbox.c.state == "sent").group_by(outbox.c.kind)
            )
        }
        unsent = conn.execute(select(func.count()).select_from(outbox).where(outbox.c.state != "sent")).scalar()
    store.dispose()
    commanded = {ref for ref, priority, tags in rows if priority == "high" and "bench" in (tags or [])}
    return {
        "commands_done": len(commanded & targeted),
        "commands_elsewhere": len(commanded - targeted),
        "answered": int(kinds.get("answered", 0)),
        "refused": int(kinds.get("agent_mail_refused", 0)),
        "rejected": int(kinds.get("agent_commands_rejected", 0)),
        "outbox_sent": {str(k): int(v) for k, v in sorted(sent.items())},
        "outbox_unsent": int(unsent or 0),
    }


def sink_checks(mails: list[tuple[list[str], bytes]]) -> dict[str, object]:
    """Answers at the sink: mails to non-agents that carry an agent's answer marker."""
    answers: set[int] = set()
    copies = 0
    with_commands = 0
    for rcpts, raw in mails:
        if any(r in AGENTS for r in rcpts):
            continue
        msg = message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        text = plain_text(msg)
        found = re.search(re.escape(MARKER) + r"(\d+)", text)
        if found is None:
            continue
        answers.add(int(found.group(1)))
        copies += 1
        with_commands += "#priority" in text or "#tag" in text
    to_agents = sum(1 for rcpts, _ in mails if any(r in AGENTS for r in rcpts))
    return {
        "sink_mails": len(mails),
        "sink_to_agents": to_agents,
        "answers": len(answers),
        "answer_copies": copies,
        "answers_with_commands": with_commands,
    }


def one_run(
    mode: str,
    corpus: Path,
    manifest: list[dict[str, Any]],
    chosen: set[int],
    sink: Sink,
    rules_dir: Path,
    connections: int,
    workers: int,
) -> dict[str, object]:
    """One daemon run: phase 1 the threads' first mails, phase 2 the follow-ups."""
    firsts: list[dict[str, Any]] = []
    follow_ups: list[dict[str, Any]] = []
    seen: set[object] = set()
    for item in manifest:
        (follow_ups if item["ticket"] in seen else firsts).append(item)
        seen.add(item["ticket"])
    first_ids = {item["ticket"]: str(item["message_id"]).strip("<>") for item in firsts}
    phase1: list[Mail] = [(REQUESTER_FROM, [SUPPORT], (corpus / item["file"]).read_bytes()) for item in firsts]
    sink.take()
    with tempfile.TemporaryDirectory(prefix="mb-bench-agents-") as tmp:
        site = Path(tmp)
        config = site / "config.toml"
        config.write_text(
            CONFIG.format(templates=REPO / "templates", parsers=REPO / "parsers", rules=rules_dir, workers=workers)
            + f'[outgoing]\nrelay_host = "127.0.0.1"\nrelay_port = {sink.port}\n'
            + PEOPLE
        )
        proc, port = start_daemon(site)
        try:
            began = time.perf_counter()
            seconds1, failures1 = send(port, phase1, connections)
            wait_idle(config)
            phase1_s = time.perf_counter() - began

            # Between the phases, alike in both modes: threads -> tickets -> notifications -> replies.
            out1 = sink.take()
            ref_of = references(site, first_ids)
            notes = notifications(out1, set(ref_of.values()))
            phase2: list[Mail] = []
            replaced: set[str] = set()
            targeted: set[str] = set()
            no_note = 0
            for index, item in enumerate(follow_ups):
                raw = (corpus / item["file"]).read_bytes()
                mail: Mail = (REQUESTER_FROM, [SUPPORT], raw)
                if index in chosen:
                    ref = ref_of.get(item["ticket"])
                    if ref is None or ref not in notes:
                        no_note += 1
                    else:
                        agent, note = notes[ref]
                        token = note["Reply-To"].addresses[0].addr_spec
                        built: Mail = (agent, [token], agent_reply(note, agent, index))
                        if mode == "agents":
                            mail = built
                            replaced.add(str(item["message_id"]))
                            targeted.add(ref)
                phase2.append(mail)

            cpu_before2 = worker_cpu(proc.pid)
            began = time.perf_counter()
            seconds2, failures2 = send(port, phase2, connections)
            wait_idle(config)
            phase2_s = time.perf_counter() - began
            cpu = worker_cpu(proc.pid)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        out2 = sink.take()
        kept = [item for item in manifest if str(item["message_id"]) not in replaced]
        result: dict[str, object] = {"mode": mode}
        result.update(check_threads(site, kept))
        result.update(db_checks(site, targeted))
    result.update(sink_checks(out1 + out2))
    mails = len(phase1) + len(phase2)
    result.update(
        {
            "mails": mails,
            "threads": len(firsts),
            "follow_ups": len(follow_ups),
            "agent_replies": len(replaced),
            "agent_tickets": len(targeted),
            "no_notification": no_note,
            "notifications_found": len(notes),
            "smtp_failures": failures1 + failures2,
            "phase1_s": round(phase1_s, 2),
            "phase2_s": round(phase2_s, 2),
            "send_s": round(seconds1 + seconds2, 2),
            "end_to_end_s": round(phase1_s + phase2_s, 2),
            "worker_cpu_ms_per_msg": round(cpu * 1000 / mails, 3),
            "phase2_worker_cpu_ms_per_follow_up": round((cpu - cpu_before2) * 1000 / max(1, len(follow_ups)), 3),
        }
    )
    return result


def verdict(run: dict[str, object]) -> tuple[bool, str]:
    """Whether a run's checks pass, and a line saying what they found."""
    threading_ok = run["split_threads"] == 0 and run["mixed_tickets"] == 0 and run["missing"] == 0
    threading_ok = threading_ok and run["tickets"] == run["threads"] and run["smtp_failures"] == 0
    text = (
        f"tickets {run['tickets']}/{run['threads']}, split {run['split_threads']}, mixed {run['mixed_tickets']}, "
        f"missing {run['missing']}, SMTP failures {run['smtp_failures']}, outbox unsent {run['outbox_unsent']}, "
        f"sink {run['sink_mails']} mails ({run['sink_to_agents']} to agents)"
    )
    ok = threading_ok and run["outbox_unsent"] == 0 and run["no_notification"] == 0
    if run["mode"] == "agents":
        replies = run["agent_replies"]
        agent_ok = (
            replies != 0
            and run["commands_done"] == run["agent_tickets"]
            and run["commands_elsewhere"] == 0
            and run["answered"] == replies
            and run["answers"] == replies
            and run["answers_with_commands"] == 0
            and run["refused"] == 0
            and run["rejected"] == 0
        )
        ok = ok and agent_ok
        text += (
            f"; {replies} agent replies to {run['agent_tickets']} tickets: commands took effect on "
            f"{run['commands_done']}/{run['agent_tickets']} (elsewhere {run['commands_elsewhere']}), "
            f"answered events {run['answered']}, answers at the sink {run['answers']}/{replies} "
            f"({run['answer_copies']} mails with Cc copies, {run['answers_with_commands']} with commands), "
            f"refused {run['refused']}, rejected {run['rejected']}"
        )
    else:
        ok = ok and run["commands_done"] == 0 and run["answered"] == 0 and run["answers"] == 0
        text += f"; answers {run['answers']}, priority high+bench on {run['commands_done']} tickets"
    if run["no_notification"]:
        text += f"; {run['no_notification']} chosen follow-ups had no notification"
    return ok, text + f" -> {'OK' if ok else 'WRONG'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="corpus size")
    parser.add_argument("--seed", type=int, default=20240501, help="corpus seed; also picks the agent replies")
    parser.add_argument("--runs", type=int, default=3, help="runs of each mode, interleaved")
    parser.add_argument("--share", type=float, default=0.3, help="share of the follow-ups that are agent replies")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="also print each run as JSON")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    corpus = make_corpus(args.n, args.seed)
    manifest = json.loads((corpus / "manifest.json").read_text())
    threads = len({item["ticket"] for item in manifest})
    follow_ups = len(manifest) - threads
    chosen = set(random.Random(args.seed).sample(range(follow_ups), round(follow_ups * args.share)))
    print(
        f"== agents by email: {len(manifest)} mails ({threads} threads, {follow_ups} follow-ups; "
        f"{len(chosen)} of them agent replies in the agents mode), {args.connections} connections, "
        f"{args.workers} worker(s); {args.runs} run(s) each of plain and agents, interleaved"
    )
    sink = Sink()
    sink.controller.start()
    cpu: dict[str, list[float]] = defaultdict(list)
    e2e: dict[str, list[float]] = defaultdict(list)
    outcome: Counter[bool] = Counter()
    try:
        with tempfile.TemporaryDirectory(prefix="mb-bench-agents-rules-") as rules_tmp:
            rules_dir = Path(rules_tmp)
            (rules_dir / "bench.toml").write_text(RULES)
            for index in range(args.runs):
                for mode in ("plain", "agents"):
                    run = one_run(mode, corpus, manifest, chosen, sink, rules_dir, args.connections, args.workers)
                    ms = float(run["worker_cpu_ms_per_msg"])  # type: ignore[arg-type]
                    cpu[mode].append(ms)
                    e2e[mode].append(float(run["end_to_end_s"]))  # type: ignore[arg-type]
                    ok, checks = verdict(run)
                    outcome[ok] += 1
                    print(
                        f"   run {index + 1} {mode:6s}  worker CPU {ms:6.3f} ms/msg "
                        f"(phase 2 {run['phase2_worker_cpu_ms_per_follow_up']:.3f} ms/follow-up); "
                        f"end-to-end {run['end_to_end_s']} s (phase 1 {run['phase1_s']} s, "
                        f"phase 2 {run['phase2_s']} s); {checks}",
                        flush=True,
                    )
                    if args.json:
                        print(json.dumps(run), flush=True)
    finally:
        sink.controller.stop()
    plain = statistics.median(cpu["plain"])
    agents = statistics.median(cpu["agents"])
    extra = (agents / plain - 1) * 100 if plain else float("nan")
    print(
        f"   agents by email: worker CPU {agents:.3f} ms/msg with {args.share:.0%} agent replies, {plain:.3f} plain "
        f"(median of {args.runs} each; end-to-end {statistics.median(e2e['agents']):.1f} s vs "
        f"{statistics.median(e2e['plain']):.1f} s): {extra:+.1f}% (target <= 15%); checks "
        f"{'OK in every run' if not outcome[False] else f'WRONG in {outcome[False]} run(s)'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
