"""A run's exit code is the command's, not the journal's: the journal keeps the outcome.

The command line maps an outcome (and an error's kind) to its exit code; a
daemon's cycle has no exit code at all. Every run row is kept.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run") as run:
        run.drop_column("exit_code")


def downgrade() -> None:
    with op.batch_alter_table("run") as run:
        run.add_column(sa.Column("exit_code", sa.Integer(), nullable=True))
