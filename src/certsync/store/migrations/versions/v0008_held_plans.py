"""Revocations the guard held back are kept under their run until a person decides.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "held_plan",
        sa.Column("run_id", sa.String(), sa.ForeignKey("run.id"), primary_key=True),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("digests", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_run_id", sa.String(), nullable=True),
    )
    op.create_index("ix_held_plan_status", "held_plan", ["status"])
    op.create_table(
        "held_revoke",
        sa.Column("run_id", sa.String(), sa.ForeignKey("held_plan.run_id"), primary_key=True),
        sa.Column("certificate_id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), primary_key=True),
        sa.Column("owned", sa.Boolean(), nullable=False),
        sa.Column("unmapped", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("held_revoke")
    op.drop_index("ix_held_plan_status", table_name="held_plan")
    op.drop_table("held_plan")
