"""Tickets by assignee and id: round-robin assignment finds each agent's latest ticket by
an index seek, not by reading every ticket the agent ever had (mailbridge/routing.py)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 12:00:00.000000
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_assignee_id", "tickets", ["assignee", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tickets_assignee_id", table_name="tickets")
