"""Tables: routines, habits, habit_completions, focus_sessions.

Rows are created by the API or by offline sync. Every row carries what last-writer-wins needs
(``client_updated_at``, ``device_id``), a ``server_version`` (the pull cursor) and a ``deleted_at``
tombstone instead of being deleted.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from habitjobs.db.base import Base
from habitjobs.owned import Synced
from habitjobs.weekdays import ALL_DAYS_MASK

# Kept under this name for the models of this module and of reminders.
_Synced = Synced


class _FieldClocks:
    """Settings entities merge offline edits field by field (two phones renaming and re-ordering the same
    habit both keep their change): the last-writer-wins clock of each field, kept by offline sync."""

    field_clocks: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class Routine(_Synced, _FieldClocks, Base):
    __tablename__ = "routines"
    __table_args__ = (
        CheckConstraint("kind IN ('morning', 'evening', 'break', 'custom')", name="kind"),
        CheckConstraint("days_mask BETWEEN 0 AND 127", name="days_mask"),
        Index(None, "user_id", "server_version"),
        # Retention finds old tombstones without reading the live rows.
        Index(None, "deleted_at", postgresql_where=text("deleted_at IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    start_local_time: Mapped[time | None]
    days_mask: Mapped[int] = mapped_column(SmallInteger, server_default=str(ALL_DAYS_MASK))
    position: Mapped[int] = mapped_column(Integer, server_default="0")


class Habit(_Synced, _FieldClocks, Base):
    __tablename__ = "habits"
    __table_args__ = (
        CheckConstraint("kind IN ('check', 'duration', 'quantity')", name="kind"),
        CheckConstraint("days_mask BETWEEN 0 AND 127", name="days_mask"),
        Index(None, "user_id", "server_version"),
        # Retention finds old tombstones without reading the live rows.
        Index(None, "deleted_at", postgresql_where=text("deleted_at IS NOT NULL")),
        Index(None, "routine_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # No foreign key: offline clients may upload a habit before the routine it belongs to.
    routine_id: Mapped[uuid.UUID | None]
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text, server_default="check")
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    target_value: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    days_mask: Mapped[int] = mapped_column(SmallInteger, server_default=str(ALL_DAYS_MASK))
    position: Mapped[int] = mapped_column(Integer, server_default="0")
    created_local_date: Mapped[date | None]
    archived_at: Mapped[datetime | None]


class HabitCompletion(_Synced, Base):
    """One habit on one local day. ``id`` = uuid5(habit_id, local_date): two offline devices that
    check the same habit on the same day produce the same row."""

    __tablename__ = "habit_completions"
    __table_args__ = (
        CheckConstraint("status IN ('done', 'skipped')", name="status"),
        UniqueConstraint("habit_id", "local_date"),
        Index(None, "user_id", "server_version"),
        # Retention finds old tombstones without reading the live rows.
        Index(None, "deleted_at", postgresql_where=text("deleted_at IS NOT NULL")),
        Index(None, "user_id", "local_date"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    habit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("habits.id", ondelete="CASCADE"))
    local_date: Mapped[date]
    status: Mapped[str] = mapped_column(Text, server_default="done")
    value: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    completed_at: Mapped[datetime | None]
    tz: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())


class FocusSession(_Synced, Base):
    __tablename__ = "focus_sessions"
    __table_args__ = (
        CheckConstraint("status IN ('completed', 'aborted')", name="status"),
        CheckConstraint("focus_seconds >= 0", name="focus_seconds"),
        Index(None, "user_id", "started_at"),
        Index(None, "user_id", "server_version"),
        # Retention finds old tombstones without reading the live rows.
        Index(None, "deleted_at", postgresql_where=text("deleted_at IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    focus_seconds: Mapped[int] = mapped_column(Integer, server_default="0")
    status: Mapped[str] = mapped_column(Text, server_default="completed")
    local_date: Mapped[date]
