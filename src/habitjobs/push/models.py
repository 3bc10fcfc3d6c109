"""Table: push_deliveries — one notification to one device, from creation to its final outcome."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from habitjobs.db.base import Base

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
TOKEN_INVALID = "token_invalid"  # noqa: S105 - a status, not a secret
FAILED = "failed"
SKIPPED = "skipped"
STATUSES = (PENDING, SENDING, SENT, TOKEN_INVALID, FAILED, SKIPPED)
UNFINISHED = (PENDING, SENDING)


class PushDelivery(Base):
    """``dedupe_key`` names the occasion and the device (``reminder:<id>:<local_date>:<device>``): creating
    the same delivery twice is a no-op. ``status`` moves pending → sending (leased until ``leased_until``)
    → sent | token_invalid | failed | skipped, or back to pending for a later attempt."""

    __tablename__ = "push_deliveries"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES!r}", name="status"),
        CheckConstraint("provider IN ('apns', 'fcm')", name="provider"),
        Index(None, "device_id"),
        Index(None, "user_id", "created_at"),
        # Retention deletes finished deliveries by age.
        Index(None, "created_at"),
        # Operators and sweeps look for deliveries that never finished.
        Index(
            "ix_push_deliveries_unfinished", "created_at", postgresql_where=text(f"status IN {UNFINISHED!r}")
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(Text, unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    # The rendered notification: {"title", "body", "data": {str: str}}.
    payload: Mapped[dict[str, Any]]
    # Sent on every attempt (apns-collapse-id / Android tag): a duplicate replaces, never adds.
    collapse_id: Mapped[str] = mapped_column(Text)
    # Past this instant the notification is skipped, not sent late.
    not_after: Mapped[datetime]
    status: Mapped[str] = mapped_column(Text, server_default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    leased_until: Mapped[datetime | None]
    provider_message_id: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    sent_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
