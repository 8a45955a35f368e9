"""Alembic environment: runs migrations on the connection mailbridge hands over."""

from alembic import context

from mailbridge.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through mailbridge.store.migrate
    raise RuntimeError("run migrations with `mailbridge db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    include_schemas=True,
    render_as_batch=connection.dialect.name == "sqlite",
)
context.run_migrations()
