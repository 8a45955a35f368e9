"""agents by mail: merged tickets, internal notes, authors

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:45:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ADD COLUMN: a batch (table copy) on SQLite would have to drop tickets and
    # messages, which the rows of other tables reference; SQLite accepts REFERENCES in
    # ADD COLUMN, alembic does not emit it there.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE tickets ADD COLUMN merged_into INTEGER REFERENCES tickets (id)")
    else:
        op.add_column("tickets", sa.Column("merged_into", _ID, nullable=True))
        op.create_foreign_key(op.f("fk_tickets_merged_into_tickets"), "tickets", "tickets", ["merged_into"], ["id"])
    op.add_column("messages", sa.Column("internal", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("messages", sa.Column("author", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "author")
    op.drop_column("messages", "internal")
    op.drop_column("tickets", "merged_into")
