"""The mappings' revision (`setting` "mappings_revision"): every import makes a new
one, and a quiet cycle's digest holds it instead of the mappings themselves
(`engine/quiet.py`). No table changes: the value is written by the next import.

A schema revision of its own all the same, so that a release from before it refuses
this store ("written by a newer certsync"): such a release would import mappings
without making a new revision, and a quiet cycle after it would not see them.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the revision's number is what counts."""


def downgrade() -> None:
    """Nothing to undo; an earlier release ignores the value."""
