"""Operations: monotonic metric counters, the state of the admins' files in use, the
admin log (purges, erasures, backups), raw mail purged by retention; the sender's journal
in the database and longer component names (several daemons on one PostgreSQL)

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-06 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "metric_counts",
        sa.Column("name", sa.String(length=160), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "spool_counts",
        sa.Column("name", sa.String(length=160), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
        schema="spool",
    )
    op.create_table(
        "config_state",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("changed_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("kind"),
    )
    op.create_table(
        "admin_log",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("inbound", schema="spool") as batch_op:
        batch_op.add_column(sa.Column("purged_at", _TS, nullable=True))
    # /metrics' open tickets by priority read from the index alone (no row per ticket).
    op.create_index("ix_tickets_status_priority", "tickets", ["status", "priority", "merged_into"], unique=False)
    # Several daemons on one PostgreSQL: the sender's journal readable by all,
    # and component names that carry the daemon's instance.
    op.create_table(
        "outbox_journal",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("holder", sa.String(length=160), nullable=False),
        sa.Column("outbox_id", _ID, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("refused", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_outbox_journal_holder", "outbox_journal", ["holder", "id"], unique=False)
    with op.batch_alter_table("components", schema=None) as batch_op:
        batch_op.alter_column("name", existing_type=sa.String(length=64), type_=sa.String(length=160))


def downgrade() -> None:
    with op.batch_alter_table("components", schema=None) as batch_op:
        batch_op.alter_column("name", existing_type=sa.String(length=160), type_=sa.String(length=64))
    op.drop_index("ix_outbox_journal_holder", table_name="outbox_journal")
    op.drop_table("outbox_journal")
    op.drop_index("ix_tickets_status_priority", table_name="tickets")
    with op.batch_alter_table("inbound", schema="spool") as batch_op:
        batch_op.drop_column("purged_at")
    op.drop_table("admin_log")
    op.drop_table("config_state")
    op.drop_table("spool_counts", schema="spool")
    op.drop_table("metric_counts")
