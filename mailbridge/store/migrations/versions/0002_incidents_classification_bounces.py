"""incidents, classification, bounces, IMAP state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:46:12.121528
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imap_state",
        sa.Column("mailbox", sa.String(length=64), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("stored", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_ok_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mailbox", name=op.f("pk_imap_state")),
        schema="spool",
    )
    with op.batch_alter_table("inbound", schema="spool") as batch_op:
        batch_op.add_column(sa.Column("meta", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.SmallInteger(), server_default="0", nullable=False))
        batch_op.create_index("ix_inbound_state_priority_id", ["state", "priority", "id"], unique=False)
    op.create_table(
        "undeliverable",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("diagnostic", sa.Text(), nullable=True),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bounces", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_undeliverable")),
    )
    op.create_table(
        "delivery_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("outbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("temporary", sa.Boolean(), nullable=False),
        sa.Column("diagnostic", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], name=op.f("fk_delivery_failures_message_id_messages")),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"], name=op.f("fk_delivery_failures_outbox_id_outbox")),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_delivery_failures_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_failures")),
    )
    with op.batch_alter_table("delivery_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_failures_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_delivery_failures_ticket_id"), ["ticket_id"], unique=False)

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reply_text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("classification", sa.String(length=16), server_default="normal", nullable=False))
        batch_op.add_column(sa.Column("classification_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("safe_html", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("calendar", sa.JSON(), nullable=True))
        batch_op.alter_column(
            "ticket_id", existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        )

    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="file", nullable=False))
        batch_op.add_column(sa.Column("extracted_from", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("summary", sa.JSON(), nullable=True))

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("type", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("category", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("impact", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("urgency", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("severity", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("extractor", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("fields", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("incident_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("occurrences", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("last_occurrence_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_tickets_incident_key", ["incident_key", "status"], unique=False)
        batch_op.add_column(sa.Column("queue", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("assignee", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("custom_fields", sa.JSON(), nullable=True))
        batch_op.create_index("ix_tickets_assignee_status", ["assignee", "status"], unique=False)

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hold_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound", schema="spool") as batch_op:
        batch_op.drop_index("ix_inbound_state_priority_id")
        batch_op.drop_column("priority")
        batch_op.drop_column("meta")
    op.drop_table("imap_state", schema="spool")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("hold_reason")

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_assignee_status")
        batch_op.drop_column("custom_fields")
        batch_op.drop_column("tags")
        batch_op.drop_column("assignee")
        batch_op.drop_column("queue")
        batch_op.drop_index("ix_tickets_incident_key")
        batch_op.drop_column("last_occurrence_at")
        batch_op.drop_column("occurrences")
        batch_op.drop_column("incident_key")
        batch_op.drop_column("fields")
        batch_op.drop_column("extractor")
        batch_op.drop_column("severity")
        batch_op.drop_column("priority")
        batch_op.drop_column("urgency")
        batch_op.drop_column("impact")
        batch_op.drop_column("category")
        batch_op.drop_column("type")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.alter_column(
            "ticket_id", existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        )
        batch_op.drop_column("calendar")
        batch_op.drop_column("safe_html")
        batch_op.drop_column("classification_reason")
        batch_op.drop_column("classification")
        batch_op.drop_column("reply_text")

    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_column("summary")
        batch_op.drop_column("extracted_from")
        batch_op.drop_column("kind")

    with op.batch_alter_table("delivery_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_failures_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_delivery_failures_message_id"))

    op.drop_table("delivery_failures")
    op.drop_table("undeliverable")
