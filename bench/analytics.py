"""Analytics benchmark: one zone's nightly roll-up, set-based vs. a per-user loop, in the same run.

    .venv/bin/python -m bench.analytics                      # 100,000 users × 5 habits, ~3-4 minutes
    .venv/bin/python -m bench.analytics --users 20000 --sample 1000 --reps 5

The data: ``--users`` users in one zone (Europe/Berlin), each with a morning and an evening routine and
5 habits (70% daily, the rest Mon/Wed/Fri, weekdays or weekends), entries on the rolled-up day for ~85% of
the habits due (9 in 10 done, 1 in 10 skipped), 0-3 focus sessions per user (1 in 8 aborted), plus
``--history-days`` earlier days of entries and daily rows. The day is a Sunday, so the run also closes
every user's week (the heaviest night). Streak state is seeded as the previous night left it (computed
from the seeded history).

- set-based: the ``analytics.daily_rollup`` handler as a worker runs it — keyset chunks of 1,000 users,
  per chunk one streak statement, one daily ``INSERT … SELECT … GROUP BY … ON CONFLICT``, one weekly one.
- per-user loop: the same results one user at a time, the way a first version would do it — read the
  user, habits, the day's entries and focus sessions, each habit's history and the week's rows, compute
  with the pure rules in Python, upsert the rows. It runs on ``--sample`` users (a whole pass would take
  minutes) and is extrapolated linearly to all users; its rows are checked equal to the set-based ones.

A B A B after a warm-up, ``--reps`` repetitions, medians; the derived tables are reset to the seeded
state (and vacuumed) before every measured pass. A private database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bench._common import REDIS_URL, drop_prefix, machine, median, private_database, table
from habitjobs.analytics import jobs as analytics_jobs
from habitjobs.analytics import repository as repo
from habitjobs.analytics.days import HabitLife, closes_week, day_bounds, is_due, local_day, week_start_of
from habitjobs.analytics.rules import DailyRow, FocusFacts, HabitFacts, daily_row, weekly_row
from habitjobs.analytics.streaks import DueDays, compute
from habitjobs.clock import FrozenClock
from habitjobs.config import Settings
from habitjobs.resources import JobContext, Resources

ZONE = "Europe/Berlin"
DAY = date(2026, 3, 15)  # a Sunday
NOW = datetime(2026, 3, 15, 23, 5, tzinfo=UTC)  # 00:05 on the 16th in Berlin
CREATED = datetime(2025, 1, 1, tzinfo=UTC)

# --- the data ------------------------------------------------------------------------------------

SEED = [
    # Users, then their two routines.
    """
    INSERT INTO users (id, email, timezone, created_at)
    SELECT gen_random_uuid(), 'bench-' || i || '@example.com', :zone, :created
    FROM generate_series(1, :users) AS i
    """,
    """
    INSERT INTO routines (id, user_id, kind, name, client_updated_at)
    SELECT gen_random_uuid(), u.id, k.kind, k.kind, :created
    FROM users u CROSS JOIN (VALUES ('morning'), ('evening')) AS k(kind)
    """,
    # Five habits per user: two in the morning routine, two in the evening one, one on its own. (random()
    # in a select list is drawn per row; in a LATERAL that depends on little, Memoize would reuse it.)
    """
    INSERT INTO habits (id, user_id, routine_id, name, days_mask, created_local_date, created_at,
                        client_updated_at)
    SELECT gen_random_uuid(), x.user_id,
           CASE WHEN x.n <= 2 THEN x.morning WHEN x.n <= 4 THEN x.evening END,
           'habit ' || x.n,
           CASE WHEN x.r < 0.7 THEN 127 WHEN x.r < 0.8 THEN 21 WHEN x.r < 0.9 THEN 31 ELSE 96 END,
           DATE '2025-01-01', :created, :created
    FROM (SELECT u.id AS user_id, m.id AS morning, e.id AS evening, n, random() AS r
          FROM users u
          JOIN routines m ON m.user_id = u.id AND m.kind = 'morning'
          JOIN routines e ON e.user_id = u.id AND e.kind = 'evening'
          CROSS JOIN generate_series(1, 5) AS n) AS x
    """,
    # Entries on the due days of the day and the days before it.
    """
    INSERT INTO habit_completions (id, user_id, habit_id, local_date, status, client_updated_at)
    SELECT gen_random_uuid(), h.user_id, h.id, d.day,
           CASE WHEN random() < 0.9 THEN 'done' ELSE 'skipped' END, :created
    FROM habits h
    CROSS JOIN LATERAL (SELECT (CAST(:day AS date) - i) AS day
                        FROM generate_series(0, :history) AS i) AS d
    WHERE (h.days_mask & (1 << (extract(isodow FROM d.day)::int - 1))) <> 0 AND random() < 0.85
    """,
    # Focus sessions of the day: 0-3 per user.
    """
    INSERT INTO focus_sessions (id, user_id, started_at, focus_seconds, status, local_date,
                                client_updated_at)
    SELECT gen_random_uuid(), x.user_id, CAST(:now AS timestamptz) - interval '10 hours',
           300 + (random() * 3000)::int,
           CASE WHEN random() < 0.125 THEN 'aborted' ELSE 'completed' END, CAST(:day AS date), :created
    FROM (SELECT u.id AS user_id, (random() * 3.4)::int AS sessions FROM users u) AS x
    CROSS JOIN LATERAL generate_series(1, x.sessions) AS n
    """,
    # What the previous nights left: daily rows of the week so far (streaks: see ``seed``).
    """
    INSERT INTO daily_stats (user_id, local_date, habits_due, habits_done, habits_skipped, completion_rate,
                             perfect_day, focus_sessions, focus_seconds, longest_focus_seconds, computed_at)
    SELECT u.id, CAST(:day AS date) - i, 5, 4, 0, 0.8, false, 1, 1500, 1500, :created
    FROM users u CROSS JOIN generate_series(1, :history) AS i
    """,
]

RESET = [
    "TRUNCATE analytics_runs, weekly_stats",
    "DELETE FROM daily_stats WHERE local_date = :day",
    "TRUNCATE habit_streaks",
    "INSERT INTO habit_streaks SELECT * FROM bench_streak_seed",
]


async def seed(resources: Resources, users: int, history: int) -> dict[str, int]:
    params = {"zone": ZONE, "created": CREATED, "users": users, "day": DAY, "now": NOW, "history": history}
    async with resources.db.transaction() as session:
        await session.execute(text("SET LOCAL jit = off"))
        await session.execute(text("SET LOCAL statement_timeout = 0"))  # seeding takes a while
        for statement in SEED:
            await session.execute(text(statement), params)
    # Each habit's streak as the previous night left it, from the seeded history.
    async with resources.db.transaction() as session:
        ids = list(await session.scalars(text("SELECT id FROM users ORDER BY id")))
    for start in range(0, len(ids), 5_000):
        async with resources.db.transaction() as session:
            await repo.tune_transaction(session, 0)
            await repo.upsert_streaks(session, ids[start : start + 5_000], NOW - timedelta(days=1), full=True)
    async with resources.db.transaction() as session:
        await session.execute(text("CREATE TABLE bench_streak_seed AS SELECT * FROM habit_streaks"))
    # What autovacuum would have done by the night: visibility maps and planner statistics.
    async with resources.db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
    counts: dict[str, int] = {}
    async with resources.db.transaction() as session:
        for name, sql in {
            "habits": "SELECT count(*) FROM habits",
            "entries that day": "SELECT count(*) FROM habit_completions WHERE local_date = :day",
            "focus sessions that day": "SELECT count(*) FROM focus_sessions WHERE local_date = :day",
            "entries in all": "SELECT count(*) FROM habit_completions",
        }.items():
            counts[name] = int(await session.scalar(text(sql), {"day": DAY}) or 0)
    return counts


async def reset(resources: Resources) -> None:
    started = time.perf_counter()
    async with resources.db.transaction() as session:
        await session.execute(text("SET LOCAL jit = off"))
        for statement in RESET:
            await session.execute(text(statement), {"day": DAY})
    async with resources.db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE daily_stats, habit_streaks, weekly_stats"))
    print(f"  (reset in {time.perf_counter() - started:.0f} s)")


# --- A: set-based --------------------------------------------------------------------------------


async def set_based(resources: Resources) -> float:
    spec = resources.registry.get(analytics_jobs.DAILY_JOB)
    ctx = JobContext("bench", spec.name, spec.queue, 1, spec.policy.attempts, resources)
    started = time.perf_counter()
    result = await analytics_jobs.daily_rollup(ctx, analytics_jobs.DailyRollup(zone=ZONE, local_date=DAY))
    elapsed = time.perf_counter() - started
    assert result["status"] == "finished", result
    return elapsed


# --- B: the per-user loop ------------------------------------------------------------------------


async def one_user(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> None:
    """Everything the night does for one user, the straightforward way."""
    user = (
        await session.execute(
            text("SELECT timezone, day_start_minutes, week_start FROM users WHERE id = :u"), {"u": user_id}
        )
    ).one()
    zone, shift, week_start = user
    habits = (
        await session.execute(
            text(
                "SELECT h.id, h.days_mask, h.created_local_date, h.created_at, h.archived_at, "
                "h.server_version, r.kind FROM habits h "
                "LEFT JOIN routines r ON r.id = h.routine_id AND r.deleted_at IS NULL "
                "WHERE h.user_id = :u AND h.deleted_at IS NULL"
            ),
            {"u": user_id},
        )
    ).all()
    facts = {
        h.id: HabitFacts(HabitLife(h.days_mask, h.created_local_date, h.created_at, h.archived_at), h.kind)
        for h in habits
    }
    entries = dict(
        (
            await session.execute(
                text(
                    "SELECT habit_id, status FROM habit_completions "
                    "WHERE user_id = :u AND local_date = :d AND deleted_at IS NULL"
                ),
                {"u": user_id, "d": DAY},
            )
        ).all()
    )
    focus = [
        FocusFacts(r.focus_seconds, r.status)
        for r in await session.execute(
            text(
                "SELECT focus_seconds, status FROM focus_sessions "
                "WHERE user_id = :u AND local_date = :d AND deleted_at IS NULL"
            ),
            {"u": user_id, "d": DAY},
        )
    ]
    row = daily_row(day_bounds(DAY, zone, shift), facts, entries, focus)
    await session.execute(
        text(
            "INSERT INTO daily_stats "
            "VALUES (:u, :d, :due, :done, :skipped, :rate, :perfect, :m, :e, :n, :s, :l, :now) "
            "ON CONFLICT (user_id, local_date) DO UPDATE SET habits_due = EXCLUDED.habits_due, "
            "habits_done = EXCLUDED.habits_done, habits_skipped = EXCLUDED.habits_skipped, "
            "completion_rate = EXCLUDED.completion_rate, perfect_day = EXCLUDED.perfect_day, "
            "morning_pct = EXCLUDED.morning_pct, evening_pct = EXCLUDED.evening_pct, "
            "focus_sessions = EXCLUDED.focus_sessions, focus_seconds = EXCLUDED.focus_seconds, "
            "longest_focus_seconds = EXCLUDED.longest_focus_seconds, computed_at = EXCLUDED.computed_at"
        ),
        {
            "u": user_id,
            "d": DAY,
            "due": row.habits_due,
            "done": row.habits_done,
            "skipped": row.habits_skipped,
            "rate": row.completion_rate,
            "perfect": row.perfect_day,
            "m": row.morning_pct,
            "e": row.evening_pct,
            "n": row.focus_sessions,
            "s": row.focus_seconds,
            "l": row.longest_focus_seconds,
            "now": now,
        },
    )
    today = local_day(now, zone, shift)
    week = week_start_of(DAY, week_start)
    week_entries: dict[uuid.UUID, dict[date, str]] = defaultdict(dict)
    for h in habits:
        history = dict(
            (
                await session.execute(
                    text(
                        "SELECT local_date, status FROM habit_completions "
                        "WHERE habit_id = :h AND deleted_at IS NULL"
                    ),
                    {"h": h.id},
                )
            ).all()
        )
        week_entries[h.id] = {d: s for d, s in history.items() if week <= d <= DAY}
        streak = compute(DueDays(h.days_mask, h.created_local_date), history, today)
        await session.execute(
            text(
                "INSERT INTO habit_streaks VALUES (:u, :h, :c, :b, :last, :through, :v, :now) "
                "ON CONFLICT (user_id, habit_id) DO UPDATE SET current_streak = EXCLUDED.current_streak, "
                "best_streak = EXCLUDED.best_streak, last_done_date = EXCLUDED.last_done_date, "
                "computed_through = EXCLUDED.computed_through, habit_version = EXCLUDED.habit_version, "
                "computed_at = EXCLUDED.computed_at"
            ),
            {
                "u": user_id,
                "h": h.id,
                "c": streak.current,
                "b": streak.best,
                "last": streak.last_done,
                "through": streak.computed_through,
                "v": h.server_version,
                "now": now,
            },
        )
    if closes_week(DAY, week_start):
        days = await session.execute(
            text(
                "SELECT habits_due, habits_done, habits_skipped, completion_rate, perfect_day, morning_pct, "
                "evening_pct, focus_sessions, focus_seconds, longest_focus_seconds FROM daily_stats "
                "WHERE user_id = :u AND local_date BETWEEN :w AND :d ORDER BY local_date"
            ),
            {"u": user_id, "w": week, "d": DAY},
        )
        daily_rows = [DailyRow(*r) for r in days]
        habit_weeks = []
        for h in habits:
            statuses = []
            for i in range(7):
                d = week + timedelta(days=i)
                entry = week_entries[h.id].get(d)
                if is_due(facts[h.id].life, day_bounds(d, zone, shift), has_entry=entry is not None):
                    statuses.append(entry)
            habit_weeks.append(statuses)
        w = weekly_row(daily_rows, habit_weeks)
        await session.execute(
            text(
                "INSERT INTO weekly_stats VALUES (:u, :w, :a, :p, :done, :rate, :f, :best, :now) "
                "ON CONFLICT (user_id, week_start) DO UPDATE SET days_active = EXCLUDED.days_active, "
                "perfect_days = EXCLUDED.perfect_days, habits_done = EXCLUDED.habits_done, "
                "avg_completion_rate = EXCLUDED.avg_completion_rate, focus_seconds = EXCLUDED.focus_seconds, "
                "best_streak = EXCLUDED.best_streak, computed_at = EXCLUDED.computed_at"
            ),
            {
                "u": user_id,
                "w": week,
                "a": w.days_active,
                "p": w.perfect_days,
                "done": w.habits_done,
                "rate": w.avg_completion_rate,
                "f": w.focus_seconds,
                "best": w.best_streak,
                "now": now,
            },
        )


async def per_user_loop(resources: Resources, sample: list[uuid.UUID]) -> float:
    started = time.perf_counter()
    for user_id in sample:
        async with resources.db.transaction() as session:
            await one_user(session, user_id, NOW)
    return time.perf_counter() - started


# --- checks and the run --------------------------------------------------------------------------

RESULT_SQL = {
    "daily_stats": "SELECT * FROM daily_stats WHERE user_id = ANY(:ids) AND local_date = :day ORDER BY 1, 2",
    "weekly_stats": "SELECT * FROM weekly_stats WHERE user_id = ANY(:ids) ORDER BY 1, 2",
    "habit_streaks": "SELECT * FROM habit_streaks WHERE user_id = ANY(:ids) ORDER BY 1, 2",
}


async def results(resources: Resources, ids: list[uuid.UUID]) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    async with resources.db.transaction() as session:
        for name, sql in RESULT_SQL.items():
            rows = await session.execute(text(sql), {"ids": ids, "day": DAY})
            # computed_at differs between the two ways by construction; everything else must not.
            out[name] = [tuple(v for k, v in r._mapping.items() if k != "computed_at") for r in rows]
    return out


async def run(args: argparse.Namespace) -> None:
    prefix = f"hjbench{uuid.uuid4().hex[:8]}"
    async with private_database() as url:
        # No default statement timeout for the seeding and resets; the measured handler sets its own.
        settings = Settings(
            env="test", database_url=url, redis_url=REDIS_URL, queue_prefix=prefix, db_statement_timeout_ms=0
        )
        resources = Resources.open(settings, clock=FrozenClock(NOW), application_name="bench-analytics")
        try:
            async with resources.db.transaction() as session:
                server = await session.scalar(text("SHOW server_version"))
            started = time.perf_counter()
            counts = await seed(resources, args.users, args.history_days)
            seeded_s = time.perf_counter() - started
            await reset(resources)
            async with resources.db.transaction() as session:
                ids = list(await session.scalars(text("SELECT id FROM users ORDER BY id")))
            sample = random.Random(7).sample(ids, min(args.sample, len(ids)))
            print(f"machine: {machine()}; PostgreSQL server {server}")
            print(
                f"seeded in {seeded_s:.0f} s: {args.users:,} users, "
                + ", ".join(f"{v:,} {k}" for k, v in counts.items())
            )

            # Warm-up: one pass of each (caches, prepared statements), then the same reset as every pass.
            await set_based(resources)
            await reset(resources)
            await per_user_loop(resources, sample[: max(1, len(sample) // 10)])
            await reset(resources)

            set_times, loop_times = [], []
            for rep in range(args.reps):
                set_times.append(await set_based(resources))
                expected = await results(resources, sample)
                await reset(resources)
                loop_times.append(await per_user_loop(resources, sample))
                got = await results(resources, sample)
                assert got == expected, f"the loop and the set-based run disagree (repetition {rep + 1})"
                await reset(resources)
                print(
                    f"rep {rep + 1}: set-based {set_times[-1]:.1f} s for {args.users:,} users; "
                    f"loop {loop_times[-1]:.1f} s for {len(sample):,} users"
                )

            set_s = median(set_times)
            loop_per_user_ms = median(loop_times) / len(sample) * 1000
            loop_s = loop_per_user_ms * args.users / 1000
            print()
            print(
                table(
                    ["way", "users", "time (median)", "per user", "users/s"],
                    [
                        [
                            "set-based (chunks of 1,000)",
                            f"{args.users:,}",
                            f"{set_s:.1f} s",
                            f"{set_s / args.users * 1e6:.0f} µs",
                            f"{args.users / set_s:,.0f}",
                        ],
                        [
                            f"per-user loop (sample of {len(sample):,}, extrapolated)",
                            f"{args.users:,}",
                            f"{loop_s:.0f} s",
                            f"{loop_per_user_ms * 1000:.0f} µs",
                            f"{1000 / loop_per_user_ms:,.0f}",
                        ],
                    ],
                )
            )
            print(f"\nset-based is {loop_s / set_s:.1f}× faster than the loop")
            print(f"every repetition (s): set-based {set_times}, loop {loop_times}")
        finally:
            await resources.aclose()
            await drop_prefix(prefix)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2_000, help="users the per-user loop runs on")
    parser.add_argument(
        "--history-days", type=int, default=6, help="earlier days of entries (the week so far)"
    )
    parser.add_argument("--reps", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
