"""Spool rows not yet purged, by id: hourly retention reads only what it may still strip,
not every message of all history (mailbridge/store/retention.py)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 13:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A partial index: rows purged already are not in it, so it holds the live set.
    op.create_index(
        "ix_inbound_unpurged",
        "inbound",
        ["id", "processed_at"],
        unique=False,
        schema="spool",
        sqlite_where=sa.text("purged_at IS NULL"),
        postgresql_where=sa.text("purged_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_unpurged", table_name="inbound", schema="spool")
