"""Alembic keeps the version from here on: the first releases' own table goes.

Stores written before Alembic are stamped at their certsync_schema version
(0001 or 0002) and then come through here; a new store never had the table.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("DROP TABLE IF EXISTS certsync_schema"))


def downgrade() -> None:
    op.create_table(
        "certsync_schema",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.execute(sa.text("INSERT INTO certsync_schema (id, version) VALUES (1, 2)"))
