"""Contacts and organisations: one person behind several addresses (tickets/contacts.py)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 07:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("name", sa.Unicode(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
    )
    op.create_table(
        "organisation_domains",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("organisation_id", Id, nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_organisation_domains_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_organisation_domains")),
    )
    op.create_index("ix_organisation_domains_organisation_id", "organisation_domains", ["organisation_id"])
    op.create_table(
        "contacts",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("organisation_id", Id, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("merged_into", Id, nullable=True),
        sa.Column("merged_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"], name=op.f("fk_contacts_organisation_id_organisations")
        ),
        sa.ForeignKeyConstraint(["merged_into"], ["contacts.id"], name=op.f("fk_contacts_merged_into_contacts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    op.create_table(
        "contact_addresses",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("contact_id", Id, nullable=False),
        sa.Column("added_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_contact_addresses_contact_id_contacts")),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_contact_addresses")),
    )
    op.create_index("ix_contact_addresses_contact_id", "contact_addresses", ["contact_id"])


def downgrade() -> None:
    op.drop_index("ix_contact_addresses_contact_id", table_name="contact_addresses")
    op.drop_table("contact_addresses")
    op.drop_table("contacts")
    op.drop_index("ix_organisation_domains_organisation_id", table_name="organisation_domains")
    op.drop_table("organisation_domains")
    op.drop_table("organisations")
