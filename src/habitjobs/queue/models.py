"""Table: outbox — jobs decided inside a transaction, enqueued after it commits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, Integer, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from habitjobs.db.base import Base


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        # The relay's scan: rows not yet acknowledged by Redis, oldest first.
        Index("ix_outbox_pending", "id", postgresql_where=text("enqueued_at IS NULL")),
        Index(None, "user_id", "job_id"),
        # The reconciliation finds the job staged with a domain row by the row's transaction time.
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    queue: Mapped[str] = mapped_column(Text)
    job_name: Mapped[str] = mapped_column(Text)
    job_id: Mapped[str] = mapped_column(Text, unique=True)
    data: Mapped[dict[str, Any]]
    # The user the job works for: `GET /v1/jobs/{id}` shows a job only to them.
    user_id: Mapped[uuid.UUID | None]
    delay_ms: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    enqueued_at: Mapped[datetime | None]
    relay_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
