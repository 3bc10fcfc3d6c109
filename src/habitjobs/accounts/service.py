"""Use-cases of the accounts domain."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.accounts import repository as repo
from habitjobs.accounts.models import DataExport, Device, User
from habitjobs.accounts.schemas import DevicePut, MePatch
from habitjobs.clock import Clock
from habitjobs.errors import NotFound, Unauthorized
from habitjobs.habits import repository as habits_repo
from habitjobs.queue.outbox import Outbox
from habitjobs.reminders import service as reminders_service

EXPORT_JOB = "accounts.export_data"


async def get_me(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await repo.get_user(session, user_id)
    if user is None:
        raise Unauthorized("the token's user no longer exists")
    return user


async def patch_me(session: AsyncSession, clock: Clock, user_id: uuid.UUID, body: MePatch) -> User:
    values: dict[str, Any] = body.model_dump(exclude_unset=True)
    for key in [k for k, v in values.items() if v is None]:
        del values[key]
    current = await get_me(session, user_id)
    if "timezone" in values and values["timezone"] != current.timezone:
        values["timezone_changed_at"] = clock.now()
    user = await repo.update_user(session, user_id, values)
    if user is None:
        raise Unauthorized("the token's user no longer exists")
    if "timezone_changed_at" in values:
        # Reminders that follow the user's zone fire at the same wall time in the new zone.
        await reminders_service.reschedule_for_user_zone(session, clock, user_id)
    return user


async def register_device(
    session: AsyncSession, user_id: uuid.UUID, device_id: uuid.UUID, body: DevicePut
) -> Device:
    return await repo.upsert_device(session, user_id, device_id, body.model_dump())


async def list_devices(session: AsyncSession, user_id: uuid.UUID) -> list[Device]:
    return await repo.list_devices(session, user_id)


async def unregister_device(session: AsyncSession, user_id: uuid.UUID, device_id: uuid.UUID) -> None:
    if not await repo.disable_device(session, user_id, device_id, "unregistered"):
        raise NotFound(f"device {device_id} not found")


def export_job_id(export_id: uuid.UUID) -> str:
    return f"export-{export_id}"


async def request_export(session: AsyncSession, outbox: Outbox, user_id: uuid.UUID) -> DataExport:
    """Record the request and stage its job in the same transaction."""
    export_id = uuid.uuid4()
    job_id = export_job_id(export_id)
    export = await repo.create_export(session, user_id, export_id, job_id)
    await outbox.add(session, EXPORT_JOB, {"export_id": export_id}, job_id=job_id, user_id=user_id)
    return export


async def get_export(session: AsyncSession, user_id: uuid.UUID, export_id: uuid.UUID) -> DataExport:
    export = await repo.get_export(session, export_id)
    if export is None or export.user_id != user_id:
        raise NotFound(f"export {export_id} not found")
    return export


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is not None and not isinstance(value, str | int | float | bool | dict | list):
        return str(value)
    return value


async def build_export(session: AsyncSession, export_id: uuid.UUID, now: datetime) -> int | None:
    """Assemble the export document. Safe to run twice: a finished export is left as it is.

    Returns the number of rows exported, or None when there was nothing to do.
    """
    export = await repo.get_export(session, export_id, for_update=True)
    if export is None or export.status == "done":
        return None
    user = await repo.get_user(session, export.user_id)
    if user is None:
        return None
    tables = await habits_repo.export_rows(session, user.id)
    devices = await repo.list_devices(session, user.id)
    identities = await repo.list_identities(session, user.id)
    document = {
        "generated_at": now.isoformat(),
        "user": {
            "id": str(user.id),
            "email": user.email,
            "display_name": user.display_name,
            "timezone": user.timezone,
            "locale": user.locale,
            "created_at": user.created_at.isoformat(),
        },
        "devices": [
            {
                "id": str(d.id),
                "platform": d.platform,
                "provider": d.provider,
                "registered_at": d.registered_at.isoformat(),
            }
            for d in devices
        ],
        "identities": [
            {
                "issuer": i.issuer,
                "subject": i.subject,
                "email": i.email,
                "created_at": i.created_at.isoformat(),
            }
            for i in identities
        ],
        **{
            table: [{k: _jsonable(v) for k, v in row.items()} for row in rows]
            for table, rows in tables.items()
        },
    }
    count = sum(len(rows) for rows in tables.values())
    await repo.finish_export(session, export_id, document, count)
    return count
