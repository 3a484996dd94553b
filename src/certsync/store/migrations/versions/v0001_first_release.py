"""The first release's schema (certsync_schema version 1).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Timestamps are UTC; PostgreSQL keeps the zone, SQLite stores text either way.
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "type_mapping",
        sa.Column("natecosmic", sa.String(), primary_key=True),
        sa.Column("monotree", sa.Integer(), nullable=False),
        sa.Column("authoritative", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "user_mapping",
        sa.Column("natecosmic", sa.String(), primary_key=True),
        sa.Column("monotree", sa.Integer(), nullable=True),
        sa.Column("monotree_email", sa.String(), nullable=True),
    )
    op.create_table(
        "setting",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", sa.String(), nullable=False),
    )
    op.create_table(
        "monotree_user",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("seen_at", WHEN, nullable=False),
    )
    op.create_index("ix_monotree_user_email", "monotree_user", ["email"])
    op.create_table(
        "ownership",
        sa.Column("certificate_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("journal_id", sa.String(), nullable=False),
    )
    op.create_table(
        "known_holding",
        sa.Column("certificate_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("expiry_known", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "template_state",
        sa.Column("certificate_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("read_at", WHEN, nullable=True),
        sa.Column("dirty", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("ended_at", WHEN, nullable=True),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("counts", sa.String(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
    )
    op.create_table(
        "journal",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("run_id", sa.String(), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("certificate_ids", sa.String(), nullable=False),
        sa.Column("payload", sa.String(), nullable=False),
        sa.Column("intent_at", WHEN, nullable=False),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("outcome_at", WHEN, nullable=True),
        sa.Column("error", sa.String(), nullable=True),
    )
    op.create_index("ix_journal_run_id", "journal", ["run_id"])
    op.create_table(
        "pull_snapshot",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("pulled_at", WHEN, nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
    )
    op.create_table(
        "writer_lock",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("acquired_at", WHEN, nullable=False),
        sa.Column("heartbeat_at", WHEN, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "writer_lock",
        "pull_snapshot",
        "journal",
        "run",
        "template_state",
        "known_holding",
        "ownership",
        "monotree_user",
        "setting",
        "user_mapping",
        "type_mapping",
    ):
        op.drop_table(table)
