"""Outgoing mail whose template failed at run time is kept: the outbox's template and
render columns (state "unrendered", rendered after the next good reload of the templates)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 00:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("render", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("render")
        batch_op.drop_column("template")
