"""All SQL of the accounts domain."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.accounts.models import DataExport, Device, User


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_or_create_user(session: AsyncSession, email: str) -> User:
    existing = await session.scalar(select(User).where(func.lower(User.email) == email.lower()))
    if existing is not None:
        return existing
    user = User(id=uuid.uuid4(), email=email)
    session.add(user)
    await session.flush()
    await session.refresh(user)
    return user


async def update_user(session: AsyncSession, user_id: uuid.UUID, values: dict[str, Any]) -> User | None:
    if values:
        await session.execute(update(User).where(User.id == user_id).values(**values, updated_at=func.now()))
    user = await session.get(User, user_id, populate_existing=True)
    return user


async def upsert_device(
    session: AsyncSession, user_id: uuid.UUID, device_id: uuid.UUID, values: dict[str, Any]
) -> Device:
    """Register (or re-register) an installation. A push token that moved here from another
    installation is disabled there first, so one token never reaches two rows."""
    await session.execute(
        update(Device)
        .where(
            Device.provider == values["provider"],
            Device.push_token == values["push_token"],
            Device.id != device_id,
            Device.push_enabled.is_(True),
        )
        .values(push_enabled=False, invalidated_at=func.now(), invalid_reason="token_moved")
    )
    fields = {
        **values,
        "user_id": user_id,
        "push_enabled": True,
        "invalidated_at": None,
        "invalid_reason": None,
    }
    stmt = (
        insert(Device)
        .values(id=device_id, **fields)
        .on_conflict_do_update(index_elements=[Device.id], set_={**fields, "registered_at": func.now()})
        .returning(Device)
    )
    device = (await session.execute(stmt)).scalar_one()
    return device


async def get_device(session: AsyncSession, user_id: uuid.UUID, device_id: uuid.UUID) -> Device | None:
    return await session.scalar(select(Device).where(Device.id == device_id, Device.user_id == user_id))


async def list_devices(session: AsyncSession, user_id: uuid.UUID) -> list[Device]:
    return list(
        (
            await session.scalars(
                select(Device).where(Device.user_id == user_id).order_by(Device.registered_at)
            )
        ).all()
    )


async def disable_device(
    session: AsyncSession, user_id: uuid.UUID, device_id: uuid.UUID, reason: str
) -> bool:
    result = await session.execute(
        update(Device)
        .where(Device.id == device_id, Device.user_id == user_id)
        .values(push_enabled=False, invalidated_at=func.now(), invalid_reason=reason)
    )
    return bool(getattr(result, "rowcount", 0))


async def create_export(
    session: AsyncSession, user_id: uuid.UUID, export_id: uuid.UUID, job_id: str
) -> DataExport:
    export = DataExport(id=export_id, user_id=user_id, job_id=job_id, status="queued")
    session.add(export)
    await session.flush()
    await session.refresh(export)
    return export


async def get_export(
    session: AsyncSession, export_id: uuid.UUID, *, for_update: bool = False
) -> DataExport | None:
    stmt = select(DataExport).where(DataExport.id == export_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def finish_export(
    session: AsyncSession, export_id: uuid.UUID, document: dict[str, Any], rows: int
) -> None:
    await session.execute(
        update(DataExport)
        .where(DataExport.id == export_id)
        .values(status="done", document=document, row_count=rows, finished_at=func.now(), error=None)
    )


_OPEN = ("queued", "running")


async def fail_export(session: AsyncSession, export_id: uuid.UUID, error: str) -> bool:
    """Mark an export that is still waiting ``failed``; returns whether it was."""
    result = await session.execute(
        update(DataExport)
        .where(DataExport.id == export_id, DataExport.status.in_(_OPEN))
        .values(status="failed", error=error[:1000], finished_at=func.now())
    )
    return bool(getattr(result, "rowcount", 0))


async def open_exports(
    session: AsyncSession, older_than: datetime, after: tuple[datetime, str] | None, limit: int
) -> list[tuple[uuid.UUID, str, datetime]]:
    """Exports still waiting on their job, requested before ``older_than``, oldest first after ``after``
    (requested at, id): ``(id, job id, requested at)``."""
    query = select(DataExport.id, DataExport.job_id, DataExport.requested_at).where(
        DataExport.status.in_(_OPEN), DataExport.requested_at < older_than
    )
    if after is not None:
        query = query.where(
            tuple_(DataExport.requested_at, DataExport.id) > tuple_(after[0], uuid.UUID(after[1]))
        )
    rows = await session.execute(query.order_by(DataExport.requested_at, DataExport.id).limit(limit))
    return [(row.id, row.job_id, row.requested_at) for row in rows]
