"""Streaks as SQL fragments (CTEs), assembled by :mod:`habitjobs.analytics.rollup_sql`: every live habit of
the users in ``:streak_users``, in the same statement as the statistics.

Per habit it either **steps forward** from the stored state or **recomputes** from the history; both are
the same gaps-and-islands query over a range of days, the step just starts late with a carried run:

- step (the nightly path, 1–2 days per habit): the stored state is trusted when it was computed from the
  habit as it is now (``habit_version``), is not marked dirty (``streak_dirty``), has not run ahead of the
  user's clock (a move west makes yesterday "today" again), and the user has not changed zone since.
  The range starts after ``computed_through``, carrying the run of ended days it had reached.
- recompute (``:full``, dirty or changed habits): the range starts at the habit's first entry.

Over the range, each due day is DONE, MISS (no entry, day ended) or neutral (skipped, or the open day
without an entry) — :mod:`habitjobs.analytics.streaks` is the reference. Among the non-neutral days,
``row_number()`` over all of them minus ``row_number()`` over the done ones numbers the misses before each
done day: done days with the same number form one run (an island); island 0 continues the carried run.
A carried run of 0 needs no days before the range's first entry (misses cannot shorten a run of 0).

Uses ``u`` (users with ``tz``, ``shift``, ``today``, ``timezone_changed_at``), ``uh`` (live habits) and
``ue`` (entries); defines ``c`` (each habit's range, which ``ue`` must cover) before ``ue`` and the rest
after it. Params: streak_users, full, now.
"""

from __future__ import annotations

# Each habit's stored state and the range its streak needs: after ``lo`` (NULL: from the first entry)
# through ``open_day`` (today, or the archive day), with the carried run.
RANGES = """
    su AS (SELECT * FROM u WHERE u.user_id = ANY(CAST(:streak_users AS uuid[]))),
    st AS (
        SELECT st.* FROM su
        CROSS JOIN LATERAL (SELECT * FROM habit_streaks st WHERE st.user_id = su.user_id OFFSET 0) AS st
    ),
    sd AS (
        SELECT sd.* FROM su
        CROSS JOIN LATERAL (SELECT sd.habit_id FROM streak_dirty sd WHERE sd.user_id = su.user_id
                            OFFSET 0) AS sd
    ),
    m AS (
        SELECT hb.user_id, hb.id AS habit_id, hb.days_mask, hb.server_version,
               COALESCE(hb.created_local_date, ((hb.created_at AT TIME ZONE su.tz) - su.shift)::date)
                 AS start_day,
               ((hb.archived_at AT TIME ZONE su.tz) - su.shift)::date AS archive_day,
               LEAST(su.today, ((hb.archived_at AT TIME ZONE su.tz) - su.shift)::date) AS open_day,
               st.current_streak, st.best_streak, st.last_done_date, st.computed_through,
               (NOT CAST(:full AS boolean) AND st.computed_through IS NOT NULL AND sd.habit_id IS NULL
                AND st.habit_version = hb.server_version
                AND st.computed_through
                    < LEAST(su.today, ((hb.archived_at AT TIME ZONE su.tz) - su.shift)::date)
                AND (su.timezone_changed_at IS NULL OR su.timezone_changed_at <= st.computed_at)) AS step
        FROM uh AS hb
        JOIN su ON su.user_id = hb.user_id
        LEFT JOIN st ON st.habit_id = hb.id
        LEFT JOIN sd ON sd.habit_id = hb.id
    ),
    c AS (
        SELECT m.user_id, m.habit_id, m.days_mask, m.server_version, m.start_day, m.archive_day,
               m.open_day,
               CASE WHEN m.step THEN m.computed_through END AS lo,
               CASE WHEN m.step
                    THEN m.current_streak - (COALESCE(m.last_done_date > m.computed_through, false))::int
                    ELSE 0 END AS carry_run,
               CASE WHEN m.step THEN m.best_streak ELSE 0 END AS carry_best,
               CASE WHEN m.step THEN m.last_done_date END AS carry_last_done
        FROM m
    )"""

# The islands over each habit's range, and the new state per habit (``streaks``).
STREAKS = """
    first_entry AS (
        SELECT c.habit_id, min(ue.local_date) AS day
        FROM c JOIN ue ON ue.habit_id = c.habit_id
        WHERE ue.local_date > COALESCE(c.lo, '-infinity'::date) AND ue.local_date <= c.open_day
        GROUP BY c.habit_id
    ),
    g AS (
        SELECT c.*, CASE WHEN c.carry_run > 0 THEN c.lo + 1 ELSE fe.day END AS first_day
        FROM c LEFT JOIN first_entry AS fe ON fe.habit_id = c.habit_id
    ),
    marks AS (
        SELECT g.habit_id, d.day, e.habit_id IS NOT NULL AS done
        FROM g
        CROSS JOIN LATERAL (SELECT g.first_day + i AS day
                            FROM generate_series(0, g.open_day - g.first_day) AS i
                            WHERE (g.days_mask & (1 << (extract(isodow FROM g.first_day + i)::int - 1))) <> 0
                           ) AS d
        LEFT JOIN ue AS e ON e.habit_id = g.habit_id AND e.local_date = d.day
        WHERE CASE WHEN e.habit_id IS NOT NULL THEN g.archive_day IS NULL OR d.day <= g.archive_day
                   ELSE d.day >= g.start_day AND (g.archive_day IS NULL OR d.day < g.archive_day) END
          AND (e.status = 'done' OR (e.habit_id IS NULL AND d.day < g.open_day))
    ),
    n AS (
        SELECT habit_id, day, done,
               row_number() OVER (PARTITION BY habit_id ORDER BY day)
             - row_number() OVER (PARTITION BY habit_id, done ORDER BY day) AS island,
               row_number() OVER (PARTITION BY habit_id ORDER BY day DESC) = 1 AS is_last
        FROM marks
    ),
    runs AS (
        SELECT n.habit_id, count(*) + CASE WHEN n.island = 0 THEN min(g.carry_run) ELSE 0 END AS len,
               max(n.day) AS last_day, bool_or(n.is_last) AS reaches_end
        FROM n JOIN g ON g.habit_id = n.habit_id
        WHERE n.done
        GROUP BY n.habit_id, n.island
    ),
    per AS (
        SELECT habit_id, max(len) AS best, max(len) FILTER (WHERE reaches_end) AS ending,
               max(last_day) AS last_done
        FROM runs GROUP BY habit_id
    ),
    tail AS (SELECT habit_id FROM n WHERE is_last),
    streaks AS (
        SELECT g.user_id, g.habit_id,
               (CASE WHEN tail.habit_id IS NULL THEN g.carry_run ELSE COALESCE(per.ending, 0) END)::int
                 AS current_streak,
               GREATEST(g.carry_best, g.carry_run, per.best)::int AS best_streak,
               GREATEST(g.carry_last_done, per.last_done) AS last_done_date,
               g.open_day - 1 AS computed_through,
               g.server_version AS habit_version
        FROM g
        LEFT JOIN tail ON tail.habit_id = g.habit_id
        LEFT JOIN per ON per.habit_id = g.habit_id
    )"""

STREAK_COLUMNS = ("current_streak", "best_streak", "last_done_date", "computed_through", "habit_version")

# A user's streak rows of habits that are gone (deleted): the recompute drops them.
DELETE_ORPHANS = """
    DELETE FROM habit_streaks s
    WHERE s.user_id = :user_id
      AND NOT EXISTS (SELECT 1 FROM habits h WHERE h.id = s.habit_id AND h.deleted_at IS NULL)
"""
