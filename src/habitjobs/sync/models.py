"""Tables: user_sync_state (the per-user version counter every synced write bumps)."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from habitjobs.db.base import Base


class UserSyncState(Base):
    """Locking this row serialises one user's writes; its version is the pull cursor's clock."""

    __tablename__ = "user_sync_state"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")
