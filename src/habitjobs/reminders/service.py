"""Use-cases for reminders through the API; ``next_fire_at`` is kept right on every change."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs import caps, owned
from habitjobs.clock import Clock
from habitjobs.errors import InvalidInput, NotFound
from habitjobs.habits.models import Habit, Routine
from habitjobs.reminders import repository as repo
from habitjobs.reminders.models import Reminder
from habitjobs.reminders.schedule import next_fire_at
from habitjobs.reminders.schemas import ReminderIn, ReminderPatch


def compute_next_fire(
    now: datetime, *, local_time: time, days_mask: int, zone: str, enabled: bool, deleted: bool = False
) -> datetime | None:
    if not enabled or deleted:
        return None
    return next_fire_at(now, local_time, days_mask, ZoneInfo(zone))


async def _check_refs(session: AsyncSession, user_id: uuid.UUID, values: dict[str, Any]) -> None:
    habit_id, routine_id = values.get("habit_id"), values.get("routine_id")
    if habit_id is not None and await owned.get_live(session, Habit, user_id, habit_id) is None:
        raise InvalidInput(f"habit {habit_id} does not exist", field="habit_id")
    if routine_id is not None and await owned.get_live(session, Routine, user_id, routine_id) is None:
        raise InvalidInput(f"routine {routine_id} does not exist", field="routine_id")


async def list_reminders(session: AsyncSession, user_id: uuid.UUID) -> list[Reminder]:
    return await repo.list_live(session, user_id)


async def get_reminder(session: AsyncSession, user_id: uuid.UUID, reminder_id: uuid.UUID) -> Reminder:
    reminder = await owned.get_live(session, Reminder, user_id, reminder_id)
    if reminder is None:
        raise NotFound(f"reminder {reminder_id} not found")
    return reminder


async def create_reminder(
    session: AsyncSession, clock: Clock, user_id: uuid.UUID, body: ReminderIn, *, max_reminders: int
) -> Reminder:
    assert body.local_time is not None  # ReminderIn's validator fills it in
    if body.kind == "habit" and body.habit_id is None:
        raise InvalidInput("a habit reminder needs habit_id", field="habit_id")
    values = body.model_dump()
    await _check_refs(session, user_id, values)
    stamp = await owned.stamp_api_write(session, clock, user_id)
    # Counted under the version lock stamp_api_write took: concurrent creates are serialised.
    caps.REMINDERS.check(await owned.count_live(session, Reminder, user_id), max_reminders)
    values.update(
        stamp,
        id=body.id or uuid.uuid4(),
        user_id=user_id,
        next_fire_at=compute_next_fire(
            stamp["client_updated_at"],
            local_time=body.local_time,
            days_mask=body.days_mask,
            zone=body.timezone or await repo.user_zone(session, user_id),
            enabled=body.enabled,
        ),
    )
    reminder = await owned.insert_new(session, Reminder, values)
    if reminder is None:
        raise await owned.id_taken(session, Reminder, user_id, values["id"])
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
    stamp = await owned.stamp_api_write(session, clock, user_id)
    values.update(
        stamp,
        next_fire_at=compute_next_fire(
            stamp["client_updated_at"],
            local_time=values.get("local_time", current.local_time),
            days_mask=values.get("days_mask", current.days_mask),
            zone=values.get("timezone", current.timezone) or await repo.user_zone(session, user_id),
            enabled=values.get("enabled", current.enabled),
        ),
    )
    reminder = await owned.update_owned(session, Reminder, user_id, reminder_id, values)
    if reminder is None:
        raise NotFound(f"reminder {reminder_id} not found")
    return reminder


async def delete_reminder(
    session: AsyncSession, clock: Clock, user_id: uuid.UUID, reminder_id: uuid.UUID
) -> None:
    stamp = await owned.stamp_api_write(session, clock, user_id)
    values = {**stamp, "deleted_at": stamp["client_updated_at"], "next_fire_at": None}
    # Only the owner's live reminder matches: anything else is a 404 (and the transaction rolls back).
    if await owned.update_owned(session, Reminder, user_id, reminder_id, values) is None:
        raise NotFound(f"reminder {reminder_id} not found")


async def refresh_next_fire(
    session: AsyncSession, reminder_ids: Collection[uuid.UUID], now: datetime
) -> None:
    """Recompute ``next_fire_at`` of reminders from what they are now (after offline sync wrote whole
    rows, or the user moved to another zone)."""
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


async def reschedule_for_user_zone(session: AsyncSession, clock: Clock, user_id: uuid.UUID) -> None:
    """After the user's zone changed (already written): reminders that follow it fire at the same wall
    time in the new zone."""
    await refresh_next_fire(session, await repo.following_user_zone(session, user_id), clock.now())
