"""knowledge articles and their full-text index

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 16:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# SQLite: an external-content FTS5 table over kb_articles, kept in step by triggers
# (the pattern of the FTS5 documentation, section 4.4.3). Porter stemming on top of
# unicode61, diacritics folded: "disconnecting" finds "disconnects", "café" finds "cafe".
_SQLITE = [
    "CREATE VIRTUAL TABLE kb_fts USING fts5(title, keywords, body, content='kb_articles',"
    " content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER kb_articles_ai AFTER INSERT ON kb_articles BEGIN"
    " INSERT INTO kb_fts(rowid, title, keywords, body) VALUES (new.id, new.title, new.keywords, new.body); END",
    "CREATE TRIGGER kb_articles_ad AFTER DELETE ON kb_articles BEGIN"
    " INSERT INTO kb_fts(kb_fts, rowid, title, keywords, body)"
    " VALUES ('delete', old.id, old.title, old.keywords, old.body); END",
    "CREATE TRIGGER kb_articles_au AFTER UPDATE ON kb_articles BEGIN"
    " INSERT INTO kb_fts(kb_fts, rowid, title, keywords, body)"
    " VALUES ('delete', old.id, old.title, old.keywords, old.body);"
    " INSERT INTO kb_fts(rowid, title, keywords, body) VALUES (new.id, new.title, new.keywords, new.body); END",
]
# PostgreSQL: generated tsvectors (English stemming and stop words) and a GIN index.
_POSTGRES = [
    "ALTER TABLE kb_articles ADD COLUMN search tsvector GENERATED ALWAYS AS"
    " (to_tsvector('english', title || ' ' || keywords || ' ' || body)) STORED",
    "ALTER TABLE kb_articles ADD COLUMN title_search tsvector GENERATED ALWAYS AS"
    " (to_tsvector('english', title || ' ' || keywords)) STORED",
    "CREATE INDEX ix_kb_articles_search ON kb_articles USING gin (search)",
]


def upgrade() -> None:
    op.create_table(
        "kb_articles",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("keywords", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_articles")),
        sa.UniqueConstraint("path", name=op.f("uq_kb_articles_path")),
    )
    for statement in _SQLITE if op.get_bind().dialect.name == "sqlite" else _POSTGRES:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("kb_articles_ai", "kb_articles_ad", "kb_articles_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS kb_fts")
    op.drop_table("kb_articles")
