"""Building users, habits, devices and reminders directly in the database for scheduling tests."""

from __future__ import annotations

import uuid
from datetime import datetime, time

from sqlalchemy import insert, update

from habitjobs.accounts.models import Device, User
from habitjobs.habits.models import Habit
from habitjobs.reminders.models import Reminder
from habitjobs.reminders.service import compute_next_fire
from habitjobs.resources import Resources


async def user_with_habit_reminders(
    resources: Resources, zone: str, times: list[time], *, now: datetime, devices: int = 1
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A user in ``zone`` with one daily habit and a habit reminder at each of ``times``."""
    user_id, habit_id = uuid.uuid4(), uuid.uuid4()
    reminder_ids = [uuid.uuid4() for _ in times]
    async with resources.db.transaction() as session:
        await session.execute(insert(User).values(id=user_id, email=f"{user_id}@example.com", timezone=zone))
        await session.execute(
            insert(Habit).values(
                id=habit_id, user_id=user_id, name="Stretch", client_updated_at=now, server_version=1
            )
        )
        for _ in range(devices):
            await session.execute(
                insert(Device).values(
                    id=uuid.uuid4(),
                    user_id=user_id,
                    platform="android",
                    provider="fcm",
                    push_token=f"tok-{uuid.uuid4().hex}",
                )
            )
        for reminder_id, at in zip(reminder_ids, times, strict=True):
            await session.execute(
                insert(Reminder).values(
                    id=reminder_id,
                    user_id=user_id,
                    kind="habit",
                    habit_id=habit_id,
                    local_time=at,
                    client_updated_at=now,
                    server_version=1,
                    next_fire_at=compute_next_fire(
                        now, local_time=at, days_mask=127, zone=zone, enabled=True
                    ),
                )
            )
    return user_id, reminder_ids


async def set_next_fire(resources: Resources, reminder_id: uuid.UUID, at: datetime) -> None:
    async with resources.db.transaction() as session:
        await session.execute(update(Reminder).where(Reminder.id == reminder_id).values(next_fire_at=at))
