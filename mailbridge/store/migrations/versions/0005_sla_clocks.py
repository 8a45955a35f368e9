"""SLA clocks, the notices sent for them, the scheduler lease

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 17:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sla_clocks",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("ticket_id", _ID, nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("calendar", sa.String(length=64), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("target_seconds", sa.Integer(), nullable=False),
        sa.Column("pauses", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("due_at", _TS, nullable=True),
        sa.Column("remind_at", _TS, nullable=True),
        sa.Column("breached_at", _TS, nullable=True),
        sa.Column("met_at", _TS, nullable=True),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("last_notice_at", _TS, nullable=True),
        sa.Column("acked_at", _TS, nullable=True),
        sa.Column("next_action_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_sla_clocks_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_clocks")),
        sa.UniqueConstraint("ticket_id", "target", name=op.f("uq_sla_clocks_ticket_id")),
    )
    op.create_index("ix_sla_clocks_due", "sla_clocks", ["state", "next_action_at"], unique=False)
    op.create_table(
        "sla_notices",
        sa.Column("clock_id", _ID, nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["clock_id"], ["sla_clocks.id"], name=op.f("fk_sla_notices_clock_id_sla_clocks")),
        sa.PrimaryKeyConstraint("clock_id", "cycle", "level", name=op.f("pk_sla_notices")),
    )

    op.create_table(
        "scheduler_lease",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_lease")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_lease")
    op.drop_table("sla_notices")
    op.drop_index("ix_sla_clocks_due", table_name="sla_clocks")
    op.drop_table("sla_clocks")
