"""Tables: users, their identities, devices, data_exports, account_deletions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from habitjobs.db.base import Base

# The issuer of the identities `habitjobs token` signs users in with (the lower-cased e-mail is the
# subject). Not a URL, so no identity provider can have it.
LOCAL_ISSUER = "local"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # Not unique: an e-mail is contact data, not a login (two providers may both vouch for one address,
        # and that never joins their accounts). Sign-in goes through user_identities.
        Index("ix_users_email_lower", func.lower(text("email"))),
        CheckConstraint("day_start_minutes BETWEEN 0 AND 720", name="day_start"),
        CheckConstraint("week_start BETWEEN 0 AND 6", name="week_start"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str | None] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(Text, server_default="UTC")
    # A day may start later than midnight (a night owl's Tuesday ends at 04:00 on Wednesday).
    day_start_minutes: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    week_start: Mapped[int] = mapped_column(SmallInteger, server_default="0")  # 0 = Monday
    locale: Mapped[str] = mapped_column(Text, server_default="en")
    is_admin: Mapped[bool] = mapped_column(Boolean, server_default="false")
    timezone_changed_at: Mapped[datetime | None]
    # Set when the user asked for their account to be deleted: every token of the account is refused from
    # then on (except to follow or cancel the deletion), and its devices are disabled.
    locked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class UserIdentity(Base):
    """One way to sign in to a user: an identity provider's subject, or (issuer ``local``) the e-mail that
    `habitjobs token` mints tokens for. A user has one on first sign-in and gains more only by an explicit
    link (``POST /v1/me/identities``), never because two providers report the same e-mail."""

    __tablename__ = "user_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject"), Index(None, "user_id"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    issuer: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The e-mail the provider reported when the identity was added (shown to the user; never matched).
    email: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


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
    """A user's request for a copy of all their data, assembled by the ``accounts.export_data`` job.

    One at a time per user (the partial unique index). A finished or failed export expires at
    ``expires_at``: its document is then deleted and the row kept a while as ``expired``.
    """

    __tablename__ = "data_exports"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed', 'expired')", name="status"),
        Index(None, "user_id", "requested_at"),
        Index(
            "uq_data_exports_user_in_flight",
            "user_id",
            unique=True,
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        Index(None, "expires_at"),
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
    # The document's size as JSON text; why the export failed, in words for the user.
    size_bytes: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]


DELETION_LIVE = ("scheduled", "running")
DELETION_STATUSES = (*DELETION_LIVE, "done", "cancelled")


class AccountDeletion(Base):
    """A user's request to delete their account, carried out by the ``accounts.delete_user`` job.

    ``user_id`` is set to NULL by the database when the user's row goes (the job's last step), so a
    finished request keeps no trace of whose it was: it only says that a deletion was asked for, when, and
    how many rows it erased. One live request per user (a second request returns the first).
    """

    __tablename__ = "account_deletions"
    __table_args__ = (
        CheckConstraint(f"status IN {DELETION_STATUSES!r}", name="status"),
        Index(
            "uq_account_deletions_live_user",
            "user_id",
            unique=True,
            postgresql_where=text(f"status IN {DELETION_LIVE!r}"),
        ),
        Index(None, "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(Text, server_default="scheduled")
    job_id: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The end of the grace period: the job erases nothing before.
    not_before: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    rows_deleted: Mapped[int] = mapped_column(BigInteger, server_default="0")
