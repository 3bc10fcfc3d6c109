"""The roll-up statement: streaks, daily rows and weekly rows of a chunk of users in one statement.

One statement because the three parts read the same rows: each user's row, habits and entries are read
once — one index range scan per user and table — and the parts combine them with hash joins inside the
chunk. Measured on 100,000 users, three separate statements read them three times and made the nightly
run about twice as slow. The writes are data-modifying CTEs (``INSERT … ON CONFLICT DO UPDATE … WHERE
<changed>``); the weekly part sees the day it computes through ``drows``, not through the table, because a
statement cannot read its own writes.

Every lookup is ``LATERAL … OFFSET 0`` (or ``LIMIT 1``): a fence that keeps it a per-user index scan.
Flattened into a plain join, the planner would hash whole tables from poor per-chunk estimates, and a
chunk would cost as much as the table is big.

Params: ``streak_users`` and ``full`` (streaks), ``day_users``/``days`` (daily rows), ``week_users``/
``week_starts`` (weekly rows; a week's daily rows must exist or be among the daily targets), ``now``. A
part whose arrays are empty does nothing.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text

from habitjobs.analytics import stats_sql, streak_sql

# The chunk's users (zone, day start, their local "today") and live habits.
USERS = """
    cu AS (
        SELECT DISTINCT x.id AS user_id
        FROM unnest(CAST(:streak_users AS uuid[]) || CAST(:day_users AS uuid[])
                    || CAST(:week_users AS uuid[])) AS x(id)
    ),
    u AS (
        SELECT cu.user_id, u.timezone, u.day_start_minutes, u.timezone AS tz,
               u.day_start_minutes * interval '1 minute' AS shift, u.timezone_changed_at,
               ((CAST(:now AS timestamptz) AT TIME ZONE u.timezone)
                 - u.day_start_minutes * interval '1 minute')::date AS today
        FROM cu CROSS JOIN LATERAL (SELECT * FROM users u WHERE u.id = cu.user_id LIMIT 1) AS u
    ),
    uh AS (
        SELECT h.* FROM u
        CROSS JOIN LATERAL (
            SELECT h.id, h.user_id, h.routine_id, h.days_mask, h.server_version, h.created_local_date,
                   h.created_at, h.archived_at
            FROM habits h WHERE h.user_id = u.user_id AND h.deleted_at IS NULL OFFSET 0) AS h
    )"""

# The live entries every part needs: per user one index range scan over the union of its ranges.
ENTRIES = """
    span AS (
        SELECT user_id, min(after) AS after, max(last) AS last
        FROM (SELECT user_id, min(day) - 1 AS after, max(day) AS last FROM t GROUP BY user_id
              UNION ALL
              SELECT user_id, min(COALESCE(lo, '-infinity'::date)), max(open_day) FROM c GROUP BY user_id
             ) AS ranges
        GROUP BY user_id
    ),
    ue AS (
        SELECT e.* FROM span
        CROSS JOIN LATERAL (
            SELECT e.habit_id, e.local_date, e.status FROM habit_completions e
            WHERE e.user_id = span.user_id AND e.local_date > span.after AND e.local_date <= span.last
              AND e.deleted_at IS NULL OFFSET 0) AS e
    )"""

_READ = ",".join((USERS, stats_sql.TARGETS, streak_sql.RANGES, ENTRIES, stats_sql.DUE))
_WRITE_STREAKS = stats_sql.upsert(
    "habit_streaks", ("user_id", "habit_id"), streak_sql.STREAK_COLUMNS, "streaks"
)


def _rollup(daily_rows: str) -> TextClause:
    ctes = ",".join((_READ, daily_rows, stats_sql.WEEKLY_ROWS, streak_sql.STREAKS))
    return text(
        f"WITH {ctes}, "
        f"write_daily AS ({stats_sql.WRITE_DAILY} RETURNING 1), "
        f"write_weekly AS ({stats_sql.WRITE_WEEKLY} RETURNING 1) "
        f"{_WRITE_STREAKS}"
    )


# Compute and write everything asked.
ROLLUP = _rollup(stats_sql.DAILY_ROWS)

# The same, with the daily rows given (``rows``: computed on a read replica by ``SELECT_DAILY``).
ROLLUP_GIVEN_DAILY = _rollup(stats_sql.GIVEN_DAILY_ROWS)

# The daily rows only, read-only: what a read replica computes.
SELECT_DAILY = text(f"WITH {_READ}, {stats_sql.DAILY_ROWS} SELECT * FROM drows")
