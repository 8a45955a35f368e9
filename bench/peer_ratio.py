#!/usr/bin/env python3
"""Same-run ratio against a peer (issue 20): mailbridge vs django-helpdesk 2.6.1, same mails.

Where it sits: a benchmark beside bench/ingest.py, whose functions it reuses for the
mailbridge side; nothing in mailbridge imports it.

mailbridge side: exactly what ``bench/ingest.py --config shipped --ack-limits off
--install checkout --db sqlite`` measures: a real daemon (``mailbridge run``) on the
shipped config.toml (port, support address and the desk-wide and per-domain
acknowledgement limits changed, see ``ingest.write_shipped_config``), SQLite, one worker,
the corpus sent over SMTP with 8 connections, ``mailbridge wait --idle``; msg/s from the
first mail sent to idle (every ticket stored, every acknowledgement written to the
outgoing Maildir).

Peer side: django-helpdesk 2.6.1 in its own venv (``.cache/peers/django-helpdesk``, made
and pip-installed with pinned versions on first use), a minimal Django project on SQLite
in a fresh temporary directory (settings below: Django's defaults, no admin, outgoing
mail through Django's file backend so its acknowledgements are built and written as
mailbridge's are), ``migrate``, one Queue with ``email_box_type = "local"`` reading a
folder holding the same mails as .eml files, then its ``get_email`` management command.
msg/s from the start of ``get_email`` to its return (Django start-up and the migration
not counted; every mail a ticket or follow-up, its acknowledgement written, its file
deleted). django-helpdesk reads the folder in ``os.listdir`` order, which on ext4 is
hash order (shuffled, in effect); the driver makes it read in name order, and the files
are named in the run's order (``--order``), so both sides get the mails in the same order.

Runs interleave, mailbridge, peer, mailbridge, peer ... (``--runs`` of each, default 3),
so load from others on a shared machine falls on both alike. Prints each run (msg/s,
CPU per message, threading against the corpus manifest: threads split over tickets,
tickets mixing threads, mails missing), the medians and the ratio of the medians.
django-helpdesk's threading is read from its tables: helpdesk_followup (Message-ID ->
ticket; every mail it takes is a FollowUp, the first one of a ticket included) and
helpdesk_ticket. Figures are printed, never asserted: record them in bench/RESULTS.md.

    python bench/peer_ratio.py [--n 5000] [--runs 3] [--order file|shuffled]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import venv
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.ingest import mail_order, make_corpus, one_run, score_threads  # noqa: E402

PEER_DIR = REPO / ".cache" / "peers" / "django-helpdesk"
# django-helpdesk 2.6.1 and what it pulled in when this was written (pip freeze of the
# peer venv), pinned so that a rerun measures the same code.
PEER_REQUIREMENTS = [
    "django-helpdesk==2.6.1",
    "Django==5.2.20",
    "asgiref==3.13.0",
    "sqlparse==0.6.1",
    "beautifulsoup4==4.15.0",
    "soupsieve==4.1.4",
    "django-cleanup==9.0.0",
    "django-model-utils==5.0.0",
    "djangorestframework==3.18.3",
    "email-reply-parser==0.5.12",
    "Markdown==3.11.4",
    "nh3==0.3.8",
    "oauthlib==4.0.1",
    "requests==2.34.2",
    "requests-oauthlib==2.0.0",
    "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.3",
    "idna==3.21",
    "urllib3==2.8.0",
    "typing_extensions==4.16.0",
]

# The peer's Django project, written into each run's directory; the paths come from HD_SITE.
PEER_SETTINGS = """
import os

BASE = os.environ["HD_SITE"]
SECRET_KEY = "benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
SITE_ID = 1
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    "rest_framework",
    "helpdesk",
]
MIDDLEWARE = []
ROOT_URLCONF = "hdbench.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(BASE, "helpdesk.sqlite3")}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
MEDIA_ROOT = os.path.join(BASE, "media")
STATIC_URL = "/static/"
# Acknowledgements are built from helpdesk's templates and written, one file per send,
# as mailbridge writes its own to the outgoing Maildir.
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.path.join(BASE, "outgoing")
DEFAULT_FROM_EMAIL = "support@helpdesk.example"
HELPDESK_TEAMS_MODE_ENABLED = False  # else it needs pinax-teams
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
"""

PEER_URLS = """
from django.urls import include, path

urlpatterns = [path("helpdesk/", include("helpdesk.urls", namespace="helpdesk"))]
"""

# Runs inside the peer venv: the queue, then get_email, timed without Django's start-up.
PEER_DRIVER = '''
import json
import os
import sys
import time

import django

django.setup()

import helpdesk.email as hd_email
from django.core.management import call_command
from helpdesk.models import Queue


class NameOrderOs:
    """os for helpdesk.email, with listdir in name order (the files are named in the run's order)."""

    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def listdir(path):
        return sorted(os.listdir(path))


hd_email.os = NameOrderOs()
site = os.environ["HD_SITE"]
Queue.objects.create(
    title="Support",
    slug="support",
    email_address="support@helpdesk.example",
    allow_email_submission=True,
    email_box_type="local",
    email_box_local_dir=os.path.join(site, "inbox"),
    email_box_interval=0,
)
began, cpu = time.perf_counter(), time.process_time()
call_command("get_email", quiet=True)
seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
with open(sys.argv[1], "w") as out:
    json.dump({"seconds": seconds, "cpu_seconds": cpu}, out)
'''


def peer_python() -> Path:
    """The peer venv's python, made and installed on first use (again if the pins change)."""
    python = PEER_DIR / "bin" / "python"
    pins = PEER_DIR / "pinned.txt"
    wanted = "\n".join(PEER_REQUIREMENTS) + "\n"
    if python.exists() and pins.exists() and pins.read_text() == wanted:
        return python
    if PEER_DIR.exists():
        shutil.rmtree(PEER_DIR)
    print(f"making {PEER_DIR} and installing django-helpdesk 2.6.1 ...", flush=True)
    venv.create(PEER_DIR, with_pip=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *PEER_REQUIREMENTS], check=True
    )
    pins.write_text(wanted)  # last: an interrupted install is redone next time
    return python


def peer_run(python: Path, files: list[Path], manifest: list[dict[str, object]]) -> dict[str, object]:
    """One django-helpdesk get_email run over ``files`` (in that order) in a fresh project."""
    with tempfile.TemporaryDirectory(prefix="hd-bench-") as tmp:
        site = Path(tmp)
        (site / "hdbench").mkdir()
        (site / "hdbench" / "__init__.py").write_text("")
        (site / "hdbench" / "settings.py").write_text(PEER_SETTINGS)
        (site / "hdbench" / "urls.py").write_text(PEER_URLS)
        (site / "driver.py").write_text(PEER_DRIVER)
        inbox = site / "inbox"
        inbox.mkdir()
        for i, f in enumerate(files):
            shutil.copyfile(f, inbox / f"{i:06d}.eml")
        env = {
            **os.environ,
            "HD_SITE": str(site),
            "DJANGO_SETTINGS_MODULE": "hdbench.settings",
            "PYTHONPATH": str(site),
        }
        log = site / "peer.log"
        with log.open("ab") as out:
            subprocess.run(
                [str(python), "-m", "django", "migrate", "-v0"], env=env, cwd=site, stdout=out, stderr=out, check=True
            )
            # helpdesk prints attachment refusals (.csv, .zip: not in its allowed extensions) to stdout
            subprocess.run(
                [str(python), "driver.py", str(site / "timing.json")],
                env=env,
                cwd=site,
                stdout=out,
                stderr=out,
                check=True,
            )
        timing = json.loads((site / "timing.json").read_text())
        db = sqlite3.connect(site / "helpdesk.sqlite3")
        try:
            rows = db.execute("SELECT message_id, ticket_id FROM helpdesk_followup").fetchall()
            n_tickets = db.execute("SELECT count(*) FROM helpdesk_ticket").fetchone()[0]
        finally:
            db.close()
        ticket_of = {str(mid).strip().strip("<>"): int(tid) for mid, tid in rows if mid}
        result: dict[str, object] = dict(score_threads(ticket_of, n_tickets, manifest))
        # Django's file backend ends each message with a line of 79 dashes; files can hold several
        # (it names them by the second and the backend object's id, which can repeat).
        outgoing = site / "outgoing"
        sep = b"\n" + b"-" * 79 + b"\n"
        result["acks_written"] = sum(f.read_bytes().count(sep) for f in outgoing.iterdir()) if outgoing.exists() else 0
        result["left_in_folder"] = len(list(inbox.iterdir()))
        result["mails"] = len(files)
        result["msg_per_s"] = round(len(files) / timing["seconds"], 1)
        result["cpu_ms_per_msg"] = round(timing["cpu_seconds"] * 1000 / len(files), 2)
    return result


def mailbridge_run(corpus: Path, manifest: list[dict[str, object]], shuffled: bool) -> dict[str, object]:
    result = one_run(corpus, manifest, shuffled, connections=8, workers=1, config="shipped", ack_limits=False)
    result["msg_per_s"] = result["end_to_end_per_s"]
    # The daemon's CPU per mail while the load ran, all its processes, start-up not counted
    # (as the peer's excludes Django's start-up; the SMTP client's is client_cpu_ms_per_msg).
    result["daemon_cpu_ms_per_msg"] = result["load_cpu_ms_per_msg"]
    return result


def quality(run: dict[str, object], multi_threads: int) -> str:
    return (
        f"{run['tickets']:,} / {run['follow_ups']:,}; split {run['split_threads']} of {multi_threads:,}, "
        f"mixed {run['mixed_tickets']}, missing {run['missing']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--order", choices=["file", "shuffled"], default="file")
    args = parser.parse_args()
    python = peer_python()
    corpus = make_corpus(args.n, args.seed)
    manifest = json.loads((corpus / "manifest.json").read_text())
    sizes = Counter(item["ticket"] for item in manifest)
    multi = sum(1 for size in sizes.values() if size > 1)
    shuffled = args.order == "shuffled"
    files = mail_order(corpus, manifest, shuffled)
    print(
        f"corpus: {len(manifest)} mails, {len(sizes)} threads ({multi} with replies), "
        f"{len(manifest) - len(sizes)} replies; {args.order} order; {args.runs} interleaved runs each",
        flush=True,
    )
    mb_runs: list[dict[str, object]] = []
    hd_runs: list[dict[str, object]] = []
    for i in range(1, args.runs + 1):
        mb = mailbridge_run(corpus, manifest, shuffled)
        mb_runs.append(mb)
        print(f"run {i} mailbridge: {json.dumps(mb)}", flush=True)
        hd = peer_run(python, files, manifest)
        hd_runs.append(hd)
        print(f"run {i} django-helpdesk: {json.dumps(hd)}", flush=True)

    def med(runs: list[dict[str, object]], key: str) -> float:
        return float(statistics.median(float(r[key]) for r in runs))  # type: ignore[arg-type]

    mb_med, hd_med = med(mb_runs, "msg_per_s"), med(hd_runs, "msg_per_s")
    mb_cpu, hd_cpu = med(mb_runs, "daemon_cpu_ms_per_msg"), med(hd_runs, "cpu_ms_per_msg")
    print()
    print("| | " + " | ".join(f"run {i}" for i in range(1, args.runs + 1)) + " | median | CPU ms/mail (median) |")
    print("|---|" + "---|" * args.runs + "---|---|")
    for name, runs, median, cpu in (
        ("mailbridge, shipped config", mb_runs, mb_med, mb_cpu),
        ("django-helpdesk 2.6.1 get_email", hd_runs, hd_med, hd_cpu),
    ):
        print(f"| {name} msg/s | " + " | ".join(f"{r['msg_per_s']}" for r in runs) + f" | {median:.1f} | {cpu:.2f} |")
    print(
        f"\nratio of medians (mailbridge / django-helpdesk): {mb_med / hd_med:.1f}x msg/s; "
        f"CPU per mail {hd_cpu / mb_cpu:.1f}x less"
    )
    print("\nthreading, tickets / follow-ups (every run):")
    for name, runs in (("mailbridge", mb_runs), ("django-helpdesk", hd_runs)):
        for i, r in enumerate(runs, 1):
            extra = (
                f"acks sent {r['acks_sent']}"
                if "acks_sent" in r
                else f"acks written {r['acks_written']}, left in folder {r['left_in_folder']}"
            )
            print(f"  {name} run {i}: {quality(r, multi)}; {extra}")


if __name__ == "__main__":
    main()
