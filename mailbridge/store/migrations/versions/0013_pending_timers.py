"""Pending tickets: the reminder to the requester and the resolution without a reply (sla/waiting.py)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 04:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_timers",
        sa.Column("ticket_id", Id, nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("since", TS, nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("step", sa.SmallInteger(), nullable=False),
        sa.Column("remind_at", TS, nullable=True),
        sa.Column("close_at", TS, nullable=True),
        sa.Column("next_action_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_pending_timers_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_pending_timers")),
    )
    op.create_index("ix_pending_timers_next_action_at", "pending_timers", ["next_action_at"])
    op.create_table(
        "pending_notices",
        sa.Column("ticket_id", Id, nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("step", sa.SmallInteger(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_pending_notices_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("ticket_id", "cycle", "step", name=op.f("pk_pending_notices")),
    )


def downgrade() -> None:
    op.drop_table("pending_notices")
    op.drop_index("ix_pending_timers_next_action_at", table_name="pending_timers")
    op.drop_table("pending_timers")
