"""SQL of the sync domain."""

from __future__ import annotations

import uuid

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.sync.models import UserSyncState


async def bump_version(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Take the user's next version. The row stays locked until the transaction ends, which
    serialises one user's writes: commit order equals version order, so versions are a safe cursor."""
    stmt = (
        insert(UserSyncState)
        .values(user_id=user_id, version=1)
        .on_conflict_do_update(
            index_elements=[UserSyncState.user_id], set_={"version": UserSyncState.version + 1}
        )
        .returning(UserSyncState.version)
    )
    return int((await session.execute(stmt)).scalar_one())
