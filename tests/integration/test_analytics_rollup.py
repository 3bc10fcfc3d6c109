"""The nightly roll-up against real PostgreSQL, with hand-computed expectations: DST days of 23 and 25
hours, a week rolled up, night owls, new users, zone movers, re-runs, a read replica, resuming."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from habitjobs.analytics import service
from habitjobs.analytics.models import AnalyticsRun
from habitjobs.clock import FrozenClock
from habitjobs.config import Settings
from habitjobs.errors import RetryLater
from habitjobs.resources import Resources
from tests.support.analytics_data import (
    add_entry,
    add_focus,
    add_habit,
    add_routine,
    add_user,
    daily,
    run_recompute,
    run_rollup,
    snapshot,
    streak,
    weekly,
)

NY = "America/New_York"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


async def _due_pairs(resources: Resources, at: datetime) -> list[tuple[str, date]]:
    async with resources.db.transaction() as session:
        return await service.zones_needing_rollup(session, at, lookback_days=2)


async def test_daily_stats_of_a_23_hour_day(resources: Resources) -> None:
    """2026-03-08 in New York runs from 05:00 UTC to 04:00 UTC the next day (clocks spring forward)."""
    async with resources.db.transaction() as s:
        user = await add_user(s, zone=NY)
        morning = await add_routine(s, user, "morning")
        a = await add_habit(s, user, routine_id=morning)
        # 00:30 EDT on the 9th: after the day ended (start + 24 h would still count it).
        await add_habit(s, user, created_at=utc(2026, 3, 9, 4, 30))
        # 23:30 EDT on the 8th: existed before the day ended, so it was due.
        await add_habit(s, user, created_at=utc(2026, 3, 9, 3, 30))
        # Archived at 23:30 EDT, before the day ended: not due without an entry.
        await add_habit(s, user, archived_at=utc(2026, 3, 9, 3, 30))
        # Archived after the day ended: due, and skipped that day.
        e = await add_habit(s, user, archived_at=utc(2026, 3, 9, 4, 30))
        await add_entry(s, user, a, date(2026, 3, 8))
        await add_entry(s, user, e, date(2026, 3, 8), "skipped")
        await add_focus(s, user, date(2026, 3, 8), 1800, started_at=utc(2026, 3, 9, 3, 30))
        await add_focus(s, user, date(2026, 3, 8), 900, status="aborted")
        await add_focus(s, user, date(2026, 3, 9), 600, started_at=utc(2026, 3, 9, 4, 30))

    # The planner sees the day only once it has ended in New York.
    assert (NY, date(2026, 3, 8)) not in await _due_pairs(resources, utc(2026, 3, 9, 3, 59))
    assert (NY, date(2026, 3, 8)) in await _due_pairs(resources, utc(2026, 3, 9, 4, 0))
    resources.clock = FrozenClock(utc(2026, 3, 9, 3, 59))
    with pytest.raises(RetryLater):
        await run_rollup(resources, NY, date(2026, 3, 8))

    resources.clock = FrozenClock(utc(2026, 3, 9, 4, 5))
    await run_rollup(resources, NY, date(2026, 3, 8))
    row = (await daily(resources, user))[date(2026, 3, 8)]
    assert (row.habits_due, row.habits_done, row.habits_skipped) == (3, 1, 1)
    assert (row.completion_rate, row.perfect_day) == (Decimal("0.5000"), False)
    assert (row.morning_pct, row.evening_pct) == (Decimal("100.00"), None)
    assert (row.focus_sessions, row.focus_seconds, row.longest_focus_seconds) == (1, 1800, 1800)
    # The 8th is a Sunday: the user's week (from Monday) closed with it.
    week = (await weekly(resources, user))[date(2026, 3, 2)]
    assert (week.days_active, week.perfect_days, week.habits_done, week.focus_seconds) == (1, 0, 1, 1800)
    assert (week.avg_completion_rate, week.best_streak) == (Decimal("0.5000"), 1)


async def test_daily_stats_of_a_25_hour_day(resources: Resources) -> None:
    """2026-11-01 in New York runs from 04:00 UTC to 05:00 UTC the next day (clocks fall back)."""
    async with resources.db.transaction() as s:
        user = await add_user(s, zone=NY)
        a = await add_habit(s, user)
        # 23:30 EST, 24.5 hours into the day: still that day.
        await add_habit(s, user, created_at=utc(2026, 11, 2, 4, 30))
        await add_habit(s, user, archived_at=utc(2026, 11, 2, 4, 30))
        await add_entry(s, user, a, date(2026, 11, 1))
        await add_focus(s, user, date(2026, 11, 1), 1200, started_at=utc(2026, 11, 2, 4, 45))

    assert (NY, date(2026, 11, 1)) not in await _due_pairs(resources, utc(2026, 11, 2, 4, 59))
    assert (NY, date(2026, 11, 1)) in await _due_pairs(resources, utc(2026, 11, 2, 5, 0))
    resources.clock = FrozenClock(utc(2026, 11, 2, 5, 1))
    await run_rollup(resources, NY, date(2026, 11, 1))
    row = (await daily(resources, user))[date(2026, 11, 1)]
    assert (row.habits_due, row.habits_done, row.completion_rate) == (2, 1, Decimal("0.5000"))
    assert (row.focus_sessions, row.focus_seconds) == (1, 1200)


async def _week_of_data(resources: Resources) -> tuple:  # type: ignore[type-arg]
    """Two users in UTC: one whose weeks start on Monday, one whose weeks start on Sunday."""
    async with resources.db.transaction() as s:
        user = await add_user(s, zone="UTC", week_start=0)
        h1 = await add_habit(s, user, routine_id=await add_routine(s, user, "morning"))
        h2 = await add_habit(s, user, days_mask=0b0010101, routine_id=await add_routine(s, user, "evening"))
        for day in (2, 3, 4, 5, 7, 8):  # Friday the 6th missed
            await add_entry(s, user, h1, date(2026, 3, day))
        await add_entry(s, user, h2, date(2026, 3, 2))
        await add_entry(s, user, h2, date(2026, 3, 4), "skipped")
        await add_entry(s, user, h2, date(2026, 3, 6))
        await add_focus(s, user, date(2026, 3, 3), 1500)
        await add_focus(s, user, date(2026, 3, 5), 3000)
        await add_focus(s, user, date(2026, 3, 5), 600, status="aborted")
        sunday_user = await add_user(s, zone="UTC", week_start=6)
        every_day = await add_habit(s, sunday_user)
        for day in range(1, 8):
            await add_entry(s, sunday_user, every_day, date(2026, 3, day))
    return user, h1, h2, sunday_user, every_day


async def _nights(resources: Resources, first: int, last: int) -> None:
    for day in range(first, last + 1):
        resources.clock = FrozenClock(utc(2026, 3, day + 1, 0, 5))
        await run_rollup(resources, "UTC", date(2026, 3, day))


async def test_a_week_rolled_up_night_by_night(resources: Resources) -> None:
    user, h1, h2, sunday_user, every_day = await _week_of_data(resources)
    await _nights(resources, 2, 8)

    days = await daily(resources, user)
    expected = {  # due, done, skipped, rate, perfect, morning %, evening %, focus
        2: (2, 2, 0, "1.0000", True, "100.00", "100.00", 0),
        3: (1, 1, 0, "1.0000", True, "100.00", None, 1500),
        4: (2, 1, 1, "1.0000", True, "100.00", None, 0),
        5: (1, 1, 0, "1.0000", True, "100.00", None, 3000),
        6: (2, 1, 0, "0.5000", False, "0.00", "100.00", 0),
        7: (1, 1, 0, "1.0000", True, "100.00", None, 0),
        8: (1, 1, 0, "1.0000", True, "100.00", None, 0),
    }
    for day, (due, done, skipped, rate, perfect, morning, evening, focus) in expected.items():
        row = days[date(2026, 3, day)]
        assert (row.habits_due, row.habits_done, row.habits_skipped) == (due, done, skipped), day
        assert (row.completion_rate, row.perfect_day) == (Decimal(rate), perfect), day
        assert row.morning_pct == Decimal(morning), day
        assert row.evening_pct == (None if evening is None else Decimal(evening)), day
        assert row.focus_seconds == focus, day

    week = (await weekly(resources, user))[date(2026, 3, 2)]
    assert (week.days_active, week.perfect_days, week.habits_done, week.focus_seconds) == (7, 6, 8, 4500)
    assert week.avg_completion_rate == Decimal("0.9286")  # 6.5 / 7
    assert week.best_streak == 4  # Monday to Thursday; the skip of the other habit is neutral

    # Weeks starting on Sunday closed on Saturday the 7th; the 1st was never rolled up (no daily row),
    # but the streak inside the week counts the entries: seven in a row.
    assert set(await weekly(resources, sunday_user)) == {date(2026, 3, 1)}
    sunday_week = (await weekly(resources, sunday_user))[date(2026, 3, 1)]
    assert (sunday_week.days_active, sunday_week.habits_done, sunday_week.best_streak) == (6, 6, 7)
    assert sunday_week.avg_completion_rate == Decimal("1.0000")

    # Streaks as of Monday the 9th, 00:05 (the 9th is open).
    first, second = await streak(resources, h1), await streak(resources, h2)
    assert first is not None
    assert second is not None
    assert (first.current_streak, first.best_streak, first.last_done_date) == (2, 4, date(2026, 3, 8))
    assert (second.current_streak, second.best_streak, second.computed_through) == (2, 2, date(2026, 3, 8))
    every = await streak(resources, every_day)
    assert every is not None
    assert (every.current_streak, every.best_streak) == (0, 7)  # nothing on the 8th, which has ended


async def test_rerunning_changes_nothing(resources: Resources) -> None:
    user, *_ = await _week_of_data(resources)
    await _nights(resources, 2, 8)
    before = await snapshot(resources)
    assert before["daily_stats"]
    assert before["weekly_stats"]

    # The same jobs again: the runs are finished, nothing is redone.
    for day in range(2, 9):
        assert (await run_rollup(resources, "UTC", date(2026, 3, day)))["status"] == "already_finished"
    # Forced to run again (run rows gone), an hour later: every row is rewritten with the same numbers,
    # so not even computed_at moves.
    async with resources.db.transaction() as s:
        await s.execute(text("DELETE FROM analytics_runs"))
    resources.clock = FrozenClock(utc(2026, 3, 9, 1, 5))
    for day in range(2, 9):
        assert (await run_rollup(resources, "UTC", date(2026, 3, day)))["status"] == "finished"
    assert await snapshot(resources) == before
    # A full recompute of every day from the history agrees with the nights stepped one by one.
    async with resources.db.transaction() as s:
        await s.execute(
            text(
                "INSERT INTO stats_dirty_days (user_id, local_date) "
                "SELECT :u, d::date FROM generate_series(DATE '2026-03-02', DATE '2026-03-08', '1 day') d"
            ),
            {"u": user},
        )
    await run_recompute(resources, user)
    assert await snapshot(resources) == before


async def test_night_owls_get_the_day_that_has_ended_for_them(resources: Resources) -> None:
    async with resources.db.transaction() as s:
        owl = await add_user(s, zone="UTC", day_start_minutes=240)
        habit = await add_habit(s, owl)
        await add_entry(s, owl, habit, date(2026, 3, 8))
        await add_entry(s, owl, habit, date(2026, 3, 9))
    resources.clock = FrozenClock(utc(2026, 3, 10, 0, 5))  # 20:05 on the 9th of the owl's clock
    await run_rollup(resources, "UTC", date(2026, 3, 9))
    assert set(await daily(resources, owl)) == {date(2026, 3, 8)}
    assert set(await weekly(resources, owl)) == {date(2026, 3, 2)}  # the 8th closed a Monday week
    owl_streak = await streak(resources, habit)
    assert owl_streak is not None
    assert (owl_streak.current_streak, owl_streak.computed_through) == (2, date(2026, 3, 8))


async def test_no_rows_before_a_user_existed_and_two_days_for_a_mover(resources: Resources) -> None:
    async with resources.db.transaction() as s:
        newcomer = await add_user(s, zone="UTC", created_at=utc(2026, 3, 10, 0, 1))
        mover = await add_user(s, zone="UTC", moved_at=utc(2026, 3, 9, 12))
        settled = await add_user(s, zone="UTC", moved_at=utc(2026, 2, 1))
    resources.clock = FrozenClock(utc(2026, 3, 10, 0, 5))
    await run_rollup(resources, "UTC", date(2026, 3, 9))
    assert await daily(resources, newcomer) == {}
    assert set(await daily(resources, mover)) == {date(2026, 3, 8), date(2026, 3, 9)}
    assert set(await daily(resources, settled)) == {date(2026, 3, 9)}


async def test_a_read_replica_computes_the_same_rows(settings: Settings, resources: Resources) -> None:
    await _week_of_data(resources)
    await _nights(resources, 2, 8)
    primary_only = await snapshot(resources)

    async with resources.db.transaction() as s:
        await s.execute(text("TRUNCATE analytics_runs, daily_stats, weekly_stats, habit_streaks"))
    # The "replica" is the same database through a second engine: the reads go there, the writes not.
    with_replica = Settings(**{**settings.model_dump(), "analytics_database_url": settings.database_url})
    replica_resources = Resources.open(with_replica, application_name="habitjobs-test-replica")
    try:
        assert replica_resources.analytics_db is not replica_resources.db
        await _nights(replica_resources, 2, 8)
    finally:
        await replica_resources.aclose()
    assert await snapshot(resources) == primary_only


async def test_an_interrupted_run_resumes_after_its_last_chunk(settings: Settings) -> None:
    small = Settings(**{**settings.model_dump(), "analytics_chunk_users": 2})
    resources = Resources.open(small, application_name="habitjobs-test")
    try:
        async with resources.db.transaction() as s:
            users = sorted([await add_user(s, zone="Asia/Kathmandu") for _ in range(5)])
        day, now = date(2026, 3, 9), utc(2026, 3, 9, 18, 30)  # 00:15 on the 10th in Kathmandu
        resources.clock = FrozenClock(now)
        # The first chunk committed, then the worker died.
        async with resources.db.transaction() as s:
            await service.open_run(s, "Asia/Kathmandu", day, now)
            chunk = await service.next_chunk(s, "Asia/Kathmandu", day, None, 2)
            assert chunk is not None
            await service.write_chunk(s, chunk, now)
            await service.advance_run(s, "Asia/Kathmandu", day, chunk)
        async with resources.db.transaction() as s:
            await s.execute(text("DELETE FROM daily_stats WHERE user_id = ANY(:ids)"), {"ids": users[:2]})
        result = await run_rollup(resources, "Asia/Kathmandu", day)
        assert result["users"] == 5
        # Resumed after the second user: the first two (whose rows were removed) were not redone.
        done = {u for u in users if await daily(resources, u)}
        assert done == set(users[2:])
        async with resources.db.transaction() as s:
            run = await s.scalar(select(AnalyticsRun))
        assert run is not None
        assert (run.status, run.users_done, run.last_user_id) == ("finished", 5, users[-1])
        assert run.finished_at is not None
        assert run.finished_at - now < timedelta(seconds=1)
    finally:
        await resources.aclose()
