"""The pull snapshot's whole-body digest was written every cycle and never read.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pull_snapshot") as snapshot:
        snapshot.drop_column("digest")


def downgrade() -> None:
    with op.batch_alter_table("pull_snapshot") as snapshot:
        snapshot.add_column(sa.Column("digest", sa.String(), nullable=False, server_default=""))
