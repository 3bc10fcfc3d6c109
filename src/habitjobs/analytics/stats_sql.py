"""Statistics as SQL fragments (CTEs), assembled into statements by :mod:`habitjobs.analytics.rollup_sql`.

Each (user, local day) gets its bounds from ``AT TIME ZONE`` in the user's zone, shifted by the user's
``day_start_minutes``: DST days are 23 or 25 hours long here, as on the user's clock. A start time the
clocks show twice is its first instant (:func:`first_instant`, the same as
:func:`habitjobs.analytics.days.day_start`). The rules are those of
:mod:`habitjobs.analytics.rules` and :mod:`habitjobs.analytics.days`.

Fragments use the relations the roll-up defines first: ``u`` (the chunk's users with ``timezone`` and
``day_start_minutes``), ``uh`` (their live habits) and ``ue`` (their live entries over every day asked).
"""

from __future__ import annotations


def first_instant(wall: str, zone: str) -> str:
    """SQL: the first instant (timestamptz) at which the wall time ``wall`` (timestamp) is shown in ``zone``.

    PostgreSQL's ``wall AT TIME ZONE zone`` takes the *later* instant of a time repeated by DST. The
    earlier one, if any, is the wall time read with the offset in force a little before (three hours:
    longer than any fold); it counts only if it does show that wall time. A time skipped by DST keeps
    PostgreSQL's reading (the offset before the gap), as Python's ``fold=0`` does.
    """
    later = f"(({wall}) AT TIME ZONE {zone})"
    before = f"({later} - interval '3 hours')"
    offset = f"(({before} AT TIME ZONE {zone}) - ({before} AT TIME ZONE 'UTC'))"
    earlier = f"((({wall}) - {offset}) AT TIME ZONE 'UTC')"
    shows_wall = f"({earlier} AT TIME ZONE {zone}) = ({wall})"
    return f"(CASE WHEN {shows_wall} THEN LEAST({earlier}, {later}) ELSE {later} END)"


# The targets: daily rows to compute (``dt``), weeks to roll up (``wt``), and every day either needs, with
# its bounds and weekday bit (``t``). Params: day_users, days, week_users, week_starts.
_LO = first_instant("d.day + u.day_start_minutes * interval '1 minute'", "u.timezone")
_HI = first_instant("d.day + 1 + u.day_start_minutes * interval '1 minute'", "u.timezone")

TARGETS = f"""
    dt AS (
        SELECT x.user_id, x.day
        FROM unnest(CAST(:day_users AS uuid[]), CAST(:days AS date[])) AS x(user_id, day)
    ),
    wt AS (
        SELECT x.user_id, x.week_start
        FROM unnest(CAST(:week_users AS uuid[]), CAST(:week_starts AS date[])) AS x(user_id, week_start)
    ),
    t AS (
        SELECT d.user_id, d.day,
               {_LO} AS lo,
               {_HI} AS hi,
               1 << (extract(isodow FROM d.day)::int - 1) AS bit
        FROM (SELECT user_id, day FROM dt
              UNION SELECT wt.user_id, wt.week_start + i FROM wt, generate_series(0, 6) AS i) AS d
        JOIN u ON u.user_id = d.user_id
    )"""

# The habits due on each day of ``t``, with the day's live entry (NULL: none) and the kind of the
# habit's live routine (routines read once per user with a daily target).
DUE = """
    ur AS (
        SELECT r.* FROM (SELECT DISTINCT user_id FROM dt) AS du
        CROSS JOIN LATERAL (
            SELECT r.id, r.user_id, r.kind FROM routines r
            WHERE r.user_id = du.user_id AND r.deleted_at IS NULL OFFSET 0) AS r
    ),
    due AS (
        SELECT t.user_id, t.day, h.id AS habit_id, c.status, r.kind AS routine_kind
        FROM t
        JOIN uh AS h ON h.user_id = t.user_id AND (h.days_mask & t.bit) <> 0
        LEFT JOIN ue AS c ON c.habit_id = h.id AND c.local_date = t.day
        LEFT JOIN ur AS r ON r.id = h.routine_id AND r.user_id = h.user_id
        WHERE CASE WHEN c.habit_id IS NOT NULL THEN h.archived_at IS NULL OR h.archived_at >= t.lo
                   ELSE COALESCE(h.created_local_date <= t.day, h.created_at < t.hi)
                        AND (h.archived_at IS NULL OR h.archived_at >= t.hi) END
    )"""

DAILY_COLUMNS = (
    "habits_due",
    "habits_done",
    "habits_skipped",
    "completion_rate",
    "perfect_day",
    "morning_pct",
    "evening_pct",
    "focus_sessions",
    "focus_seconds",
    "longest_focus_seconds",
)

# The daily rows of ``dt`` (``drows``).
DAILY_ROWS = """
    hs AS (
        SELECT due.user_id, due.day,
               count(*) AS due,
               count(*) FILTER (WHERE status = 'done') AS done,
               count(*) FILTER (WHERE status = 'skipped') AS skipped,
               count(*) FILTER (WHERE routine_kind = 'morning') AS m_due,
               count(*) FILTER (WHERE routine_kind = 'morning' AND status = 'done') AS m_done,
               count(*) FILTER (WHERE routine_kind = 'morning' AND status = 'skipped') AS m_skipped,
               count(*) FILTER (WHERE routine_kind = 'evening') AS e_due,
               count(*) FILTER (WHERE routine_kind = 'evening' AND status = 'done') AS e_done,
               count(*) FILTER (WHERE routine_kind = 'evening' AND status = 'skipped') AS e_skipped
        FROM due JOIN dt ON dt.user_id = due.user_id AND dt.day = due.day
        GROUP BY due.user_id, due.day
    ),
    drows AS (
        SELECT dt.user_id, dt.day AS local_date,
               COALESCE(hs.due, 0)::int AS habits_due,
               COALESCE(hs.done, 0)::int AS habits_done,
               COALESCE(hs.skipped, 0)::int AS habits_skipped,
               round(hs.done::numeric / NULLIF(hs.due - hs.skipped, 0), 4) AS completion_rate,
               COALESCE(hs.due > hs.skipped AND hs.done = hs.due - hs.skipped, false) AS perfect_day,
               round(100 * hs.m_done::numeric / NULLIF(hs.m_due - hs.m_skipped, 0), 2) AS morning_pct,
               round(100 * hs.e_done::numeric / NULLIF(hs.e_due - hs.e_skipped, 0), 2) AS evening_pct,
               f.n::int AS focus_sessions,
               COALESCE(f.total, 0)::bigint AS focus_seconds,
               COALESCE(f.longest, 0)::int AS longest_focus_seconds
        FROM dt
        LEFT JOIN hs ON hs.user_id = dt.user_id AND hs.day = dt.day
        CROSS JOIN LATERAL (
            SELECT count(*) AS n, sum(f.focus_seconds) AS total, max(f.focus_seconds) AS longest
            FROM focus_sessions f
            WHERE f.user_id = dt.user_id AND f.local_date = dt.day
              AND f.deleted_at IS NULL AND f.status = 'completed') AS f
    )"""

# Daily rows given by the caller (computed on a read replica). Param: rows (a JSON array).
GIVEN_DAILY_ROWS = """
    drows AS (
        SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
            user_id uuid, local_date date, habits_due int, habits_done int, habits_skipped int,
            completion_rate numeric, perfect_day boolean, morning_pct numeric, evening_pct numeric,
            focus_sessions int, focus_seconds bigint, longest_focus_seconds int)
    )"""


def upsert(table: str, key: tuple[str, ...], columns: tuple[str, ...], source: str) -> str:
    """``INSERT … SELECT … ON CONFLICT DO UPDATE`` that rewrites a row only when a number changed: re-running
    changes nothing, not even ``computed_at``."""
    names = ", ".join((*key, *columns))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*columns, "computed_at"))
    return (
        f"INSERT INTO {table} AS s ({names}, computed_at) "
        f"SELECT {names}, CAST(:now AS timestamptz) FROM {source} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates} "
        f"WHERE ({', '.join(f's.{c}' for c in columns)}) "
        f"IS DISTINCT FROM ({', '.join(f'EXCLUDED.{c}' for c in columns)})"
    )


def _write_daily() -> str:
    """The daily upsert, plus ``final``: whether the row is computed after its day ended (the same day
    bounds as the statistics). A row that turns final is rewritten even when no number changed."""
    names = ", ".join(("user_id", "local_date", *DAILY_COLUMNS))
    selected = ", ".join(f"d.{c}" for c in ("user_id", "local_date", *DAILY_COLUMNS))
    hi = first_instant("d.local_date + 1 + uz.day_start_minutes * interval '1 minute'", "uz.timezone")
    columns = (*DAILY_COLUMNS, "final")
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*columns, "computed_at"))
    return (
        f"INSERT INTO daily_stats AS s ({names}, final, computed_at) "
        f"SELECT {selected}, CAST(:now AS timestamptz) >= {hi}, CAST(:now AS timestamptz) FROM drows AS d "
        "CROSS JOIN LATERAL (SELECT timezone, day_start_minutes FROM users WHERE users.id = d.user_id) AS uz "
        f"ON CONFLICT (user_id, local_date) DO UPDATE SET {updates} "
        f"WHERE ({', '.join(f's.{c}' for c in columns)}) "
        f"IS DISTINCT FROM ({', '.join(f'EXCLUDED.{c}' for c in columns)})"
    )


WRITE_DAILY = _write_daily()

WEEKLY_COLUMNS = (
    "days_active",
    "perfect_days",
    "habits_done",
    "avg_completion_rate",
    "focus_seconds",
    "best_streak",
)

# The weekly rows of ``wt`` (``wrows``): the week's daily rows — stored ones, except the days this
# statement computes itself (``drows``, written by the same statement, which it cannot read back) — and
# the longest run of done due days of one habit inside the week. A week has 7 days, so the run is read off
# a string per habit ('d' done, 'm' missed, skipped days left out) instead of window functions.
WEEKLY_ROWS = """
    wstored AS (
        SELECT wt.user_id, wt.week_start, ds.*
        FROM wt
        CROSS JOIN LATERAL (
            SELECT ds.local_date, ds.habits_done, ds.focus_sessions, ds.perfect_day, ds.completion_rate,
                   ds.focus_seconds
            FROM daily_stats ds
            WHERE ds.user_id = wt.user_id AND ds.local_date BETWEEN wt.week_start AND wt.week_start + 6
            OFFSET 0) AS ds
    ),
    wdays AS (
        SELECT s.* FROM wstored AS s
        WHERE NOT EXISTS (SELECT 1 FROM dt WHERE dt.user_id = s.user_id AND dt.day = s.local_date)
        UNION ALL
        SELECT wt.user_id, wt.week_start, d.local_date, d.habits_done, d.focus_sessions, d.perfect_day,
               d.completion_rate, d.focus_seconds
        FROM wt JOIN drows AS d
          ON d.user_id = wt.user_id AND d.local_date BETWEEN wt.week_start AND wt.week_start + 6
    ),
    wsums AS (
        SELECT wt.user_id, wt.week_start,
               count(w.local_date) FILTER (WHERE w.habits_done > 0 OR w.focus_sessions > 0) AS days_active,
               count(w.local_date) FILTER (WHERE w.perfect_day) AS perfect_days,
               COALESCE(sum(w.habits_done), 0) AS habits_done,
               round(avg(w.completion_rate), 4) AS avg_completion_rate,
               COALESCE(sum(w.focus_seconds), 0) AS focus_seconds
        FROM wt LEFT JOIN wdays AS w ON w.user_id = wt.user_id AND w.week_start = wt.week_start
        GROUP BY wt.user_id, wt.week_start
    ),
    wruns AS (
        SELECT user_id, week_start,
               max((SELECT max(length(part)) FROM unnest(string_to_array(marks, 'm')) AS part)) AS best
        FROM (SELECT wt.user_id, wt.week_start, due.habit_id,
                     string_agg(CASE WHEN due.status = 'done' THEN 'd' ELSE 'm' END, '' ORDER BY due.day)
                       AS marks
              FROM wt
              JOIN due ON due.user_id = wt.user_id AND due.day BETWEEN wt.week_start AND wt.week_start + 6
              WHERE due.status IS DISTINCT FROM 'skipped'
              GROUP BY wt.user_id, wt.week_start, due.habit_id) AS per_habit
        GROUP BY user_id, week_start
    ),
    wrows AS (
        SELECT s.user_id, s.week_start, s.days_active::int AS days_active,
               s.perfect_days::int AS perfect_days, s.habits_done::int AS habits_done, s.avg_completion_rate,
               s.focus_seconds::bigint AS focus_seconds, COALESCE(r.best, 0)::int AS best_streak
        FROM wsums AS s LEFT JOIN wruns AS r ON r.user_id = s.user_id AND r.week_start = s.week_start
    )"""

WRITE_WEEKLY = upsert("weekly_stats", ("user_id", "week_start"), WEEKLY_COLUMNS, "wrows")
