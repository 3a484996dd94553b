"""Alembic's environment: always on the connection certsync hands over, never a URL."""

from __future__ import annotations

from alembic import context

from certsync.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters a table by copying it; PostgreSQL alters in place.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
