"""The customer's language on the ticket (parsing/language.py, tickets/language.py)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 07:25:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: tickets from before, and tickets whose first mail said too little, have no
    # language and get the desk's (English) templates.
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("language", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("language")
