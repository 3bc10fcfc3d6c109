"""Use-cases for reminders through the API; ``next_fire_at`` is kept right on every change."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.clock import Clock
from habitjobs.errors import Conflict, InvalidInput, NotFound
from habitjobs.reminders import repository as repo
from habitjobs.reminders.models import Reminder
from habitjobs.reminders.schedule import next_fire_at
from habitjobs.reminders.schemas import ReminderIn, ReminderPatch
from habitjobs.sync.repository import bump_version

API_WRITER = ""


def compute_next_fire(
    now: datetime, *, local_time: time, days_mask: int, zone: str, enabled: bool, deleted: bool = False
) -> datetime | None:
    if not enabled or deleted:
        return None
    return next_fire_at(now, local_time, days_mask, ZoneInfo(zone))


async def _check_refs(session: AsyncSession, user_id: uuid.UUID, values: dict[str, Any]) -> None:
    habit_id, routine_id = values.get("habit_id"), values.get("routine_id")
    if habit_id is not None and not await repo.owns_habit(session, user_id, habit_id):
        raise InvalidInput(f"habit {habit_id} does not exist", field="habit_id")
    if routine_id is not None and not await repo.owns_routine(session, user_id, routine_id):
        raise InvalidInput(f"routine {routine_id} does not exist", field="routine_id")


async def list_reminders(session: AsyncSession, user_id: uuid.UUID) -> list[Reminder]:
    return await repo.list_live(session, user_id)


async def get_reminder(session: AsyncSession, user_id: uuid.UUID, reminder_id: uuid.UUID) -> Reminder:
    reminder = await repo.get_live(session, user_id, reminder_id)
    if reminder is None:
        raise NotFound(f"reminder {reminder_id} not found")
    return reminder


async def create_reminder(
    session: AsyncSession, clock: Clock, user_id: uuid.UUID, body: ReminderIn
) -> Reminder:
    values = body.model_dump()
    if body.kind == "habit" and body.habit_id is None:
        raise InvalidInput("a habit reminder needs habit_id", field="habit_id")
    await _check_refs(session, user_id, values)
    zone = body.timezone or await repo.user_zone(session, user_id)
    now = clock.now()
    values["id"] = body.id or uuid.uuid4()
    values.update(
        user_id=user_id,
        server_version=await bump_version(session, user_id),
        client_updated_at=now,
        device_id=API_WRITER,
        next_fire_at=compute_next_fire(
            now,
            local_time=body.local_time or time(),
            days_mask=body.days_mask,
            zone=zone,
            enabled=body.enabled,
        ),
    )
    reminder = await repo.insert_new(session, values)
    if reminder is None:
        raise Conflict(f"a reminder with id {values['id']} already exists", field="id")
    return reminder


async def patch_reminder(
    session: AsyncSession, clock: Clock, user_id: uuid.UUID, reminder_id: uuid.UUID, body: ReminderPatch
) -> Reminder:
    values = body.model_dump(exclude_unset=True)
    for key in ("local_time", "days_mask", "enabled"):
        if key in values and values[key] is None:
            raise InvalidInput(f"{key} may not be null", field=key)
    current = await get_reminder(session, user_id, reminder_id)
    await _check_refs(session, user_id, values)
    if current.kind == "habit" and "habit_id" in values and values["habit_id"] is None:
        raise InvalidInput("a habit reminder needs habit_id", field="habit_id")
    zone = values["timezone"] if values.get("timezone") else None
    if "timezone" not in values:
        zone = current.timezone
    now = clock.now()
    values.update(
        server_version=await bump_version(session, user_id),
        client_updated_at=now,
        device_id=API_WRITER,
        next_fire_at=compute_next_fire(
            now,
            local_time=values.get("local_time", current.local_time),
            days_mask=values.get("days_mask", current.days_mask),
            zone=zone or await repo.user_zone(session, user_id),
            enabled=values.get("enabled", current.enabled),
        ),
    )
    reminder = await repo.update_owned(session, user_id, reminder_id, values)
    if reminder is None:
        raise NotFound(f"reminder {reminder_id} not found")
    return reminder


async def delete_reminder(
    session: AsyncSession, clock: Clock, user_id: uuid.UUID, reminder_id: uuid.UUID
) -> None:
    await get_reminder(session, user_id, reminder_id)
    now = clock.now()
    values = {
        "server_version": await bump_version(session, user_id),
        "client_updated_at": now,
        "device_id": API_WRITER,
        "deleted_at": now,
        "next_fire_at": None,
    }
    if await repo.update_owned(session, user_id, reminder_id, values) is None:
        raise NotFound(f"reminder {reminder_id} not found")


async def refresh_next_fire(
    session: AsyncSession, reminder_ids: Collection[uuid.UUID], now: datetime
) -> None:
    """Recompute ``next_fire_at`` of reminders written elsewhere (offline sync writes whole rows)."""
    rows = await repo.schedules_of(session, reminder_ids)
    await repo.set_next_fire(
        session,
        [
            (
                r.id,
                compute_next_fire(
                    now,
                    local_time=r.local_time,
                    days_mask=r.days_mask,
                    zone=r.zone,
                    enabled=r.enabled,
                    deleted=r.deleted_at is not None,
                ),
            )
            for r in rows
        ],
    )


async def reschedule_for_user_zone(session: AsyncSession, clock: Clock, user_id: uuid.UUID, zone: str) -> int:
    """After the user's zone changed: reminders that follow it fire at the same wall time in the new zone.
    Returns how many were rescheduled."""
    now = clock.now()
    reminders = await repo.following_user_zone(session, user_id)
    await repo.set_next_fire(
        session,
        [
            (
                r.id,
                compute_next_fire(
                    now, local_time=r.local_time, days_mask=r.days_mask, zone=zone, enabled=r.enabled
                ),
            )
            for r in reminders
        ],
    )
    return len(reminders)
