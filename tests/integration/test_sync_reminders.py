"""Reminders as a sync entity: an offline phone creates, moves and deletes a reminder; the server keeps
``next_fire_at`` right after each merge, and the tick fires what sync wrote."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from habitjobs.clock import FrozenClock
from habitjobs.reminders.jobs import run_tick
from habitjobs.reminders.models import Reminder
from habitjobs.resources import Resources
from tests.support.analytics_data import add_user
from tests.support.sync import Device, accept, apply, push_and_apply


async def _reminder(resources: Resources, reminder_id: uuid.UUID) -> Reminder | None:
    async with resources.db.transaction() as session:
        return await session.scalar(select(Reminder).where(Reminder.id == reminder_id))


async def test_a_synced_reminder_is_scheduled_rescheduled_and_unscheduled(resources: Resources) -> None:
    resources.clock = FrozenClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))  # a Monday
    async with resources.db.transaction() as session:
        user_id = await add_user(session, zone="Asia/Kathmandu")  # +05:45
    phone = Device()
    habit_id, reminder_id = uuid.uuid4(), uuid.uuid4()
    phone.record("habit", "upsert", habit_id, 0, {"name": "Read"})
    reminder = {"kind": "habit", "habit_id": str(habit_id), "local_time": "21:30:00"}
    phone.record("reminder", "upsert", reminder_id, 1, reminder)
    await push_and_apply(resources, user_id, phone.batch())

    row = await _reminder(resources, reminder_id)
    assert row is not None
    assert row.next_fire_at == datetime(2026, 3, 2, 15, 45, tzinfo=UTC)  # 21:30 in Kathmandu today

    # Moved to 06:00 in its own zone, weekends only: the next firing follows.
    phone.record(
        "reminder",
        "upsert",
        reminder_id,
        2,
        {**reminder, "local_time": "06:00:00", "timezone": "Europe/Berlin", "days_mask": 0b1100000},
    )
    await push_and_apply(resources, user_id, phone.batch())
    row = await _reminder(resources, reminder_id)
    assert row is not None
    assert row.next_fire_at == datetime(2026, 3, 7, 5, 0, tzinfo=UTC)  # Saturday 06:00 CET

    resources.clock = FrozenClock(datetime(2026, 3, 7, 5, 0, tzinfo=UTC))
    assert (await run_tick(resources)).claimed == 1

    phone.record("reminder", "delete", reminder_id, 3)
    await push_and_apply(resources, user_id, phone.batch())
    row = await _reminder(resources, reminder_id)
    assert row is not None
    assert row.deleted_at is not None
    assert row.next_fire_at is None


async def test_a_stale_reminder_edit_changes_nothing_and_bad_ones_are_rejected(resources: Resources) -> None:
    resources.clock = FrozenClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    async with resources.db.transaction() as session:
        user_id = await add_user(session, zone="UTC")
        other = await add_user(session, zone="UTC")
    theirs = Device()
    their_habit = uuid.uuid4()
    theirs.record("habit", "upsert", their_habit, 0, {"name": "Theirs"})
    await push_and_apply(resources, other, theirs.batch())

    phone, late_phone = Device(), Device()
    reminder_id = uuid.uuid4()
    phone.record("reminder", "upsert", reminder_id, 10, {"kind": "streak_risk", "local_time": "20:00:00"})
    late_phone.record("reminder", "upsert", reminder_id, 5, {"kind": "streak_risk", "local_time": "08:00:00"})
    phone.record("reminder", "upsert", uuid.uuid4(), 11, {"kind": "habit", "local_time": "08:00:00"})
    phone.record(
        "reminder",
        "upsert",
        uuid.uuid4(),
        12,
        {"kind": "habit", "habit_id": str(their_habit), "local_time": "08:00:00"},
    )
    phone.record("reminder", "upsert", uuid.uuid4(), 13, {"kind": "habit_x", "local_time": "08:00:00"})
    phone.record("reminder", "upsert", uuid.uuid4(), 14, {"kind": "streak_risk", "local_time": "25:00"})
    phone.record(
        "reminder",
        "upsert",
        uuid.uuid4(),
        15,
        {"kind": "streak_risk", "local_time": "08:00", "timezone": "Mars/Base"},
    )
    first = await accept(resources, user_id, phone.batch())
    result = await apply(resources, first)
    assert (result["status"], result["applied"], result["rejected"]) == ("applied", 1, 5)
    await push_and_apply(resources, user_id, late_phone.batch())

    row = await _reminder(resources, reminder_id)
    assert row is not None
    assert row.local_time.hour == 20  # the later write wins, whatever the arrival order
    assert row.next_fire_at == datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
    async with resources.db.transaction() as session:
        count = len((await session.scalars(select(Reminder).where(Reminder.user_id == user_id))).all())
    assert count == 1  # the five bad ones were rejected, none written
