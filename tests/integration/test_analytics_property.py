"""Property: on random data, the set-based statements equal a straightforward per-user Python computation
(the pure rules) — daily rows, weekly rows, streaks recomputed from history, and streaks stepped forward
night after night."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.analytics import repository as repo
from habitjobs.analytics.days import HabitLife, day_bounds, day_start, is_due, local_day, week_start_of
from habitjobs.analytics.models import DailyStats, HabitStreak, WeeklyStats
from habitjobs.analytics.repository import Target
from habitjobs.analytics.rules import DailyRow, FocusFacts, HabitFacts, daily_row, weekly_row
from habitjobs.analytics.streaks import DueDays, Streak, compute
from habitjobs.habits.models import HabitCompletion
from habitjobs.resources import Resources
from tests.support.analytics_data import add_entry, add_focus, add_habit, add_routine, add_user

# The weeks around the 2026 DST changes of March (New York and St John's on the 8th, Berlin on the 29th)
# and early April (Lord Howe's half hour and Chatham on the 5th), and zones with odd offsets.
BASE = date(2026, 3, 4)
SPAN = 33
ZONES = [
    "UTC",
    "America/New_York",
    "America/St_Johns",
    "Europe/Berlin",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
]
# 150 = 02:30, a wall time the spring-forward night skips.
DAY_STARTS = [0, 0, 90, 150, 240]


def _day(offset: int) -> date:
    return BASE + timedelta(days=offset)


def _instant(minutes: int) -> datetime:
    return datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=minutes)


# An instant as (local day offset, minutes after that day began for this user): drawn near the edges a
# 23-, 24- or 25-hour day has, so that a day bound off by an hour shows.
# Day offsets of the DST changes in the window (and the days around them), drawn often.
DST_DAYS = [3, 4, 5, 24, 25, 26, 31, 32]
local_moments = st.tuples(
    st.sampled_from(DST_DAYS) | st.integers(-3, SPAN),
    st.sampled_from([0, 1, 59, 61, 1379, 1381, 1409, 1411, 1439, 1441, 1469, 1471, 1499])
    | st.integers(0, 1500),
)


def _moment(moment: tuple[int, int], zone: str, shift: int) -> datetime:
    offset, minutes = moment
    return day_start(_day(offset), zone, shift) + timedelta(minutes=minutes)


@dataclass
class HabitSpec:
    mask: int
    created_local: int | None
    created_moment: tuple[int, int]
    archived_moment: tuple[int, int] | None
    routine: str | None  # 'morning', 'evening', 'gone' (a deleted routine) or None
    deleted: bool
    entries: dict[int, tuple[str, bool]]  # day offset → (status, deleted)


@dataclass
class UserSpec:
    zone: str
    day_start: int
    week_start: int
    habits: list[HabitSpec]
    focus: list[tuple[int, int, str, bool]]  # (day offset, seconds, status, deleted)


habit_specs = st.builds(
    HabitSpec,
    mask=st.integers(1, 127),
    created_local=st.none() | st.integers(-3, SPAN),
    created_moment=local_moments,
    archived_moment=st.none() | st.none() | local_moments,
    routine=st.sampled_from([None, "morning", "evening", "gone"]),
    deleted=st.sampled_from([False, False, False, False, True]),
    entries=st.dictionaries(
        st.integers(-2, SPAN + 1),
        st.tuples(
            st.sampled_from(["done", "done", "done", "skipped"]), st.sampled_from([False, False, False, True])
        ),
        max_size=SPAN,
    ),
)

user_specs = st.builds(
    UserSpec,
    zone=st.sampled_from(ZONES),
    day_start=st.sampled_from(DAY_STARTS),
    week_start=st.integers(0, 6),
    habits=st.lists(habit_specs, min_size=1, max_size=4),
    focus=st.lists(
        st.tuples(
            st.integers(0, SPAN - 1),
            st.integers(0, 4 * 3600),
            st.sampled_from(["completed", "completed", "aborted"]),
            st.booleans(),
        ),
        max_size=5,
    ),
)


@dataclass
class Built:
    user_id: uuid.UUID
    spec: UserSpec
    habits: dict[uuid.UUID, HabitFacts] = field(default_factory=dict)
    live_entries: dict[uuid.UUID, dict[date, str]] = field(default_factory=dict)
    focus: dict[date, list[FocusFacts]] = field(default_factory=dict)


async def _build(resources: Resources, spec: UserSpec) -> Built:
    async with resources.db.transaction() as session:
        user_id = await add_user(
            session, zone=spec.zone, day_start_minutes=spec.day_start, week_start=spec.week_start
        )
        built = Built(user_id, spec)
        routines = {
            "morning": await add_routine(session, user_id, "morning"),
            "evening": await add_routine(session, user_id, "evening"),
            "gone": await add_routine(session, user_id, "morning", deleted=True),
        }
        for h in spec.habits:
            life = HabitLife(
                days_mask=h.mask,
                created_local_date=None if h.created_local is None else _day(h.created_local),
                created_at=_moment(h.created_moment, spec.zone, spec.day_start),
                archived_at=None
                if h.archived_moment is None
                else _moment(h.archived_moment, spec.zone, spec.day_start),
                deleted=h.deleted,
            )
            habit_id = await add_habit(
                session,
                user_id,
                days_mask=life.days_mask,
                created_local_date=life.created_local_date,
                created_at=life.created_at,
                archived_at=life.archived_at,
                routine_id=routines[h.routine] if h.routine else None,
                deleted=h.deleted,
            )
            kind = h.routine if h.routine in ("morning", "evening") else None
            built.habits[habit_id] = HabitFacts(life, kind)
            built.live_entries[habit_id] = {}
            for offset, (status, gone) in h.entries.items():
                await add_entry(session, user_id, habit_id, _day(offset), status, deleted=gone)
                if not gone:
                    built.live_entries[habit_id][_day(offset)] = status
        for offset, seconds, status, gone in spec.focus:
            await add_focus(session, user_id, _day(offset), seconds, status=status, deleted=gone)
            built.focus.setdefault(_day(offset), []).append(FocusFacts(seconds, status, gone))
    return built


def _expected_daily(b: Built, day: date) -> DailyRow:
    bounds = day_bounds(day, b.spec.zone, b.spec.day_start)
    entries = {h: e[day] for h, e in b.live_entries.items() if day in e}
    return daily_row(bounds, b.habits, entries, b.focus.get(day, []))


def _as_row(r: DailyStats) -> DailyRow:
    return DailyRow(
        r.habits_due,
        r.habits_done,
        r.habits_skipped,
        r.completion_rate,
        r.perfect_day,
        r.morning_pct,
        r.evening_pct,
        r.focus_sessions,
        r.focus_seconds,
        r.longest_focus_seconds,
    )


def _schedule(b: Built, facts: HabitFacts) -> DueDays:
    life, zone, shift = facts.life, b.spec.zone, b.spec.day_start
    return DueDays(
        life.days_mask,
        life.created_local_date or local_day(life.created_at, zone, shift),
        None if life.archived_at is None else local_day(life.archived_at, zone, shift),
    )


async def _streaks(resources: Resources, user_id: uuid.UUID) -> dict[uuid.UUID, Streak]:
    async with resources.db.transaction() as session:
        rows = await session.scalars(select(HabitStreak).where(HabitStreak.user_id == user_id))
        return {
            r.habit_id: Streak(r.current_streak, r.best_streak, r.last_done_date, r.computed_through)
            for r in rows
        }


def _expected_streaks(b: Built, now: datetime) -> dict[uuid.UUID, Streak]:
    today = local_day(now, b.spec.zone, b.spec.day_start)
    return {
        h: compute(_schedule(b, facts), b.live_entries[h], today)
        for h, facts in b.habits.items()
        if not facts.life.deleted
    }


PROPERTY = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _edge_user(zone: str, offset: int, minutes: int) -> UserSpec:
    """A habit created, and another archived, inside the hour by which a DST day differs from 24 h."""
    created = HabitSpec(0b1111111, None, (offset, minutes), None, None, False, {})
    archived = HabitSpec(
        0b1111111, None, (-3, 0), (offset, minutes), "evening", False, {offset - 1: ("done", False)}
    )
    return UserSpec(zone, 0, 0, [created, archived], [])


@PROPERTY
@given(users=st.lists(user_specs, min_size=1, max_size=3))
@example(users=[_edge_user("America/New_York", 4, 1411)])  # 23 h 31 min into the 23-hour 2026-03-08
@example(users=[_edge_user("Pacific/Chatham", 32, 1469)])  # 24 h 29 min into the 25-hour 2026-04-05
async def test_daily_and_weekly_rows_equal_the_per_user_computation(
    resources: Resources, users: list[UserSpec]
) -> None:
    built = [await _build(resources, u) for u in users]
    now = _instant(40 * 24 * 60)
    days = [Target(b.user_id, _day(i)) for b in built for i in range(SPAN)]
    weeks = sorted(
        {
            Target(b.user_id, week_start_of(_day(i), b.spec.week_start))
            for b in built
            for i in range(SPAN)
            if week_start_of(_day(i), b.spec.week_start) >= BASE
            and week_start_of(_day(i), b.spec.week_start) + timedelta(days=6) < _day(SPAN)
        },
        key=lambda t: (t.user_id, t.day),
    )
    async with resources.db.transaction() as session:
        await repo.upsert_daily(session, days, now)
        await repo.upsert_weekly(session, weeks, now)
    async with resources.db.transaction() as session:
        ids = [b.user_id for b in built]
        daily = (await session.scalars(select(DailyStats).where(DailyStats.user_id.in_(ids)))).all()
        weekly = (await session.scalars(select(WeeklyStats).where(WeeklyStats.user_id.in_(ids)))).all()
    by_user = {b.user_id: b for b in built}
    got_daily = {(r.user_id, r.local_date): _as_row(r) for r in daily}
    assert got_daily == {(t.user_id, t.day): _expected_daily(by_user[t.user_id], t.day) for t in days}

    expected_weekly = {}
    for t in weeks:
        b = by_user[t.user_id]
        week = [t.day + timedelta(days=i) for i in range(7)]
        habit_weeks = []
        for h, facts in b.habits.items():
            statuses = []
            for d in week:
                entry = b.live_entries[h].get(d)
                bounds = day_bounds(d, b.spec.zone, b.spec.day_start)
                if is_due(facts.life, bounds, has_entry=entry is not None):
                    statuses.append(entry)
            habit_weeks.append(statuses)
        expected_weekly[(t.user_id, t.day)] = weekly_row([_expected_daily(b, d) for d in week], habit_weeks)
    got_weekly = {(r.user_id, r.week_start): r for r in weekly}
    assert set(got_weekly) == set(expected_weekly)
    for key, row in got_weekly.items():
        want = expected_weekly[key]
        got = (
            row.days_active,
            row.perfect_days,
            row.habits_done,
            row.avg_completion_rate,
            row.focus_seconds,
            row.best_streak,
        )
        assert got == (
            want.days_active,
            want.perfect_days,
            want.habits_done,
            want.avg_completion_rate,
            want.focus_seconds,
            want.best_streak,
        ), key


@PROPERTY
@given(
    users=st.lists(user_specs, min_size=1, max_size=3),
    start_minute=st.integers(0, SPAN * 24 * 60),
    steps=st.lists(st.integers(1, 40 * 60), min_size=1, max_size=8),
    late_today=st.lists(st.booleans(), min_size=8, max_size=8),
)
async def test_streaks_recomputed_or_stepped_equal_the_per_user_computation(
    resources: Resources, users: list[UserSpec], start_minute: int, steps: list[int], late_today: list[bool]
) -> None:
    built = [await _build(resources, u) for u in users]
    ids = [b.user_id for b in built]
    now = _instant(start_minute)
    # From the history, in one statement.
    async with resources.db.transaction() as session:
        await repo.upsert_streaks(session, ids, now, full=True)
    for b in built:
        assert await _streaks(resources, b.user_id) == _expected_streaks(b, now)

    # Stepped forward night after night (including twice in one day and skipped nights), with entries
    # arriving for the day that is still open — what the nightly path sees.
    async with resources.db.transaction() as session:
        await session.execute(delete(HabitStreak).where(HabitStreak.user_id.in_(ids)))
    for minutes, add_today in zip(steps, late_today, strict=False):
        now += timedelta(minutes=minutes)
        if add_today:
            async with resources.db.transaction() as session:
                for b in built:
                    today = local_day(now, b.spec.zone, b.spec.day_start)
                    for h in b.habits:
                        # A day with any row already (even a tombstone) keeps it: ids are per (habit, day).
                        if not await _has_any_entry(session, h, today):
                            await add_entry(session, b.user_id, h, today, "done")
                            b.live_entries[h][today] = "done"
        async with resources.db.transaction() as session:
            await repo.upsert_streaks(session, ids, now, full=False)
        for b in built:
            assert await _streaks(resources, b.user_id) == _expected_streaks(b, now), now


async def _has_any_entry(session: AsyncSession, habit_id: uuid.UUID, day: date) -> bool:
    found = await session.scalar(
        select(HabitCompletion.id).where(
            HabitCompletion.habit_id == habit_id, HabitCompletion.local_date == day
        )
    )
    return found is not None
