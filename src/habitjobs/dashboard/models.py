"""Table: admin_audit — what operators did through the dashboard (who, what, when)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from habitjobs.db.base import Base


class AdminAudit(Base):
    """One operator action. ``actor_id`` keeps the operator by id only (no e-mail copied here); deleting
    that account clears it (SET NULL) and the record of the action stays."""

    __tablename__ = "admin_audit"
    __table_args__ = (Index(None, "at"), Index(None, "actor_id"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
