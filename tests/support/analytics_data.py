"""Statistics and streaks from the database's side: rows written directly, jobs run in this process."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.accounts.models import User
from habitjobs.analytics import jobs as analytics_jobs
from habitjobs.analytics.models import DailyStats, HabitStreak, WeeklyStats
from habitjobs.habits.models import FocusSession, Habit, HabitCompletion, Routine
from habitjobs.resources import JobContext, Resources
from habitjobs.sync.entities import completion_id

LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)


async def add_user(
    session: AsyncSession,
    *,
    zone: str = "UTC",
    day_start_minutes: int = 0,
    week_start: int = 0,
    created_at: datetime = LONG_AGO,
    moved_at: datetime | None = None,
) -> uuid.UUID:
    user_id = uuid.uuid4()
    await session.execute(
        insert(User).values(
            id=user_id,
            email=f"{user_id.hex[:12]}@example.com",
            timezone=zone,
            day_start_minutes=day_start_minutes,
            week_start=week_start,
            created_at=created_at,
            timezone_changed_at=moved_at,
        )
    )
    return user_id


async def add_routine(
    session: AsyncSession, user_id: uuid.UUID, kind: str, *, deleted: bool = False
) -> uuid.UUID:
    routine_id = uuid.uuid4()
    await session.execute(
        insert(Routine).values(
            id=routine_id,
            user_id=user_id,
            kind=kind,
            name=kind,
            client_updated_at=LONG_AGO,
            deleted_at=LONG_AGO if deleted else None,
        )
    )
    return routine_id


async def add_habit(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    days_mask: int = 0b1111111,
    created_local_date: date | None = None,
    created_at: datetime = LONG_AGO,
    archived_at: datetime | None = None,
    routine_id: uuid.UUID | None = None,
    deleted: bool = False,
    habit_id: uuid.UUID | None = None,
) -> uuid.UUID:
    habit_id = habit_id or uuid.uuid4()
    await session.execute(
        insert(Habit).values(
            id=habit_id,
            user_id=user_id,
            name="habit",
            days_mask=days_mask,
            created_local_date=created_local_date,
            created_at=created_at,
            archived_at=archived_at,
            routine_id=routine_id,
            client_updated_at=LONG_AGO,
            deleted_at=LONG_AGO if deleted else None,
        )
    )
    return habit_id


async def add_entry(
    session: AsyncSession,
    user_id: uuid.UUID,
    habit_id: uuid.UUID,
    day: date,
    status: str = "done",
    *,
    deleted: bool = False,
) -> None:
    await session.execute(
        insert(HabitCompletion).values(
            id=completion_id(habit_id, day),
            user_id=user_id,
            habit_id=habit_id,
            local_date=day,
            status=status,
            client_updated_at=LONG_AGO,
            deleted_at=LONG_AGO if deleted else None,
        )
    )


async def add_focus(
    session: AsyncSession,
    user_id: uuid.UUID,
    day: date,
    seconds: int,
    *,
    started_at: datetime | None = None,
    status: str = "completed",
    deleted: bool = False,
) -> None:
    await session.execute(
        insert(FocusSession).values(
            id=uuid.uuid4(),
            user_id=user_id,
            started_at=started_at or datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
            focus_seconds=seconds,
            status=status,
            local_date=day,
            client_updated_at=LONG_AGO,
            deleted_at=LONG_AGO if deleted else None,
        )
    )


def job_context(resources: Resources, name: str, job_id: str = "test-job") -> JobContext:
    spec = resources.registry.get(name)
    return JobContext(
        job_id=job_id,
        name=spec.name,
        queue=spec.queue,
        attempt=1,
        max_attempts=spec.policy.attempts,
        resources=resources,
    )


async def run_rollup(resources: Resources, zone: str, day: date) -> dict[str, Any]:
    """Run the ``analytics.daily_rollup`` handler in this process."""
    ctx = job_context(resources, analytics_jobs.DAILY_JOB)
    return await analytics_jobs.daily_rollup(ctx, analytics_jobs.DailyRollup(zone=zone, local_date=day))


async def run_recompute(resources: Resources, user_id: uuid.UUID) -> dict[str, Any]:
    ctx = job_context(resources, analytics_jobs.RECOMPUTE_JOB)
    return await analytics_jobs.recompute_user(ctx, analytics_jobs.RecomputeUser(user_id=user_id))


async def daily(resources: Resources, user_id: uuid.UUID) -> dict[date, DailyStats]:
    async with resources.db.transaction() as session:
        rows = await session.scalars(select(DailyStats).where(DailyStats.user_id == user_id))
        return {r.local_date: r for r in rows}


async def weekly(resources: Resources, user_id: uuid.UUID) -> dict[date, WeeklyStats]:
    async with resources.db.transaction() as session:
        rows = await session.scalars(select(WeeklyStats).where(WeeklyStats.user_id == user_id))
        return {r.week_start: r for r in rows}


async def streak(resources: Resources, habit_id: uuid.UUID) -> HabitStreak | None:
    async with resources.db.transaction() as session:
        return await session.scalar(select(HabitStreak).where(HabitStreak.habit_id == habit_id))


async def snapshot(resources: Resources) -> dict[str, list[tuple[Any, ...]]]:
    """Every derived row, computed_at included, for "re-running changes nothing"."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with resources.db.transaction() as session:
        for table in ("habit_streaks", "daily_stats", "weekly_stats"):
            rows = await session.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))
            out[table] = [tuple(r) for r in rows]
    return out
