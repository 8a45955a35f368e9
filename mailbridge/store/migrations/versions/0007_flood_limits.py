"""Flood limits: the requester's domain on tickets (new tickets per domain), and the
outbox by recipient (explanations to one agent per hour)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requester_domain", sa.String(length=255), nullable=True))
        batch_op.create_index("ix_tickets_requester_domain_created", ["requester_domain", "created_at"], unique=False)
    # The text after the last "@" (requesters are stored lowercased). SQLite has no
    # function for the last occurrence: rtrim() by every other character of the value
    # leaves the value up to its last "@".
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "UPDATE tickets SET requester_domain ="
            " substr(requester, length(rtrim(requester, replace(requester, '@', ''))) + 1)"
            " WHERE instr(requester, '@') > 0"
        )
    else:
        op.execute(
            "UPDATE tickets SET requester_domain = substring(requester from '@([^@]*)$') WHERE requester LIKE '%@%'"
        )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_rcpt_created", ["rcpt", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_rcpt_created")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_requester_domain_created")
        batch_op.drop_column("requester_domain")
