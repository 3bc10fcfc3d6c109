"""Tables of offline sync: the per-user version counter, the clients, the uploaded batches, and the dirty
marks the merge leaves for the statistics and streak recompute."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from habitjobs.db.base import Base
from habitjobs.db.partitions import PartitionedTable

BATCH_STATUSES = ("queued", "processing", "applied", "failed")


class UserSyncState(Base):
    """Locking this row serialises one user's writes; its version is the pull cursor's clock."""

    __tablename__ = "user_sync_state"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # Tombstones up to this version may have been purged: a pull cursor older than it must reset.
    purged_through: Mapped[int] = mapped_column(BigInteger, server_default="0")


class SyncClient(Base):
    """One app installation's mutation queue for one user.

    Keyed by (user, client) rather than by client alone: a phone that signs in to a second account starts
    a separate queue, and nobody can advance or read another user's counter by reusing a client id.
    """

    __tablename__ = "sync_clients"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(Text, primary_key=True)
    # Every mutation up to this id has been merged (or rejected); the next batch must start right after.
    last_mutation_id: Mapped[int] = mapped_column(BigInteger, server_default="0")
    schema_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SyncBatch(Base):
    """One upload's status, stored before it is acknowledged; the ``sync.apply_batch`` job merges it.

    ``result`` accumulates the outcome chunk by chunk, in the same transaction as each chunk's writes. The
    uploaded mutations are in :class:`SyncBatchPayload`: this small row answers status requests long after
    the payload was dropped.
    """

    __tablename__ = "sync_batches"
    __table_args__ = (
        CheckConstraint(f"status IN {BATCH_STATUSES!r}", name="status"),
        Index(None, "user_id", "client_id", "received_at"),
        # Retention scans finished batches by age.
        Index(None, "received_at"),
        # The reconciliation reads the batches still waiting on their merge job.
        Index(
            "ix_sync_batches_open",
            "received_at",
            "batch_id",
            postgresql_where=text("status IN ('queued', 'processing')"),
        ),
    )

    batch_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(Text)
    schema_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text, server_default="queued")
    job_id: Mapped[str] = mapped_column(Text)
    mutation_count: Mapped[int] = mapped_column(Integer)
    first_mutation_id: Mapped[int] = mapped_column(BigInteger)
    last_mutation_id: Mapped[int] = mapped_column(BigInteger)
    result: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    applied_at: Mapped[datetime | None]


# Hourly partitions of sync_batch_payloads, made ahead and dropped by `maintenance.partitions`.
PAYLOAD_PARTITIONS = PartitionedTable("sync_batch_payloads", "received_at")


class SyncBatchPayload(Base):
    """An upload's mutations as uploaded (a JSON array), needed only until the batch is merged.

    Partitioned by arrival time (``received_at`` is the batch's): dropping an expired hour is one cheap
    statement instead of deleting a payload at a time. The primary key includes the partition key, as
    PostgreSQL requires; ``batch_id`` is unique through ``sync_batches`` already.
    """

    __tablename__ = "sync_batch_payloads"
    __table_args__ = (
        Index(None, "user_id"),
        {"postgresql_partition_by": f"RANGE ({PAYLOAD_PARTITIONS.column})"},
    )

    batch_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    payload: Mapped[list[Any]]


class StatsDirtyDay(Base):
    """A user's local day whose statistics must be recomputed (late or changed data)."""

    __tablename__ = "stats_dirty_days"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    local_date: Mapped[date] = mapped_column(primary_key=True)
    marked_at: Mapped[datetime] = mapped_column(server_default=func.now())


class StreakDirty(Base):
    """A habit whose streak must be recomputed from ``from_date`` on (the earliest mark wins)."""

    __tablename__ = "streak_dirty"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    habit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("habits.id", ondelete="CASCADE"), primary_key=True)
    from_date: Mapped[date]
    marked_at: Mapped[datetime] = mapped_column(server_default=func.now())
