"""SQL of the dashboard: the audit log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.dashboard.models import AdminAudit


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor_id: uuid.UUID | None
    action: str
    target: str
    outcome: str


async def record(
    session: AsyncSession, actor_id: uuid.UUID | None, action: str, target: str, outcome: str
) -> None:
    await session.execute(
        insert(AdminAudit).values(
            actor_id=actor_id, action=action, target=target[:500], outcome=outcome[:2000]
        )
    )


async def recent(
    session: AsyncSession, *, limit: int = 200, before_id: int | None = None
) -> list[AuditEntry]:
    query = select(
        AdminAudit.id,
        AdminAudit.at,
        AdminAudit.actor_id,
        AdminAudit.action,
        AdminAudit.target,
        AdminAudit.outcome,
    ).order_by(AdminAudit.id.desc())
    if before_id is not None:
        query = query.where(AdminAudit.id < before_id)
    rows = (await session.execute(query.limit(limit))).all()
    return [AuditEntry(*row) for row in rows]
