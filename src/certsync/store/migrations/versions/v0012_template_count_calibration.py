"""Each template says whether Monotree's `active_users_count` matched the holders read.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("template_state") as table:
        table.add_column(sa.Column("count_matches", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("template_state") as table:
        table.drop_column("count_matches")
