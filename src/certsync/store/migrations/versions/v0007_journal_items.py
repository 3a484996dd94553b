"""The per-user audit trail: one row per user and template of every write request.

Made from the journal already there, so `history --user` covers every run since
the first; no journal, run or ownership row is changed.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import json
from datetime import date

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    items = op.create_table(
        "journal_item",
        sa.Column("journal_id", sa.String(), sa.ForeignKey("journal.id"), primary_key=True),
        sa.Column("certificate_id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=True),
        sa.Column("intent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_journal_item_user_id", "journal_item", ["user_id"])
    op.create_index("ix_journal_item_certificate_id", "journal_item", ["certificate_id"])
    journal = sa.table(
        "journal",
        sa.column("id", sa.String()),
        sa.column("run_id", sa.String()),
        sa.column("action", sa.String()),
        sa.column("certificate_ids", sa.String()),
        sa.column("payload", sa.String()),
        sa.column("intent_at", sa.DateTime(timezone=True)),
        sa.column("outcome", sa.String()),
        sa.column("outcome_at", sa.DateTime(timezone=True)),
    )
    bind = op.get_bind()
    rows = []
    for j in bind.execute(sa.select(journal)):
        common = {
            "journal_id": j.id,
            "run_id": j.run_id,
            "intent_at": j.intent_at,
            "outcome": j.outcome,
            "outcome_at": j.outcome_at,
        }
        body = json.loads(j.payload or "{}")
        if j.action == "assign":
            for cert, user, completed in body.get("items", []):
                rows.append(
                    {
                        **common,
                        "certificate_id": cert,
                        "user_id": user,
                        "action": "assign",
                        "issued_on": date.fromisoformat(completed),
                    }
                )
        elif j.action == "reset":
            (cert,) = json.loads(j.certificate_ids)
            revoked = set(body.get("revoke_user_ids", []))
            for user in body.get("user_ids", []):
                rows.append(
                    {
                        **common,
                        "certificate_id": cert,
                        "user_id": user,
                        "action": "revoke" if user in revoked else "renew",
                        "issued_on": None,
                    }
                )
    if rows:
        op.bulk_insert(items, rows)


def downgrade() -> None:
    op.drop_index("ix_journal_item_certificate_id", table_name="journal_item")
    op.drop_index("ix_journal_item_user_id", table_name="journal_item")
    op.drop_table("journal_item")
