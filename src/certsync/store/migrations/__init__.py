"""Alembic's migrations of the store, made from `store.tables` (the one place the schema is
written) and checked against it by the test suite. `store.schema` runs them."""
