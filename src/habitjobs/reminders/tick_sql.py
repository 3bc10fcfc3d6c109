"""The tick's set-based statements: claim due reminders, check what is still relevant, advance them."""

from __future__ import annotations

from sqlalchemy import text

# Every statement of a chunk looks up a few thousand rows by key in tables of millions, all in cache. With
# the default random_page_cost (4, for spinning disks) the planner prefers hash joins that read whole
# tables — per chunk, so the tick grows quadratically (measured: 400 ms vs 150 ms per 2,000 rows at 100k).
PREFER_INDEX_LOOKUPS = text("SET LOCAL random_page_cost = 1.1")

# Due (or about to be) reminders with what the tick needs; locked so that racing ticks split the work.
# The LIMIT applies to an index scan in firing order before anything is joined: each chunk reads only
# its own rows, however many are due.
CLAIM_DUE = text(
    """
    WITH due AS (
        SELECT id, user_id, kind, habit_id, routine_id, local_time, days_mask, next_fire_at, timezone
        FROM reminders
        WHERE enabled AND deleted_at IS NULL AND next_fire_at IS NOT NULL AND next_fire_at <= :horizon
          AND NOT (id = ANY(CAST(:skip AS uuid[])))
        ORDER BY next_fire_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    SELECT due.id, due.user_id, due.kind, due.habit_id, due.routine_id, due.local_time, due.days_mask,
           due.next_fire_at, COALESCE(due.timezone, u.timezone) AS zone, u.locale
    FROM due
    -- LIMIT 1 keeps this a per-row index lookup (a hash join would read every user).
    CROSS JOIN LATERAL (SELECT timezone, locale FROM users WHERE users.id = due.user_id LIMIT 1) u
    """
)

# Habit reminders: the habit, if it is live, due that day and has no entry (done or skipped) yet.
HABITS_TO_REMIND = text(
    """
    SELECT x.reminder_id, h.id AS habit_id, h.name
    FROM unnest(CAST(:reminder_ids AS uuid[]), CAST(:habit_ids AS uuid[]), CAST(:local_dates AS date[]),
                CAST(:user_ids AS uuid[]))
         AS x(reminder_id, habit_id, local_date, user_id)
    JOIN habits h ON h.id = x.habit_id AND h.user_id = x.user_id
    WHERE h.deleted_at IS NULL AND h.archived_at IS NULL
      AND (h.days_mask >> (EXTRACT(ISODOW FROM x.local_date)::int - 1)) & 1 = 1
      AND NOT EXISTS (
          SELECT 1 FROM habit_completions c
          WHERE c.habit_id = h.id AND c.local_date = x.local_date AND c.deleted_at IS NULL)
    """
)

# Routine reminders: the routine (given, or the user's first of that kind) unless it is already done that
# day, i.e. every live habit of it that is due that day has an entry.
ROUTINES_TO_REMIND = text(
    """
    SELECT x.reminder_id, ro.id AS routine_id, ro.name
    FROM unnest(CAST(:reminder_ids AS uuid[]), CAST(:routine_ids AS uuid[]), CAST(:kinds AS text[]),
                CAST(:local_dates AS date[]), CAST(:user_ids AS uuid[]))
         AS x(reminder_id, routine_id, routine_kind, local_date, user_id)
    JOIN LATERAL (
        SELECT r.id, r.name FROM routines r
        WHERE r.user_id = x.user_id AND r.deleted_at IS NULL
          AND (r.id = x.routine_id OR (x.routine_id IS NULL AND r.kind = x.routine_kind))
          AND (r.days_mask >> (EXTRACT(ISODOW FROM x.local_date)::int - 1)) & 1 = 1
        ORDER BY r.position, r.id
        LIMIT 1
    ) ro ON true
    WHERE NOT (
        EXISTS (
            SELECT 1 FROM habits h
            WHERE h.routine_id = ro.id AND h.deleted_at IS NULL AND h.archived_at IS NULL
              AND (h.days_mask >> (EXTRACT(ISODOW FROM x.local_date)::int - 1)) & 1 = 1)
        AND NOT EXISTS (
            SELECT 1 FROM habits h
            WHERE h.routine_id = ro.id AND h.deleted_at IS NULL AND h.archived_at IS NULL
              AND (h.days_mask >> (EXTRACT(ISODOW FROM x.local_date)::int - 1)) & 1 = 1
              AND NOT EXISTS (
                  SELECT 1 FROM habit_completions c
                  WHERE c.habit_id = h.id AND c.local_date = x.local_date AND c.deleted_at IS NULL))
    )
    """
)

# Streak-at-risk: per reminder, the user's due habit with the longest running streak (as of the last
# computed day) that has no entry yet today.
STREAKS_AT_RISK = text(
    """
    SELECT DISTINCT ON (x.reminder_id) x.reminder_id, h.id AS habit_id, h.name, s.current_streak
    FROM unnest(CAST(:reminder_ids AS uuid[]), CAST(:local_dates AS date[]), CAST(:user_ids AS uuid[]))
         AS x(reminder_id, local_date, user_id)
    JOIN habit_streaks s ON s.user_id = x.user_id
    JOIN habits h ON h.id = s.habit_id
    WHERE s.current_streak >= :min_streak
      AND s.last_done_date < x.local_date
      AND s.computed_through >= x.local_date - 1
      AND h.deleted_at IS NULL AND h.archived_at IS NULL
      AND (h.days_mask >> (EXTRACT(ISODOW FROM x.local_date)::int - 1)) & 1 = 1
      AND NOT EXISTS (
          SELECT 1 FROM habit_completions c
          WHERE c.habit_id = h.id AND c.local_date = x.local_date AND c.deleted_at IS NULL)
    ORDER BY x.reminder_id, s.current_streak DESC, h.id
    """
)

ADVANCE = text(
    """
    UPDATE reminders r SET next_fire_at = x.next_fire_at
    FROM unnest(CAST(:ids AS uuid[]), CAST(:next_fire_ats AS timestamptz[])) AS x(id, next_fire_at)
    WHERE r.id = x.id
    """
)
