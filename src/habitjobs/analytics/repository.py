"""SQL of the analytics domain; the big set-based statement is assembled in ``rollup_sql``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pydantic_core
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.analytics import rollup_sql, streak_sql
from habitjobs.analytics.models import AnalyticsRun, DailyStats, HabitStreak, WeeklyStats
from habitjobs.habits.models import Habit


async def tune_transaction(session: AsyncSession, timeout_ms: int) -> None:
    """Set up this transaction for the analytics statements: any statement running longer than
    ``timeout_ms`` is cancelled (0: no limit), PostgreSQL's JIT is off, and the commit does not wait for
    the WAL flush.

    Why no JIT: the chunk statements are short, but their estimated cost is high (``generate_series`` is
    guessed at 1,000 rows), so the JIT compiles them — measured at 4.9 s of a 5.4 s statement.
    Why an asynchronous commit: every row written here is derived and is recomputed by re-running; a
    server crash can lose only the last moments of commits, and a run's keyset cursor is committed with
    its rows, so a lost chunk is simply done again.
    """
    # One round trip; set_config(..., true) is SET LOCAL that takes bind parameters.
    timeout = ", set_config('statement_timeout', :timeout, true)" if timeout_ms > 0 else ""
    await session.execute(
        text(
            f"SELECT set_config('jit', 'off', true), set_config('synchronous_commit', 'off', true){timeout}"
        ),
        {"timeout": str(int(timeout_ms))} if timeout_ms > 0 else {},
    )


# --- targets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    user_id: uuid.UUID
    day: date


def _arrays(targets: Sequence[Target]) -> dict[str, Any]:
    unique = sorted(set(targets), key=lambda t: (t.user_id, t.day))
    return {"user_ids": [t.user_id for t in unique], "days": [t.day for t in unique]}


@dataclass(frozen=True)
class ChunkUser:
    id: uuid.UUID
    day_start_minutes: int
    week_start: int
    moved_at: datetime | None
    created_at: datetime


async def zone_users_after(
    session: AsyncSession, zone: str, after: uuid.UUID | None, limit: int
) -> list[ChunkUser]:
    """The next ``limit`` users of ``zone`` in id order (keyset: no OFFSET, no drift as users join)."""
    rows = await session.execute(
        text(
            # A plain range (no "IS NULL OR"): an index range scan that starts where the last chunk ended.
            "SELECT id, day_start_minutes, week_start, timezone_changed_at, created_at FROM users "
            "WHERE timezone = :zone AND id > :after ORDER BY id LIMIT :limit"
        ),
        {"zone": zone, "after": after or uuid.UUID(int=0), "limit": limit},
    )
    return [ChunkUser(r[0], int(r[1]), int(r[2]), r[3], r[4]) for r in rows]


# --- the set-based roll-up -----------------------------------------------------------------------


def _rollup_params(
    streak_users: Sequence[uuid.UUID],
    full: bool,
    days: Sequence[Target],
    weeks: Sequence[Target],
    now: datetime,
) -> dict[str, Any]:
    day_arrays, week_arrays = _arrays(days), _arrays(weeks)
    return {
        "streak_users": sorted(set(streak_users)),
        "full": full,
        "day_users": day_arrays["user_ids"],
        "days": day_arrays["days"],
        "week_users": week_arrays["user_ids"],
        "week_starts": week_arrays["days"],
        "now": now,
    }


async def rollup(
    session: AsyncSession,
    now: datetime,
    *,
    streak_users: Sequence[uuid.UUID] = (),
    full: bool = False,
    days: Sequence[Target] = (),
    weeks: Sequence[Target] = (),
    daily_rows: Sequence[dict[str, Any]] | None = None,
) -> None:
    """One statement: the streaks of ``streak_users`` (stepped, or from history when ``full``), the daily
    rows of ``days`` (or the ``daily_rows`` given) and the weekly rows of ``weeks`` (user, first day)."""
    if not (streak_users or days or weeks):
        return
    params = _rollup_params(streak_users, full, days, weeks, now)
    if daily_rows is None:
        await session.execute(rollup_sql.ROLLUP, params)
    else:
        payload = pydantic_core.to_json(list(daily_rows)).decode()
        await session.execute(rollup_sql.ROLLUP_GIVEN_DAILY, {**params, "rows": payload})


async def upsert_streaks(
    session: AsyncSession, user_ids: Sequence[uuid.UUID], now: datetime, *, full: bool
) -> None:
    await rollup(session, now, streak_users=user_ids, full=full)


async def upsert_daily(session: AsyncSession, targets: Sequence[Target], now: datetime) -> None:
    await rollup(session, now, days=targets)


async def upsert_weekly(session: AsyncSession, weeks: Sequence[Target], now: datetime) -> None:
    """Weekly rows from the stored daily rows of each week."""
    await rollup(session, now, weeks=weeks)


async def select_daily(
    session: AsyncSession, targets: Sequence[Target], now: datetime
) -> list[dict[str, Any]]:
    """Compute the daily rows without writing them (on a read replica)."""
    if not targets:
        return []
    result = await session.execute(rollup_sql.SELECT_DAILY, _rollup_params((), False, targets, (), now))
    return [dict(row) for row in result.mappings()]


async def delete_orphan_streaks(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(text(streak_sql.DELETE_ORPHANS), {"user_id": user_id})


# --- runs ----------------------------------------------------------------------------------------


async def claim_run(session: AsyncSession, zone: str, day: date, now: datetime) -> AnalyticsRun:
    """The run of (zone, day), created as running if new, locked for this transaction."""
    await session.execute(
        insert(AnalyticsRun)
        .values(timezone=zone, local_date=day, status="running", started_at=now, users_done=0)
        .on_conflict_do_nothing(index_elements=[AnalyticsRun.timezone, AnalyticsRun.local_date])
    )
    run = await session.scalar(
        select(AnalyticsRun)
        .where(AnalyticsRun.timezone == zone, AnalyticsRun.local_date == day)
        .with_for_update()
    )
    assert run is not None  # inserted or present just above, in this transaction
    return run


async def advance_run(
    session: AsyncSession, zone: str, day: date, last_user_id: uuid.UUID, users: int
) -> None:
    await session.execute(
        text(
            "UPDATE analytics_runs SET last_user_id = :last, users_done = users_done + :users "
            "WHERE timezone = :zone AND local_date = :day"
        ),
        {"last": last_user_id, "users": users, "zone": zone, "day": day},
    )


async def finish_run(session: AsyncSession, zone: str, day: date, now: datetime) -> None:
    await session.execute(
        text(
            "UPDATE analytics_runs SET status = 'finished', finished_at = :now "
            "WHERE timezone = :zone AND local_date = :day"
        ),
        {"now": now, "zone": zone, "day": day},
    )


async def zones_in_use(session: AsyncSession) -> list[str]:
    rows = await session.scalars(text("SELECT DISTINCT timezone FROM users ORDER BY timezone"))
    return list(rows)


async def finished_runs(session: AsyncSession, pairs: Sequence[tuple[str, date]]) -> set[tuple[str, date]]:
    if not pairs:
        return set()
    rows = await session.execute(
        text(
            "SELECT r.timezone, r.local_date FROM analytics_runs r "
            "JOIN unnest(CAST(:zones AS text[]), CAST(:days AS date[])) AS x(zone, day) "
            "ON r.timezone = x.zone AND r.local_date = x.day WHERE r.status = 'finished'"
        ),
        {"zones": [z for z, _ in pairs], "days": [d for _, d in pairs]},
    )
    return {(r[0], r[1]) for r in rows}


# --- dirty marks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Marks:
    days: list[tuple[date, datetime]]
    habits: list[tuple[uuid.UUID, datetime]]


async def read_marks(session: AsyncSession, user_id: uuid.UUID) -> Marks:
    days = await session.execute(
        text("SELECT local_date, marked_at FROM stats_dirty_days WHERE user_id = :u ORDER BY local_date"),
        {"u": user_id},
    )
    habits = await session.execute(
        text("SELECT habit_id, marked_at FROM streak_dirty WHERE user_id = :u ORDER BY habit_id"),
        {"u": user_id},
    )
    return Marks([(r[0], r[1]) for r in days], [(r[0], r[1]) for r in habits])


async def clear_marks(session: AsyncSession, user_id: uuid.UUID, marks: Marks) -> None:
    """Delete the marks that were read, unless marked again since (then a later recompute needs them)."""
    if marks.days:
        await session.execute(
            text(
                "DELETE FROM stats_dirty_days s USING unnest(CAST(:days AS date[]), "
                "CAST(:ats AS timestamptz[])) AS x(day, at) "
                "WHERE s.user_id = :u AND s.local_date = x.day AND s.marked_at = x.at"
            ),
            {"u": user_id, "days": [d for d, _ in marks.days], "ats": [a for _, a in marks.days]},
        )
    if marks.habits:
        await session.execute(
            text(
                "DELETE FROM streak_dirty s USING unnest(CAST(:habits AS uuid[]), "
                "CAST(:ats AS timestamptz[])) AS x(habit_id, at) "
                "WHERE s.user_id = :u AND s.habit_id = x.habit_id AND s.marked_at = x.at"
            ),
            {"u": user_id, "habits": [h for h, _ in marks.habits], "ats": [a for _, a in marks.habits]},
        )


async def users_with_stale_marks(session: AsyncSession, older_than_s: float, limit: int) -> list[uuid.UUID]:
    # The marks carry the database's clock (sync stamps them with now()), so the age is measured by it.
    rows = await session.scalars(
        text(
            "SELECT user_id FROM stats_dirty_days WHERE marked_at < now() - make_interval(secs => :age) "
            "UNION SELECT user_id FROM streak_dirty WHERE marked_at < now() - make_interval(secs => :age) "
            "LIMIT :limit"
        ),
        {"age": older_than_s, "limit": limit},
    )
    return list(rows)


@dataclass(frozen=True)
class UserClock:
    week_start: int
    today: date  # the user's local day at the given instant, as PostgreSQL reckons it (as the statements do)


async def user_clock(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> UserClock | None:
    row = (
        await session.execute(
            text(
                "SELECT week_start, ((CAST(:now AS timestamptz) AT TIME ZONE timezone) "
                "- day_start_minutes * interval '1 minute')::date FROM users WHERE id = :u"
            ),
            {"now": now, "u": user_id},
        )
    ).first()
    return None if row is None else UserClock(int(row[0]), row[1])


# --- reads for the API ---------------------------------------------------------------------------


async def daily_rows(session: AsyncSession, user_id: uuid.UUID, first: date, last: date) -> list[DailyStats]:
    rows = await session.scalars(
        select(DailyStats)
        .where(DailyStats.user_id == user_id, DailyStats.local_date.between(first, last))
        .order_by(DailyStats.local_date)
    )
    return list(rows)


async def weekly_rows(
    session: AsyncSession, user_id: uuid.UUID, first: date, last: date
) -> list[WeeklyStats]:
    rows = await session.scalars(
        select(WeeklyStats)
        .where(WeeklyStats.user_id == user_id, WeeklyStats.week_start.between(first, last))
        .order_by(WeeklyStats.week_start)
    )
    return list(rows)


async def habit_streak(
    session: AsyncSession, user_id: uuid.UUID, habit_id: uuid.UUID
) -> tuple[bool, HabitStreak | None]:
    """Whether the user has this live habit, and its streak row (None when never computed)."""
    result = await session.execute(
        select(Habit.id, HabitStreak)
        .outerjoin(HabitStreak, (HabitStreak.habit_id == Habit.id) & (HabitStreak.user_id == Habit.user_id))
        .where(Habit.id == habit_id, Habit.user_id == user_id, Habit.deleted_at.is_(None))
    )
    row = result.first()
    return (False, None) if row is None else (True, row[1])


_DELETE_FINISHED_RUNS = text(
    "DELETE FROM analytics_runs WHERE (timezone, local_date) IN ("
    "  SELECT timezone, local_date FROM analytics_runs WHERE status = 'finished' AND local_date < :before "
    "  LIMIT :limit FOR UPDATE SKIP LOCKED)"
)


async def delete_finished_runs(session: AsyncSession, before: date, limit: int) -> int:
    """Delete up to ``limit`` finished runs of local days before ``before`` (retention)."""
    result = await session.execute(_DELETE_FINISHED_RUNS, {"before": before, "limit": limit})
    return int(getattr(result, "rowcount", 0) or 0)
