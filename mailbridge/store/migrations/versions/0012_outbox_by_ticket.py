"""Outgoing mail by ticket: an index on outbox (ticket_id, id)

Every lookup of a ticket's outgoing mail (a rule's response to a follow-up checks what
already went to the ticket, pipeline._RESPONSE_CHECKS; the conversation view; retention
and erasure by ticket) scanned the whole outbox, which keeps every mail ever sent
(bench/storage.py: 1,000,000 rows, 1.4 GB, on a desk of 1,000,000 tickets).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 04:35:00.000000
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_ticket", "outbox", ["ticket_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_ticket", table_name="outbox")
