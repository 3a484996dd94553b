"""Mappings the file no longer names are remembered, so what they explained is kept.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "removed_mapping",
        sa.Column("kind", sa.String(), primary_key=True),
        sa.Column("natecosmic", sa.String(), primary_key=True),
        sa.Column("monotree", sa.Integer(), nullable=True),
        sa.Column("monotree_email", sa.String(), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("removed_mapping")
