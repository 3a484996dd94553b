"""The store's tables, as SQLModel classes: the one place the schema is written.

Alembic's migrations (`store/migrations/versions/`) are made from this metadata,
and a test migrates an empty database to head and asks Alembic's autogenerate
for differences: a column added here without a migration fails the suite.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

# datetime fields are SQLModel's UTCDateTime: timezone-aware (timestamptz on PostgreSQL)
# and read back as aware UTC, which the lease and the journal compare against now.


class TypeMappingRow(SQLModel, table=True):
    __tablename__ = "type_mapping"
    natecosmic: str = Field(primary_key=True)
    monotree: int
    authoritative: bool = False


class UserMappingRow(SQLModel, table=True):
    __tablename__ = "user_mapping"
    natecosmic: str = Field(primary_key=True)
    # Indexed: every cycle asks for those without an id and whether any names an email.
    monotree: int | None = Field(default=None, index=True)
    monotree_email: str | None = Field(default=None, index=True)


class RemovedMappingRow(SQLModel, table=True):
    """A mapping the file no longer names: kept so a holding it explained is reported as
    unmanaged, never revoked, until the mapping returns."""

    __tablename__ = "removed_mapping"
    kind: str = Field(primary_key=True)  # "type" or "user"
    natecosmic: str = Field(primary_key=True)
    monotree: int | None = None
    monotree_email: str | None = None
    removed_at: datetime


class SettingRow(SQLModel, table=True):
    """Small named values: the mapping file's policy, the time of the last full cycle."""

    __tablename__ = "setting"
    key: str = Field(primary_key=True)
    value: str


class MonotreeUserRow(SQLModel, table=True):
    """Monotree's user list, cached for email resolution; refreshed on full cycles."""

    __tablename__ = "monotree_user"
    id: int = Field(primary_key=True)
    email: str | None = Field(default=None, index=True)
    name: str | None = None
    seen_at: datetime


class OwnershipRow(SQLModel, table=True):
    """A holding certsync issued. Written before the assign request is sent."""

    __tablename__ = "ownership"
    certificate_id: int = Field(primary_key=True)
    user_id: int = Field(primary_key=True)
    issued_on: date
    run_id: str
    journal_id: str


class HoldingRow(SQLModel, table=True):
    """Monotree's state as certsync last read or wrote it; what incremental cycles plan against."""

    __tablename__ = "known_holding"
    # Every incremental cycle counts what each template holds, grouped by the dates
    # that decide whether a holding still counts (`count_basis`): covered by this index,
    # a seventh of the CPU of sorting 100,000 rows each cycle.
    __table_args__ = (
        Index(
            "ix_known_holding_count",
            "certificate_id",
            "active",
            "expiry_known",
            "expires_on",
            "issued_on",
        ),
    )
    certificate_id: int = Field(primary_key=True)
    user_id: int = Field(primary_key=True)
    active: bool
    issued_on: date | None = None
    expires_on: date | None = None
    expiry_known: bool = True


class TemplateStateRow(SQLModel, table=True):
    """Whether certsync's picture of a template can be trusted without reading it again."""

    __tablename__ = "template_state"
    certificate_id: int = Field(primary_key=True)
    read_at: datetime | None = None
    dirty: bool = True
    # At the last full read, whether the template list's `active_users_count` was the
    # number of active holders read (None: not known yet). Only then may a count that
    # moved call for a read (drift).
    count_matches: bool | None = None


class RunRow(SQLModel, table=True):
    __tablename__ = "run"
    id: str = Field(primary_key=True)
    kind: str
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str | None = None
    counts: str = "{}"
    requests: str = "{}"
    error: str | None = None


class JournalRow(SQLModel, table=True):
    """One write request: its intent before it is sent, its outcome after."""

    __tablename__ = "journal"
    id: str = Field(primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    seq: int
    action: str
    certificate_ids: str
    payload: str
    intent_at: datetime
    outcome: str | None = None
    outcome_at: datetime | None = None
    error: str | None = None


class JournalItemRow(SQLModel, table=True):
    """One user's part of one write request: the per-user audit trail, by user and template."""

    __tablename__ = "journal_item"
    journal_id: str = Field(foreign_key="journal.id", primary_key=True)
    certificate_id: int = Field(primary_key=True, index=True)
    user_id: int = Field(primary_key=True, index=True)
    run_id: str
    action: str  # assign, renew (the reset before a renewal's assign), revoke
    issued_on: date | None = None  # an assign's completed_at
    intent_at: datetime
    outcome: str | None = None
    outcome_at: datetime | None = None


class HeldPlanRow(SQLModel, table=True):
    """Revocations the guard held back in one run, kept until a person decides."""

    __tablename__ = "held_plan"
    run_id: str = Field(foreign_key="run.id", primary_key=True)
    held_at: datetime
    reason: str
    kind: str = "mass-revoke"  # the guard's rule (HoldBack): the metric's label
    digests: str = "{}"
    status: str = Field(default="held", index=True)  # held, approved, rejected, superseded
    decided_by: str | None = None
    decided_at: datetime | None = None
    decided_run_id: str | None = None


class HeldRevokeRow(SQLModel, table=True):
    __tablename__ = "held_revoke"
    run_id: str = Field(foreign_key="held_plan.run_id", primary_key=True)
    certificate_id: int = Field(primary_key=True)
    user_id: int = Field(primary_key=True)
    owned: bool
    unmapped: bool = False
    outcome: str | None = None  # revoked, skipped, failed: what approving did
    note: str | None = None


class WebhookDeliveryRow(SQLModel, table=True):
    """A webhook delivery received: kept a day, so a redelivery is known as one."""

    __tablename__ = "webhook_delivery"
    id: str = Field(primary_key=True)
    event: str
    user_id: int | None = None
    email: str | None = None
    received_at: datetime = Field(index=True)
    state: str = "received"  # received, applied, failed, no-mapping
    handled_at: datetime | None = None
    run_id: str | None = None


class PullSnapshotRow(SQLModel, table=True):
    """The last Natecosmic pull, compressed: what changed upstream since the cycle before."""

    __tablename__ = "pull_snapshot"
    id: int = Field(default=1, primary_key=True)
    pulled_at: datetime
    record_count: int
    document: bytes  # msgpack (`store/snapshot.py`)


class WriterLockRow(SQLModel, table=True):
    """The leases (store/lock.py): row 1 is the writer lock, row 2 the daemons' leader."""

    __tablename__ = "writer_lock"
    id: int = Field(default=1, primary_key=True)
    owner: str  # "" once released: the row stays, so the epoch keeps growing
    # No Python default: a store older than 0010 has no such column, and an insert that
    # named it would fail there; the database fills it in.
    epoch: int = Field(sa_column_kwargs={"server_default": "0"})
    pid: int
    host: str
    acquired_at: datetime
    heartbeat_at: datetime


metadata = SQLModel.metadata
