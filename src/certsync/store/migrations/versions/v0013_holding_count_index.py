"""An index that covers the count of each template's known holdings by their dates.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_COLUMNS = ["certificate_id", "active", "expiry_known", "expires_on", "issued_on"]


def upgrade() -> None:
    op.create_index("ix_known_holding_count", "known_holding", _COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_known_holding_count", table_name="known_holding")
