"""Use-cases of statistics and streaks. Services never commit: the job or request scope does.

The nightly path (``analytics.daily_rollup``) works through one zone's users in keyset chunks; per chunk,
three set-based statements: streaks stepped forward, the daily rows, the weekly rows of weeks that
just closed. The late-data path (``analytics.recompute_user``) redoes one user's dirty days, the closed
weeks holding them, and all of the user's streaks from their history.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.accounts.timezones import is_valid_zone
from habitjobs.analytics import repository as repo
from habitjobs.analytics.days import closes_week, day_start, week_start_of
from habitjobs.analytics.repository import Target
from habitjobs.analytics.rules import rollup_days
from habitjobs.analytics.schemas import (
    MAX_DAILY_DAYS,
    MAX_WEEKLY_DAYS,
    DailyStatsOut,
    DailyStatsPage,
    StreakOut,
    WeekChange,
    WeeklyStatsOut,
    WeeklyStatsPage,
)
from habitjobs.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)

# A user who changed zone this long before a run may have fallen between two zones' runs.
MOVED_RECENTLY = timedelta(days=2)


def daily_job_id(zone: str, day: date) -> str:
    """The rollup's deterministic job id, e.g. ``daily-America_New_York-2026-03-09`` (no ':' allowed)."""
    return f"daily-{zone.replace('/', '_')}-{day.isoformat()}"


def zone_day_ended_at(zone: str, day: date) -> datetime:
    """The instant ``day`` ends at local midnight in ``zone`` (UTC; DST-aware)."""
    return day_start(day + timedelta(days=1), zone)


async def zones_needing_rollup(
    session: AsyncSession, now: datetime, *, lookback_days: int = 1
) -> list[tuple[str, date]]:
    """(zone, local day) pairs whose nightly run is due: for every zone a user lives in, each of the last
    ``lookback_days`` local days that has ended there and has no *finished* ``analytics_runs`` row.

    State-based, not window-based: whatever tick sees a pair first enqueues it, a missed tick changes
    nothing, odd offsets (+05:45, +12:45) and DST need no special case. Pairs come in zone order, oldest
    day first. Enqueue each with :func:`daily_job_id` as the job id (a pair already queued or running is
    then not queued twice).
    """
    pairs: list[tuple[str, date]] = []
    for zone in await repo.zones_in_use(session):
        if not is_valid_zone(zone):
            log.warning("users have timezone %r, which is not an IANA zone; no statistics for them", zone)
            continue
        today = now.astimezone(ZoneInfo(zone)).date()
        pairs.extend((zone, today - timedelta(days=back)) for back in range(lookback_days, 0, -1))
    finished = await repo.finished_runs(session, pairs)
    return [pair for pair in pairs if pair not in finished]


# --- the nightly roll-up -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunState:
    finished: bool
    last_user_id: uuid.UUID | None
    users_done: int


async def open_run(session: AsyncSession, zone: str, day: date, now: datetime) -> RunState:
    """Start the run of (zone, day), or find where an interrupted one stopped."""
    run = await repo.claim_run(session, zone, day, now)
    return RunState(run.status == "finished", run.last_user_id, run.users_done)


async def finish_run(session: AsyncSession, zone: str, day: date, now: datetime) -> None:
    await repo.finish_run(session, zone, day, now)


@dataclass(frozen=True)
class Chunk:
    user_ids: list[uuid.UUID]
    last_user_id: uuid.UUID
    days: list[Target]  # (user, local day) daily rows to compute
    weeks: list[Target]  # (user, first day of a week that closed with one of those days)


async def next_chunk(
    session: AsyncSession, zone: str, run_day: date, after: uuid.UUID | None, limit: int
) -> Chunk | None:
    """The next users of the zone after ``after`` and what the run computes for each; None at the end."""
    users = await repo.zone_users_after(session, zone, after, limit)
    if not users:
        return None
    # Fixed by (zone, day), not by the clock: a retried run computes exactly what the first try did.
    reference = zone_day_ended_at(zone, run_day)
    # No rows for a day that ended before the user joined: compared here, where the users' rows already are.
    ends: dict[tuple[date, int], datetime] = {}
    days = []
    for u in users:
        for day in rollup_days(
            run_day,
            u.day_start_minutes,
            moved_recently=u.moved_at is not None and u.moved_at >= reference - MOVED_RECENTLY,
        ):
            key = (day, u.day_start_minutes)
            if key not in ends:
                ends[key] = day_start(day + timedelta(days=1), zone, u.day_start_minutes)
            if u.created_at < ends[key]:
                days.append(Target(u.id, day))
    week_start = {u.id: u.week_start for u in users}
    weeks = [
        Target(t.user_id, week_start_of(t.day, week_start[t.user_id]))
        for t in days
        if closes_week(t.day, week_start[t.user_id])
    ]
    return Chunk([u.id for u in users], users[-1].id, days, weeks)


async def compute_daily(session: AsyncSession, chunk: Chunk, now: datetime) -> list[dict[str, Any]]:
    """The chunk's daily rows, read only: what a read replica does."""
    return await repo.select_daily(session, chunk.days, now)


async def write_chunk(
    session: AsyncSession, chunk: Chunk, now: datetime, *, daily_rows: list[dict[str, Any]] | None = None
) -> None:
    """Streaks stepped forward, daily rows (computed here, or given by a replica), the weekly rows of the
    weeks that closed — one statement."""
    await repo.rollup(
        session,
        now,
        streak_users=chunk.user_ids,
        days=chunk.days,
        weeks=chunk.weeks,
        daily_rows=daily_rows,
    )


async def advance_run(session: AsyncSession, zone: str, day: date, chunk: Chunk) -> None:
    await repo.advance_run(session, zone, day, chunk.last_user_id, len(chunk.user_ids))


# --- late data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recomputed:
    days: int
    weeks: int
    habits_marked: int


async def recompute_user(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> Recomputed | None:
    """Recompute what late or changed data made stale: the dirty days, the closed weeks holding them, and
    every streak of the user from its history. Clears the marks it handled (a mark set again meanwhile
    stays for the next run). None when the user is gone."""
    clock = await repo.user_clock(session, user_id, now)
    if clock is None:
        return None
    today = clock.today
    marks = await repo.read_marks(session, user_id)
    days = [Target(user_id, day) for day, _ in marks.days]
    starts = {week_start_of(t.day, clock.week_start) for t in days}
    weeks = [Target(user_id, start) for start in sorted(starts) if start + timedelta(days=6) < today]
    await repo.rollup(session, now, streak_users=[user_id], full=True, days=days, weeks=weeks)
    await repo.delete_orphan_streaks(session, user_id)
    await repo.clear_marks(session, user_id, marks)
    return Recomputed(len(days), len(weeks), len(marks.habits))


async def users_with_stale_marks(session: AsyncSession, older_than_s: float, limit: int) -> list[uuid.UUID]:
    """Users whose dirty marks have waited longer than ``older_than_s`` (their recompute was lost)."""
    return await repo.users_with_stale_marks(session, older_than_s, limit)


# --- reads for the API ---------------------------------------------------------------------------


def check_range(first: date, last: date, *, max_days: int) -> None:
    """Refuse a reversed or too long range, naming the parameter at fault."""
    if first > last:
        raise InvalidInput(f"from ({first}) is after to ({last})", field="from")
    if (last - first).days + 1 > max_days:
        raise InvalidInput(f"the range may span at most {max_days} days", field="to")


async def daily_stats(session: AsyncSession, user_id: uuid.UUID, first: date, last: date) -> DailyStatsPage:
    check_range(first, last, max_days=MAX_DAILY_DAYS)
    rows = await repo.daily_rows(session, user_id, first, last)
    days = [DailyStatsOut.model_validate(r, from_attributes=True) for r in rows]
    return DailyStatsPage(from_=first, to=last, days=days)


def _change(this: WeeklyStatsOut, before: WeeklyStatsOut | None) -> WeekChange | None:
    if before is None:
        return None
    rate = None
    if this.avg_completion_rate is not None and before.avg_completion_rate is not None:
        rate = this.avg_completion_rate - before.avg_completion_rate
    return WeekChange(
        habits_done=this.habits_done - before.habits_done,
        focus_seconds=this.focus_seconds - before.focus_seconds,
        days_active=this.days_active - before.days_active,
        avg_completion_rate=rate,
    )


async def weekly_stats(session: AsyncSession, user_id: uuid.UUID, first: date, last: date) -> WeeklyStatsPage:
    """Weeks starting in [first, last], each with its change against the week before it."""
    check_range(first, last, max_days=MAX_WEEKLY_DAYS)
    rows = await repo.weekly_rows(session, user_id, first - timedelta(days=7), last)
    weeks = {r.week_start: WeeklyStatsOut.model_validate(r, from_attributes=True) for r in rows}
    out = [
        week.model_copy(update={"change": _change(week, weeks.get(start - timedelta(days=7)))})
        for start, week in weeks.items()
        if start >= first
    ]
    return WeeklyStatsPage(from_=first, to=last, weeks=out)


async def habit_streak(session: AsyncSession, user_id: uuid.UUID, habit_id: uuid.UUID) -> StreakOut:
    exists, streak = await repo.habit_streak(session, user_id, habit_id)
    if not exists:
        raise NotFound(f"habit {habit_id} not found")
    if streak is None:
        return StreakOut(
            habit_id=habit_id,
            current_streak=0,
            best_streak=0,
            last_done_date=None,
            computed_through=None,
            computed_at=None,
        )
    return StreakOut.model_validate(streak, from_attributes=True)


async def delete_finished_runs(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Retention: finished nightly runs of local days well before ``cutoff`` go (a day earlier than the
    cutoff's UTC date, so that no zone's day the planner may still look at is among them)."""
    return await repo.delete_finished_runs(session, cutoff.date() - timedelta(days=1), limit)
