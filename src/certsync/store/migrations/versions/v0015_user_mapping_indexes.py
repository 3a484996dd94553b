"""Indexes on the user mappings' Monotree id and email.

Every incremental cycle asks which user mappings name no Monotree id, and whether any
names an email; a webhook's sync asks which name some users. Without an index each
was a scan of every user mapping (25,000 in a large tenant: 15 ms of a quiet cycle).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_user_mapping_monotree", "user_mapping", ["monotree"])
    op.create_index("ix_user_mapping_monotree_email", "user_mapping", ["monotree_email"])


def downgrade() -> None:
    op.drop_index("ix_user_mapping_monotree_email", table_name="user_mapping")
    op.drop_index("ix_user_mapping_monotree", table_name="user_mapping")
