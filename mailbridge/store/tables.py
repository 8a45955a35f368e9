"""Database schema (SQLAlchemy Core), the single definition the migrations follow.

Two groups of tables:
- the spool (schema "spool"): raw inbound mail exactly as received, written by the
  receivers and nothing else on the hot path. On SQLite it is a separate database file
  attached as "spool", so receivers never queue behind the worker's write lock; on
  PostgreSQL it is a schema of the one database, so several hosts can share it.
- everything else: tickets, messages, the thread index, tokens, events and the outbox,
  written by the worker in one transaction per message.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
    false,
)

SPOOL_SCHEMA = "spool"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger ids that are still SQLite's rowid alias (INTEGER PRIMARY KEY).
Id = BigInteger().with_variant(Integer(), "sqlite")
TS = DateTime(timezone=True)

# --- spool --------------------------------------------------------------------------

inbound = Table(
    "inbound",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("received_at", TS, nullable=False),
    Column("source", String(16), nullable=False),  # smtp | lmtp | pipe | imap | import
    Column("peer", String(255)),
    Column("mail_from", Text),
    Column("rcpts", JSON, nullable=False),
    Column("size", Integer, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    # received -> processing -> done | duplicate | quarantined -> (retry) received | discarded
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("reason", Text),
    Column("claimed_until", TS),
    Column("processed_at", TS),
    # How the worker treats the message: {"historic": true, "status": "resolved"} for
    # imported history (no mail of any kind, original dates), {"mailbox": NAME, "uid": N}
    # for IMAP. NULL for mail received live over SMTP/LMTP/pipe.
    Column("meta", JSON),
    # 0: live mail; 1: bulk backlog (an IMAP mailbox's first sync, an import). Workers
    # take live mail first, so a 50,000-message backlog never holds new mail up.
    Column("priority", SmallInteger, nullable=False, default=0, server_default="0"),
    # Which process holds the claim (a component name, see roles.component_name): the
    # supervisor releases a dead child's claims at once.
    Column("claimed_by", String(128)),
    # Claimed by a worker that died: processed alone next time, and a worker death while
    # it is alone counts against it (crashes), never against its batch-mates.
    Column("suspect", Boolean, nullable=False, default=False, server_default=false()),
    Column("crashes", Integer, nullable=False, default=0, server_default="0"),
    # When retention ([retention] raw_days) removed the raw bytes (raw is then empty).
    Column("purged_at", TS),
    schema=SPOOL_SCHEMA,
)
Index("ix_inbound_state_id", inbound.c.state, inbound.c.id)
Index("ix_inbound_state_priority_id", inbound.c.state, inbound.c.priority, inbound.c.id)
# Retention's walk over the rows whose raw mail may still go (store/retention.py _raw):
# only rows not yet purged, so an hourly run never reads again what it stripped before.
# processed_at is in the index so mail processed after the cutoff is passed over there.
Index(
    "ix_inbound_unpurged",
    inbound.c.id,
    inbound.c.processed_at,
    sqlite_where=inbound.c.purged_at.is_(None),
    postgresql_where=inbound.c.purged_at.is_(None),
)

# Per IMAP mailbox: where the fetcher is (UIDVALIDITY and the highest UID stored and
# acted on) and how it is doing (what `mailbridge status` shows). In the spool because
# only the intake writes it.
imap_state = Table(
    "imap_state",
    metadata,
    Column("mailbox", String(64), primary_key=True),
    Column("uidvalidity", BigInteger),
    Column("last_uid", BigInteger, nullable=False, default=0),
    Column("stored", BigInteger, nullable=False, default=0),  # messages stored, ever
    Column("failures", Integer, nullable=False, default=0),  # consecutive
    Column("last_error", Text),
    Column("last_ok_at", TS),
    Column("updated_at", TS, nullable=False),
    schema=SPOOL_SCHEMA,
)

# --- tickets --------------------------------------------------------------------------

counters = Table(
    "counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

tickets = Table(
    "tickets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("reference", String(64), nullable=False, unique=True),
    Column("subject", Text, nullable=False),
    Column("requester", String(320), nullable=False),
    Column("requester_name", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False),  # new | open | pending | resolved | closed
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("related_ticket_id", Id, ForeignKey("tickets.id")),
    # Set when an agent merged this ticket into another (#merge): replies go there.
    Column("merged_into", Id, ForeignKey("tickets.id")),
    Column("flood", Boolean, nullable=False, default=False),
    # Incident classification (parsing/incident.py), set by extractors, then by rules.
    Column("type", String(24)),  # incident | service_request
    Column("category", String(64)),
    Column("impact", String(8)),  # high | medium | low
    Column("urgency", String(8)),
    Column("priority", String(8)),  # critical | high | medium | low
    Column("severity", String(24)),  # business-halted | business-interrupted | user-affected
    # Structured incidents (parsers/): which extractor, its fields, and the dedupe key a
    # repeated alert is counted on instead of opening a new ticket.
    Column("extractor", String(64)),
    Column("fields", JSON),
    Column("incident_key", String(255)),
    Column("occurrences", Integer, nullable=False, default=1, server_default="1"),
    Column("last_occurrence_at", TS),
    # Routing (rules/): the queue (a team id), the assigned agent, tags, custom fields.
    Column("queue", String(64)),
    Column("assignee", String(64)),
    Column("tags", JSON),
    Column("custom_fields", JSON),
    # The requester's domain (after the last "@"): the flood limit per domain counts on it.
    Column("requester_domain", String(255)),
    # The customer's language (ISO 639-1), detected from the first mail's new text or set by
    # an agent (#language) or admin; None: the desk's English templates (outbound/render.py).
    Column("language", String(8)),
)
Index("ix_tickets_assignee_status", tickets.c.assignee, tickets.c.status)
# Round-robin assignment: an agent's latest ticket by a seek (routing.Router.assignee).
Index("ix_tickets_assignee_id", tickets.c.assignee, tickets.c.id)
Index("ix_tickets_requester_created", tickets.c.requester, tickets.c.created_at)
Index("ix_tickets_requester_domain_created", tickets.c.requester_domain, tickets.c.created_at)
Index("ix_tickets_status", tickets.c.status)
# /metrics' open tickets by priority, read from the index alone.
Index("ix_tickets_status_priority", tickets.c.status, tickets.c.priority, tickets.c.merged_into)
Index("ix_tickets_incident_key", tickets.c.incident_key, tickets.c.status)

participants = Table(
    "participants",
    metadata,
    Column("ticket_id", Id, ForeignKey("tickets.id"), primary_key=True),
    Column("address", String(320), primary_key=True),
    Column("name", Text, nullable=False, default=""),
    Column("role", String(16), nullable=False),  # requester | cc | agent
    Column("added_at", TS, nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # NULL for a bounce or auto-reply that matches none of our tickets: kept, not lost.
    Column("ticket_id", Id, ForeignKey("tickets.id")),
    # The spool row this message came from; unique so reprocessing is idempotent.
    Column("inbound_id", Id, unique=True),
    Column("direction", String(8), nullable=False),  # in | out
    Column("message_id", Text),
    Column("dedupe_key", String(64), unique=True),
    Column("from_address", String(320), nullable=False, default=""),
    Column("from_name", Text, nullable=False, default=""),
    Column("subject", Text, nullable=False, default=""),
    Column("sent_at", TS),
    Column("text", Text, nullable=False, default=""),
    Column("text_source", String(8), nullable=False, default="none"),
    Column("created_at", TS, nullable=False),
    # The new text of the message, quoted history and signature removed (parsing/reply.py).
    Column("reply_text", Text),
    # normal | auto_reply | bounce | bulk | loop (parsing/classify.py), and why.
    Column("classification", String(16), nullable=False, default="normal", server_default="normal"),
    Column("classification_reason", Text),
    # The HTML body after the allow-list sanitiser; the raw HTML is never stored.
    Column("safe_html", Text),
    # A calendar invitation's method, summary, start and organizer (parsing/calendar.py).
    Column("calendar", JSON),
    # An internal note (#note, or an agent's mail that could not act): never shown or
    # sent to the requester.
    Column("internal", Boolean, nullable=False, default=False, server_default=false()),
    # The agent id of an agent's mail (authenticated or not: see the ticket's events).
    Column("author", String(64)),
)
Index("ix_messages_ticket", messages.c.ticket_id, messages.c.id)

attachments = Table(
    "attachments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", Id, ForeignKey("messages.id"), nullable=False, index=True),
    Column("stored_name", String(64), nullable=False, unique=True),  # generated, never user text
    Column("filename", Text, nullable=False),  # sanitised original name
    Column("original_filename", Text),
    Column("content_type", String(255), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("inline", Boolean, nullable=False, default=False),
    Column("data", LargeBinary, nullable=False),
    # file | message (an attached mail) | calendar | tnef; a winmail.dat's files say so in
    # extracted_from; an attached mail has its parsed summary (subject, from, date, excerpt).
    Column("kind", String(16), nullable=False, default="file", server_default="file"),
    Column("extracted_from", Text),
    Column("summary", JSON),
)

# Every Message-ID we stored or sent, and every ID a stored message references: lets a
# parent that arrives after its reply still find the reply's ticket (threading must not
# depend on arrival order).
thread_index = Table(
    "thread_index",
    metadata,
    Column("msgid", String(998), primary_key=True),
    Column("ticket_id", Id, ForeignKey("tickets.id"), primary_key=True),
    Column("kind", String(4), nullable=False),  # own | ref
)
Index("ix_thread_index_ticket", thread_index.c.ticket_id)

reply_tokens = Table(
    "reply_tokens",
    metadata,
    Column("id", String(32), primary_key=True),  # hex of the token's random part
    Column("ticket_id", Id, ForeignKey("tickets.id"), nullable=False),
    Column("address", String(320), nullable=False),
    Column("purpose", String(16), nullable=False, default="reply"),
    Column("created_at", TS, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ticket_id", Id, ForeignKey("tickets.id"), nullable=False),
    Column("at", TS, nullable=False),
    Column("type", String(32), nullable=False),
    Column("actor", String(320), nullable=False),
    Column("data", JSON, nullable=False),
)
Index("ix_events_ticket", events.c.ticket_id, events.c.id)
Index("ix_events_type_at", events.c.type, events.c.at)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ticket_id", Id, ForeignKey("tickets.id")),
    Column("kind", String(32), nullable=False),  # acknowledgement, ...
    Column("message_id", Text, nullable=False, unique=True),
    Column("mail_from", String(320), nullable=False),
    Column("rcpt", String(320), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    # queued | held | sending | sent | failed | rejected | unrendered
    Column("state", String(16), nullable=False),
    # Why an outgoing rule holds it for a supervisor (held), or why it was rejected.
    Column("hold_reason", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", TS, nullable=False),
    Column("claimed_until", TS),
    Column("last_error", Text),
    Column("created_at", TS, nullable=False),
    Column("sent_at", TS),
    Column("claimed_by", String(128)),
    # Deliveries whose outcome is unknown (no answer to the end of data: a timeout, or
    # the sender died waiting for it); such a mail is retried at most once.
    Column("unknown_outcomes", SmallInteger, nullable=False, default=0, server_default="0"),
    # Further envelope recipients of the same copy (the first one is `rcpt`).
    Column("extra_rcpts", JSON),
    # The mail template it was rendered from (None: written by a person).
    Column("template", String(64)),
    # state "unrendered": the template failed on this mail's data; what it takes to render
    # and compose it after the next good reload (outbound/unrendered.py); raw is empty.
    Column("render", JSON),
)
Index("ix_outbox_state_next", outbox.c.state, outbox.c.next_attempt_at)
Index("ix_outbox_rcpt_created", outbox.c.rcpt, outbox.c.created_at)
# A ticket's outgoing mail (rule responses' repeat check, the conversation, retention):
# without it each such lookup read the whole outbox, which keeps every mail ever sent.
Index("ix_outbox_ticket", outbox.c.ticket_id, outbox.c.id)

# A bounce of a mail we sent: which address failed, how, and for which ticket/outgoing mail.
delivery_failures = Table(
    "delivery_failures",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", Id, ForeignKey("messages.id"), nullable=False, index=True),  # the bounce
    Column("ticket_id", Id, ForeignKey("tickets.id"), index=True),
    Column("outbox_id", Id, ForeignKey("outbox.id")),
    Column("address", String(320), nullable=False),
    Column("status", String(16)),  # RFC 3463 status, e.g. 5.1.1
    Column("temporary", Boolean, nullable=False),
    Column("diagnostic", Text),
    Column("at", TS, nullable=False),
)

# Addresses that bounced permanently: no automatic mail goes to them again.
undeliverable = Table(
    "undeliverable",
    metadata,
    Column("address", String(320), primary_key=True),
    Column("status", String(16)),
    Column("diagnostic", Text),
    Column("first_at", TS, nullable=False),
    Column("last_at", TS, nullable=False),
    Column("bounces", Integer, nullable=False, default=1),
)

# Which processes run where: what `mailbridge status` shows.
components = Table(
    "components",
    metadata,
    Column("name", String(160), primary_key=True),  # e.g. "worker-1@host:1a2b3c4d" (roles.component_name)
    Column("kind", String(16), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("listen", String(255)),
    Column("started_at", TS, nullable=False),
    Column("heartbeat_at", TS, nullable=False),
    UniqueConstraint("name"),
)

# Published knowledge articles (Markdown files in [knowledge] dir), mirrored for the
# database's own full-text search: knowledge/index.py keeps the rows in step with the
# files. The search structures are per dialect and live outside this metadata (migration
# 0003): on SQLite an FTS5 table kb_fts (porter stemming) kept in step by triggers, on
# PostgreSQL generated tsvector columns search / title_search ('english') with a GIN index.
kb_articles = Table(
    "kb_articles",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("path", String(500), nullable=False, unique=True),  # relative to the folder, "/"-separated
    Column("title", Text, nullable=False),
    Column("keywords", Text, nullable=False),  # space-separated
    Column("body", Text, nullable=False),  # the Markdown as plain text
    Column("summary", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("digest", String(64), nullable=False),  # sha256 of the file: unchanged files are skipped
    Column("indexed_at", TS, nullable=False),
)

# SLA clocks (sla/): one row per ticket and target (first_response, next_update, restore,
# resolution). The sweep is a query over due rows: (state, next_action_at) is indexed,
# so its cost follows the number of due timers, not the number of tickets.
sla_clocks = Table(
    "sla_clocks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ticket_id", Id, ForeignKey("tickets.id"), nullable=False),
    Column("target", String(16), nullable=False),
    Column("policy", String(64), nullable=False),
    Column("calendar", String(64), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("target_seconds", Integer, nullable=False),
    Column("pauses", JSON, nullable=False),  # [[from, to | null], ...] as ISO UTC
    Column("state", String(8), nullable=False),  # running | paused | met | stopped
    Column("cycle", Integer, nullable=False, default=1),  # next_update restarts with each answer
    Column("due_at", TS),  # as of the last computation (None while paused)
    Column("remind_at", TS),
    Column("breached_at", TS),
    Column("met_at", TS),
    Column("level", SmallInteger, nullable=False, default=0),  # 0, 1 reminded, 2 breach, 3+ escalated
    Column("last_notice_at", TS),
    Column("acked_at", TS),  # someone acted after the breach: no more repeats
    Column("next_action_at", TS),  # when the sweep must look at it again (None: never)
    UniqueConstraint("ticket_id", "target"),
)
Index("ix_sla_clocks_due", sla_clocks.c.state, sla_clocks.c.next_action_at)

# What the sweep has sent, per clock, cycle and level: the key that makes a reminder or an
# escalation go out exactly once, whatever crashes and restarts happen around it.
sla_notices = Table(
    "sla_notices",
    metadata,
    Column("clock_id", Id, ForeignKey("sla_clocks.id"), primary_key=True),
    Column("cycle", Integer, primary_key=True),
    Column("level", SmallInteger, primary_key=True),
    Column("at", TS, nullable=False),
)

# Tickets pending on the requester (sla/waiting.py): one row per ticket, armed again
# (cycle + 1) each time the ticket becomes pending or gets an explicit date; the sweep
# looks at rows whose next_action_at has come (indexed), like the SLA clocks.
pending_timers = Table(
    "pending_timers",
    metadata,
    Column("ticket_id", Id, ForeignKey("tickets.id"), primary_key=True),
    Column("cycle", Integer, nullable=False),
    Column("since", TS, nullable=False),  # when the ticket became pending (or got its date)
    Column("until", Date),  # `#status pending until=DATE`: the reminder's date, desk time zone
    Column("step", SmallInteger, nullable=False),  # 0 waiting, 1 reminded, 2 resolved
    Column("remind_at", TS),  # as last computed by the sweep
    Column("close_at", TS),
    Column("next_action_at", TS),  # None: nothing more to do (no longer pending, or done)
)
Index("ix_pending_timers_next_action_at", pending_timers.c.next_action_at)

# What the sweep did per ticket, cycle and step (1 reminder, 2 resolved): the key that
# makes each go out once, as sla_notices does for the SLA notices.
pending_notices = Table(
    "pending_notices",
    metadata,
    Column("ticket_id", Id, ForeignKey("tickets.id"), primary_key=True),
    Column("cycle", Integer, primary_key=True),
    Column("step", SmallInteger, primary_key=True),
    Column("at", TS, nullable=False),
)

# Which process runs the scheduler: with several daemons on one database, the one holding
# an unexpired lease (renewed while it runs) is the only active scheduler.
scheduler_lease = Table(
    "scheduler_lease",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("expires_at", TS, nullable=False),
)

# APScheduler's job store (sla/scheduler.py: SQLAlchemyJobStore, tablename
# "apscheduler_jobs"), declared as APScheduler 3 declares it so that the migrations
# create it before any child starts.
apscheduler_jobs = Table(
    "apscheduler_jobs",
    metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)

# Monotonic counters behind /metrics (store/counters.py): only ever increased, in the
# transaction of what they count, so a purge, a discard or a retry never lowers one.
# Histogram buckets are counters too ("name{le=...}"). Spool-side counts (received,
# processed, quarantined, latency) live in the spool database, written with the spool rows.
metric_counts = Table(
    "metric_counts",
    metadata,
    Column("name", String(160), primary_key=True),
    Column("value", Float, nullable=False),
)
spool_counts = Table(
    "spool_counts",
    metadata,
    Column("name", String(160), primary_key=True),
    Column("value", Float, nullable=False),
    schema=SPOOL_SCHEMA,
)

# Whether the rules, extractors or templates in use are what is on disk: stale after a
# refused reload (the previous set stays in force), fresh again after a good one.
config_state = Table(
    "config_state",
    metadata,
    Column("kind", String(32), primary_key=True),  # rules | extractors | templates
    Column("stale", Boolean, nullable=False),
    Column("error", Text),
    Column("changed_at", TS, nullable=False),
)

# A sender's flood (tickets/senderflood.py): past [autoreply] flood_threshold new tickets
# in the window, further mail from the address joins this ticket and is counted here,
# until a whole window passes without any.
sender_floods = Table(
    "sender_floods",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("address", String(320), nullable=False),
    Column("ticket_id", Id, ForeignKey("tickets.id"), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("last_at", TS, nullable=False),
    # Mails in the flood: the one that opened the ticket and every one that joined it.
    Column("mails", Integer, nullable=False),
)
Index("ix_sender_floods_address_last", sender_floods.c.address, sender_floods.c.last_at)
Index("ix_sender_floods_last", sender_floods.c.last_at)

# What admins did to the data as a whole: purges (counts), erasures (no address),
# backups and restores. Never customer content.
admin_log = Table(
    "admin_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", TS, nullable=False),
    Column("action", String(32), nullable=False),
    Column("data", JSON, nullable=False),
)

# The sender's journal on PostgreSQL (outbound/journal.DbJournal): each mail's final "."
# and the relay's verdict, by the sender that holds the row, readable by every daemon
# (one that dies is settled by the others). On SQLite the journal is a file.
outbox_journal = Table(
    "outbox_journal",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("holder", String(160), nullable=False),
    Column("outbox_id", Id, nullable=False),
    Column("state", String(16), nullable=False),
    Column("detail", Text),
    Column("refused", JSON),
)
Index("ix_outbox_journal_holder", outbox_journal.c.holder, outbox_journal.c.id)

# Contacts (tickets/contacts.py): one person behind several mail addresses. A follow-up
# from any of a participant's contact's addresses counts as that participant. A contact
# merged into another keeps its row (merged_into, merged_at) so the merge stays on record.
organisations = Table(
    "organisations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", Unicode(200), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
)

# An organisation's mail domains: an address at one of them is a member.
organisation_domains = Table(
    "organisation_domains",
    metadata,
    Column("domain", String(255), primary_key=True),
    Column("organisation_id", Id, ForeignKey("organisations.id"), nullable=False),
)
Index("ix_organisation_domains_organisation_id", organisation_domains.c.organisation_id)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, default=""),
    # An explicit member of an organisation (besides membership by domain).
    Column("organisation_id", Id, ForeignKey("organisations.id")),
    Column("created_at", TS, nullable=False),
    Column("merged_into", Id, ForeignKey("contacts.id")),
    Column("merged_at", TS),
)

# Each address (lowercase) belongs to at most one contact.
contact_addresses = Table(
    "contact_addresses",
    metadata,
    Column("address", String(320), primary_key=True),
    Column("contact_id", Id, ForeignKey("contacts.id"), nullable=False),
    Column("added_at", TS, nullable=False),
)
Index("ix_contact_addresses_contact_id", contact_addresses.c.contact_id)

# --- webhooks (mailbridge/webhooks/) ---------------------------------------------------

# One event for one [[webhooks]] endpoint: written in the transaction that records the
# event (the outbox pattern), sent by the sender role (webhooks/dispatch.py).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("webhook", String(64), nullable=False),  # [[webhooks]] name
    # The event's id in the payload; with the webhook's name, the Idempotency-Key.
    Column("event_id", String(36), nullable=False),
    Column("event", String(32), nullable=False),  # created, status_changed, ...
    Column("ticket_id", Id, ForeignKey("tickets.id"), nullable=False),
    # The payload without sent_at (set at each attempt), frozen when the event happened.
    Column("payload", JSON, nullable=False),
    # pending | sending | sent | failed
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", TS, nullable=False),
    # Since when it waits (reset by `mailbridge webhooks retry`): given up after max_age_hours.
    Column("queued_at", TS, nullable=False),
    Column("claimed_until", TS),
    Column("claimed_by", String(128)),
    Column("last_error", Text),
    Column("last_status", Integer),  # the endpoint's last HTTP status
    Column("created_at", TS, nullable=False),
    Column("sent_at", TS),
    UniqueConstraint("webhook", "event_id"),
)
Index("ix_webhook_deliveries_state_next", webhook_deliveries.c.state, webhook_deliveries.c.next_attempt_at)
# In order per ticket: is an earlier delivery of this webhook and ticket still unsent?
Index(
    "ix_webhook_deliveries_order",
    webhook_deliveries.c.webhook,
    webhook_deliveries.c.ticket_id,
    webhook_deliveries.c.id,
)
Index("ix_webhook_deliveries_ticket", webhook_deliveries.c.ticket_id)

# Each endpoint's circuit breaker: consecutive failures, and until when it rests.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("failures", Integer, nullable=False, default=0),  # consecutive
    Column("open_until", TS),  # the breaker is open (no attempts) until then
    Column("last_error", Text),
    Column("last_failure_at", TS),
    Column("last_success_at", TS),
)
