"""Streaks with hand-computed expectations: weekday masks night by night, a skip and a late upload going
through the real merge, its recompute hook and a worker, and a user who flies west across the date line."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select, text

from habitjobs.clock import FrozenClock
from habitjobs.config import Settings
from habitjobs.queue.names import ANALYTICS
from habitjobs.resources import Resources
from habitjobs.sync.models import StatsDirtyDay, StreakDirty
from tests.support.analytics_data import (
    add_entry,
    add_habit,
    add_user,
    daily,
    run_recompute,
    run_rollup,
    streak,
)
from tests.support.sync import Device, push_and_apply
from tests.support.users import MakeUser
from tests.support.workers import drain

MON_WED_FRI = 0b0010101
WEEKENDS = 0b1100000


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


async def _streaks(resources: Resources, *habits: uuid.UUID) -> list[tuple[int, int]]:
    out = []
    for habit in habits:
        row = await streak(resources, habit)
        assert row is not None
        out.append((row.current_streak, row.best_streak))
    return out


async def test_weekday_masks_night_by_night(resources: Resources) -> None:
    async with resources.db.transaction() as s:
        user = await add_user(s, zone="UTC")
        every_day = await add_habit(s, user)
        mwf = await add_habit(s, user, days_mask=MON_WED_FRI)
        weekends = await add_habit(s, user, days_mask=WEEKENDS)
        for day in range(2, 16):
            if day != 10:  # Tuesday the 10th missed
                await add_entry(s, user, every_day, date(2026, 3, day))
        for day in (2, 3, 4, 6, 9, 13):  # Tuesday the 3rd is not due; Wednesday the 11th missed
            await add_entry(s, user, mwf, date(2026, 3, day))
        for day in (7, 8, 14):
            await add_entry(s, user, weekends, date(2026, 3, day))
        await add_entry(s, user, weekends, date(2026, 3, 15), "skipped")

    # After the night of day X it is 00:05 on X+1: X+1 is today, open, and counts already if done (every
    # entry above exists from the start).
    expected = {  # (current, best) of every_day, mwf, weekends
        9: [(8, 8), (4, 4), (2, 2)],  # the 10th is open; Tuesday is not due for mwf
        10: [(1, 8), (4, 4), (2, 2)],  # the 10th missed, the 11th done already; mwf's Wednesday open
        11: [(2, 8), (0, 4), (2, 2)],  # mwf missed Wednesday the 11th
        13: [(4, 8), (1, 4), (3, 3)],  # Saturday the 14th done already
        15: [(5, 8), (1, 4), (3, 3)],  # the skipped Sunday is neutral; Monday the 16th open
    }
    for day in range(2, 16):
        resources.clock = FrozenClock(utc(2026, 3, day + 1, 0, 5))
        await run_rollup(resources, "UTC", date(2026, 3, day))
        if day in expected:
            assert await _streaks(resources, every_day, mwf, weekends) == expected[day], day


@pytest.fixture
async def undelayed(settings: Settings) -> AsyncIterator[Resources]:
    """Resources whose merges request the recompute without the debounce delay (a worker can drain it)."""
    res = Resources.open(
        settings.model_copy(update={"sync_recompute_debounce_ms": 0}), application_name="habitjobs-test"
    )
    try:
        yield res
    finally:
        await res.aclose()


async def _upload(resources: Resources, user_id: uuid.UUID, phone: Device) -> None:
    await push_and_apply(resources, user_id, phone.batch())
    # The merge asked for the user's recompute; a worker runs it.
    assert await resources.producer.queue(ANALYTICS).getJobCounts("waiting") == {"waiting": 1}
    await drain(resources, queues=[ANALYTICS])


async def test_a_skip_and_a_late_upload_filling_the_gap_restore_the_streak(
    undelayed: Resources, make_user: MakeUser
) -> None:
    resources = undelayed
    user = await make_user()  # UTC
    resources.clock = FrozenClock(utc(2026, 3, 7, 9, 0))  # Saturday the 7th: open
    phone = Device()
    habit_id = uuid.uuid4()
    phone.record("habit", "upsert", habit_id, 0, {"name": "Run", "created_local_date": "2026-03-01"})
    for day in (2, 3, 5, 6):  # the phone was offline on the 4th
        phone.check(habit_id, date(2026, 3, day), day)
    await _upload(resources, user.id, phone)
    assert await _streaks(resources, habit_id) == [(2, 2)]

    phone.check(habit_id, date(2026, 3, 4), 100, status="skipped")
    await _upload(resources, user.id, phone)
    assert await _streaks(resources, habit_id) == [(4, 4)]  # skipped: neutral, the gap is gone

    phone.check(habit_id, date(2026, 3, 4), 200)  # done after all (a second device, uploading late)
    await _upload(resources, user.id, phone)
    assert await _streaks(resources, habit_id) == [(5, 5)]
    row = (await daily(resources, user.id))[date(2026, 3, 4)]
    assert (row.habits_due, row.habits_done, row.habits_skipped) == (1, 1, 0)
    async with resources.db.transaction() as s:
        marks = [await s.scalar(select(func.count()).select_from(t)) for t in (StatsDirtyDay, StreakDirty)]
    assert marks == [0, 0]  # the recompute consumed its marks


async def test_a_user_flying_west_gets_back_the_day_they_had_not_finished(resources: Resources) -> None:
    """Auckland (UTC+13) to Los Angeles (UTC−8). Stored local dates stay as they are; "today" follows the
    new zone, so the 6th — over in Auckland, where it was a miss — is open again in Los Angeles."""
    async with resources.db.transaction() as s:
        user = await add_user(s, zone="Pacific/Auckland")
        habit = await add_habit(s, user, created_local_date=date(2026, 3, 1))
        for day in (2, 3, 4, 5):
            await add_entry(s, user, habit, date(2026, 3, day))
    for day in (2, 3, 4, 5, 6):  # Auckland's day X ends at 11:00 UTC on day X
        resources.clock = FrozenClock(utc(2026, 3, day, 11, 5))
        await run_rollup(resources, "Pacific/Auckland", date(2026, 3, day))
        if day == 5:
            assert await _streaks(resources, habit) == [(4, 4)]
    assert await _streaks(resources, habit) == [(0, 4)]  # the 6th ended in Auckland without an entry

    moved_at = utc(2026, 3, 6, 12, 0)  # 04:00 on the 6th in Los Angeles
    async with resources.db.transaction() as s:
        await s.execute(
            text(
                "UPDATE users SET timezone = 'America/Los_Angeles', timezone_changed_at = :at WHERE id = :u"
            ),
            {"at": moved_at, "u": user},
        )
    resources.clock = FrozenClock(utc(2026, 3, 6, 12, 30))
    await run_recompute(resources, user)
    row = await streak(resources, habit)
    assert row is not None
    assert (row.current_streak, row.best_streak, row.computed_through) == (4, 4, date(2026, 3, 5))

    # Done on the 6th, Los Angeles time; then the Los Angeles night of the 6th.
    async with resources.db.transaction() as s:
        await add_entry(s, user, habit, date(2026, 3, 6))
    resources.clock = FrozenClock(utc(2026, 3, 7, 8, 5))  # 00:05 on the 7th in Los Angeles
    await run_rollup(resources, "America/Los_Angeles", date(2026, 3, 6))
    row = await streak(resources, habit)
    assert row is not None
    assert (row.current_streak, row.best_streak, row.computed_through) == (5, 5, date(2026, 3, 6))
    # A recent mover gets the day before as well: the 5th, which Los Angeles' previous run missed.
    days = await daily(resources, user)
    assert {d: (r.habits_due, r.habits_done) for d, r in days.items() if d >= date(2026, 3, 5)} == {
        date(2026, 3, 5): (1, 1),
        date(2026, 3, 6): (1, 1),
    }
