"""All SQL of the accounts domain."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Text, bindparam, delete, func, select, text, update
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


async def lock_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Lock the user's row until the transaction ends (serialises what counts the user's devices)."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))


async def count_enabled_devices(session: AsyncSession, user_id: uuid.UUID, *, other_than: uuid.UUID) -> int:
    """The user's devices with push enabled, not counting ``other_than`` (the one being registered)."""
    stmt = select(func.count()).where(
        Device.user_id == user_id, Device.push_enabled.is_(True), Device.id != other_than
    )
    return int((await session.execute(stmt)).scalar_one())


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


_CREATE_EXPORT = text(
    "INSERT INTO data_exports (id, user_id, job_id, status) VALUES (:id, :user_id, :job_id, 'queued') "
    "ON CONFLICT (user_id) WHERE status IN ('queued', 'running') DO NOTHING RETURNING id"
)


async def create_export(
    session: AsyncSession, user_id: uuid.UUID, export_id: uuid.UUID, job_id: str
) -> DataExport | None:
    """A new queued export; None when the user already has one queued or running."""
    params = {"id": export_id, "user_id": user_id, "job_id": job_id}
    if (await session.execute(_CREATE_EXPORT, params)).scalar_one_or_none() is None:
        return None
    return await get_export(session, export_id)


async def export_in_flight(session: AsyncSession, user_id: uuid.UUID) -> DataExport | None:
    """The user's queued or running export, if any (there is at most one)."""
    return await session.scalar(
        select(DataExport).where(DataExport.user_id == user_id, DataExport.status.in_(("queued", "running")))
    )


async def get_export(
    session: AsyncSession, export_id: uuid.UUID, *, for_update: bool = False
) -> DataExport | None:
    stmt = select(DataExport).where(DataExport.id == export_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def mark_export_running(session: AsyncSession, export_id: uuid.UUID) -> None:
    await session.execute(
        update(DataExport)
        .where(DataExport.id == export_id, DataExport.status == "queued")
        .values(status="running")
    )


_FINISH_EXPORT = text(
    "UPDATE data_exports SET status = 'done', document = CAST(:document AS jsonb), row_count = :rows, "
    "size_bytes = :size, finished_at = now(), expires_at = :expires_at WHERE id = :id"
).bindparams(bindparam("document", type_=Text))


async def finish_export(
    session: AsyncSession, export_id: uuid.UUID, document: str, rows: int, expires_at: datetime
) -> None:
    """Store the document (already JSON text: it is encoded once, to measure it)."""
    params = {"id": export_id, "document": document, "rows": rows, "size": len(document.encode())}
    await session.execute(_FINISH_EXPORT, {**params, "expires_at": expires_at})


async def fail_export(session: AsyncSession, export_id: uuid.UUID, error: str, expires_at: datetime) -> bool:
    """Record why a queued or running export cannot be built; False when it had finished already."""
    result = await session.execute(
        update(DataExport)
        .where(DataExport.id == export_id, DataExport.status.in_(("queued", "running")))
        .values(status="failed", error=error, finished_at=func.now(), expires_at=expires_at)
    )
    return bool(getattr(result, "rowcount", 0))


async def expire_exports(session: AsyncSession, now: datetime, limit: int) -> int:
    """Delete the documents of up to ``limit`` exports past their expiry; the rows stay as ``expired``."""
    due = (
        select(DataExport.id)
        .where(DataExport.status.in_(("done", "failed")), DataExport.expires_at <= now)
        .order_by(DataExport.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(DataExport).where(DataExport.id.in_(due)).values(status="expired", document=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def forget_exports(session: AsyncSession, expired_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` expired exports whose expiry is older than ``expired_before``."""
    due = (
        select(DataExport.id)
        .where(DataExport.status == "expired", DataExport.expires_at <= expired_before)
        .order_by(DataExport.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(delete(DataExport).where(DataExport.id.in_(due)))
    return int(getattr(result, "rowcount", 0) or 0)
