"""Use-cases of the accounts domain."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pydantic_core
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs import caps
from habitjobs.accounts import repository as repo
from habitjobs.accounts.models import DataExport, Device, User
from habitjobs.accounts.schemas import DevicePut, MePatch
from habitjobs.clock import Clock
from habitjobs.errors import Conflict, Gone, NotFound, PermanentFailure, Unauthorized
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
    session: AsyncSession, user_id: uuid.UUID, device_id: uuid.UUID, body: DevicePut, *, max_devices: int
) -> Device:
    # The user's row stays locked until commit: two registrations at the cap cannot both pass.
    await repo.lock_user(session, user_id)
    caps.DEVICES.check(await repo.count_enabled_devices(session, user_id, other_than=device_id), max_devices)
    device = await repo.upsert_device(session, user_id, device_id, body.model_dump())
    if device is None:
        # Another user's installation: the same answer as for an id nobody has (the caller's
        # transaction rolls back, so the token is not taken from anyone either).
        raise NotFound(f"device {device_id} not found")
    return device


async def list_devices(session: AsyncSession, user_id: uuid.UUID) -> list[Device]:
    return await repo.list_devices(session, user_id)


async def unregister_device(session: AsyncSession, user_id: uuid.UUID, device_id: uuid.UUID) -> None:
    if not await repo.disable_device(session, user_id, device_id, "unregistered"):
        raise NotFound(f"device {device_id} not found")


def export_job_id(export_id: uuid.UUID) -> str:
    return f"export-{export_id}"


class ExportExpired(Gone):
    code = "export_expired"


class ExportTooLarge(PermanentFailure):
    """The document would be larger than the cap: retrying cannot make it smaller."""

    code = "export_too_large"


async def request_export(
    session: AsyncSession, outbox: Outbox, user_id: uuid.UUID
) -> tuple[DataExport, bool]:
    """Record the request and stage its job in the same transaction; or, while the user has an export
    queued or running, return that one (one at a time). Returns the export and whether it is new."""
    for _ in range(3):
        export_id = uuid.uuid4()
        job_id = export_job_id(export_id)
        export = await repo.create_export(session, user_id, export_id, job_id)
        if export is not None:
            await outbox.add(session, EXPORT_JOB, {"export_id": export_id}, job_id=job_id, user_id=user_id)
            return export, True
        running = await repo.export_in_flight(session, user_id)
        if running is not None:
            return running, False
        # The one in flight finished between the two statements: try again.
    raise Conflict("an export of this user keeps starting and finishing; retry", field=None)


async def get_export(
    session: AsyncSession, user_id: uuid.UUID, export_id: uuid.UUID, now: datetime
) -> DataExport:
    """The user's export; 410 once it expired (its document is deleted at expiry)."""
    export = await repo.get_export(session, export_id)
    if export is None or export.user_id != user_id:
        raise NotFound(f"export {export_id} not found")
    if export.status == "expired" or (export.expires_at is not None and export.expires_at <= now):
        raise ExportExpired(
            f"export {export_id} expired at {export.expires_at.isoformat() if export.expires_at else '?'} "
            "and was deleted; request a new one",
            expired_at=export.expires_at.isoformat() if export.expires_at else None,
        )
    return export


async def start_export(session: AsyncSession, export_id: uuid.UUID) -> None:
    """Show the export as running (its job took it)."""
    await repo.mark_export_running(session, export_id)


async def fail_export(
    session: AsyncSession, export_id: uuid.UUID, error: str, now: datetime, keep_s: int
) -> bool:
    """Record that the export cannot be built (the user sees ``error``); the user may request another."""
    return await repo.fail_export(session, export_id, error[:1000], now + timedelta(seconds=keep_s))


async def expire_exports(session: AsyncSession, now: datetime, limit: int) -> int:
    return await repo.expire_exports(session, now, limit)


async def forget_exports(session: AsyncSession, expired_before: datetime, limit: int) -> int:
    return await repo.forget_exports(session, expired_before, limit)


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


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.1f} kB"


def _too_large(size: int, max_bytes: int) -> ExportTooLarge:
    return ExportTooLarge(
        f"your data takes about {_size(size)} as JSON, more than the {_size(max_bytes)} an export may "
        "have, so the export was not built",
        size_bytes=size,
        max_bytes=max_bytes,
    )


async def build_export(
    session: AsyncSession, export_id: uuid.UUID, now: datetime, *, max_bytes: int, keep_s: int
) -> int | None:
    """Assemble the export document. Safe to run twice: an export no longer queued or running is left as
    it is. Raises :class:`ExportTooLarge` for a document over ``max_bytes`` (measured before the rows are
    loaded, then exactly once encoded).

    Returns the number of rows exported, or None when there was nothing to do.
    """
    export = await repo.get_export(session, export_id, for_update=True)
    if export is None or export.status not in ("queued", "running"):
        return None
    user = await repo.get_user(session, export.user_id)
    if user is None:
        return None
    estimate = await habits_repo.export_size_estimate(session, user.id)
    if estimate > max_bytes:
        raise _too_large(estimate, max_bytes)
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
    encoded = pydantic_core.to_json(document).decode()
    if len(encoded.encode()) > max_bytes:
        raise _too_large(len(encoded.encode()), max_bytes)
    count = sum(len(rows) for rows in tables.values())
    await repo.finish_export(session, export_id, encoded, count, now + timedelta(seconds=keep_s))
    return count


async def forget_deletions(session: AsyncSession, finished_before: datetime, limit: int) -> int:
    return await repo.forget_deletions(session, finished_before, limit)
