"""Sender floods: one ticket collects a flooding sender's mail (tickets/senderflood.py)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 00:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sender_floods",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("ticket_id", Id, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("last_at", TS, nullable=False),
        sa.Column("mails", sa.Integer(), nullable=False),
    )
    op.create_index("ix_sender_floods_address_last", "sender_floods", ["address", "last_at"])
    op.create_index("ix_sender_floods_last", "sender_floods", ["last_at"])


def downgrade() -> None:
    op.drop_index("ix_sender_floods_last", table_name="sender_floods")
    op.drop_index("ix_sender_floods_address_last", table_name="sender_floods")
    op.drop_table("sender_floods")
