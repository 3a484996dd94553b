"""Held-back plans say which rule of the guard held them (mass-revoke, empty-pull).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("held_plan") as table:
        table.add_column(
            sa.Column("kind", sa.String(), nullable=False, server_default="mass-revoke")
        )


def downgrade() -> None:
    with op.batch_alter_table("held_plan") as table:
        table.drop_column("kind")
