"""Tables: users, devices, data_exports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from habitjobs.db.base import Base


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        CheckConstraint("day_start_minutes BETWEEN 0 AND 720", name="day_start"),
        CheckConstraint("week_start BETWEEN 0 AND 6", name="week_start"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(Text, server_default="UTC")
    # A day may start later than midnight (a night owl's Tuesday ends at 04:00 on Wednesday).
    day_start_minutes: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    week_start: Mapped[int] = mapped_column(SmallInteger, server_default="0")  # 0 = Monday
    locale: Mapped[str] = mapped_column(Text, server_default="en")
    is_admin: Mapped[bool] = mapped_column(Boolean, server_default="false")
    timezone_changed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Device(Base):
    """One app installation. Its id is chosen by the app, so registering again is an idempotent PUT."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint("platform IN ('ios', 'android')", name="platform"),
        CheckConstraint("provider IN ('apns', 'fcm')", name="provider"),
        CheckConstraint("apns_env IS NULL OR apns_env IN ('sandbox', 'production')", name="apns_env"),
        # A token belongs to one enabled installation; a disabled row may keep an old copy.
        Index(
            "uq_devices_provider_push_token_enabled",
            "provider",
            "push_token",
            unique=True,
            postgresql_where=text("push_enabled"),
        ),
        Index(None, "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(Text)
    push_token: Mapped[str] = mapped_column(Text)
    apns_env: Mapped[str | None] = mapped_column(Text)
    app_version: Mapped[str | None] = mapped_column(Text)
    push_enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    registered_at: Mapped[datetime] = mapped_column(server_default=func.now())
    invalidated_at: Mapped[datetime | None]
    invalid_reason: Mapped[str | None] = mapped_column(Text)


class DataExport(Base):
    """A user's request for a copy of all their data, assembled by the ``accounts.export_data`` job."""

    __tablename__ = "data_exports"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        Index(None, "user_id", "requested_at"),
        # The reconciliation reads the exports still waiting on their job.
        Index(
            "ix_data_exports_open",
            "requested_at",
            "id",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(Text, server_default="queued")
    job_id: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]
    row_count: Mapped[int | None] = mapped_column(Integer)
    document: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
