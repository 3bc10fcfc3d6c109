"""Table: reminders — a local wall-clock time, weekdays and a zone; ``next_fire_at`` is derived."""

from __future__ import annotations

import uuid
from datetime import datetime, time

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, SmallInteger, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from habitjobs.db.base import Base
from habitjobs.habits.models import _Synced
from habitjobs.weekdays import ALL_DAYS_MASK

KINDS = ("morning_routine", "evening_routine", "habit", "streak_risk")


class Reminder(_Synced, Base):
    __tablename__ = "reminders"
    __table_args__ = (
        CheckConstraint(f"kind IN {KINDS!r}", name="kind"),
        CheckConstraint("days_mask BETWEEN 0 AND 127", name="days_mask"),
        CheckConstraint("kind <> 'habit' OR habit_id IS NOT NULL", name="habit_needs_habit"),
        Index(None, "user_id", "server_version"),
        # The tick's scan: enabled, live reminders by their next firing.
        Index(
            "ix_reminders_due",
            "next_fire_at",
            postgresql_where=text("enabled AND deleted_at IS NULL AND next_fire_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(Text)
    # No foreign keys: offline clients may upload a reminder before its habit or routine.
    habit_id: Mapped[uuid.UUID | None]
    routine_id: Mapped[uuid.UUID | None]
    local_time: Mapped[time]
    days_mask: Mapped[int] = mapped_column(SmallInteger, server_default=str(ALL_DAYS_MASK))
    # An IANA zone, or NULL to follow the user's zone (also after they move).
    timezone: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    # Derived from the fields above and the zone; NULL when disabled, deleted or on no weekday.
    next_fire_at: Mapped[datetime | None]
