"""Fault tolerance: who holds a claim, crash suspects, unknown delivery outcomes,
several envelope recipients for one outgoing copy

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 21:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("inbound", schema="spool") as batch_op:
        # Which process holds the claim (component name), so the supervisor can release
        # a dead child's claims at once instead of waiting for the lease.
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))
        # Claimed by a worker that died: processed alone next time, so that only the
        # mail that kills the worker is counted against (crashes).
        batch_op.add_column(sa.Column("suspect", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("crashes", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))
        # Deliveries whose outcome is unknown (the relay's answer to the end of data never
        # came: a timeout, or the sender died waiting); retried at most once.
        batch_op.add_column(sa.Column("unknown_outcomes", sa.SmallInteger(), server_default="0", nullable=False))
        # Further envelope recipients of the same copy (the first is `rcpt`).
        batch_op.add_column(sa.Column("extra_rcpts", sa.JSON(), nullable=True))
    # APScheduler's job store (sla/scheduler.py), created here rather than by the
    # scheduler child at its first start, where it raced the other children for the
    # write lock. Earlier versions let APScheduler create it: keep theirs.
    if not sa.inspect(op.get_bind()).has_table("apscheduler_jobs"):
        op.create_table(
            "apscheduler_jobs",
            sa.Column("id", sa.Unicode(length=191), nullable=False),
            sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
            sa.Column("job_state", sa.LargeBinary(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs", ["next_run_time"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("extra_rcpts")
        batch_op.drop_column("unknown_outcomes")
        batch_op.drop_column("claimed_by")
    with op.batch_alter_table("inbound", schema="spool") as batch_op:
        batch_op.drop_column("crashes")
        batch_op.drop_column("suspect")
        batch_op.drop_column("claimed_by")
