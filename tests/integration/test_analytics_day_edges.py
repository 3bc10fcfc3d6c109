"""Days at the edges of the statistics:

- America/Havana falls back from 01:00 to 00:00 on 2026-11-01, so midnight happens twice. The daily row and
  the streak must read a day's bounds the same way: an instant belongs to the day its wall clock shows,
  so 04:30 UTC (00:30 on the first pass) is already 1 November for both.
- A daily row computed before its day ended (a same-day recompute) is served with ``final: false``; the
  roll-up after the day's end makes it final."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime

import httpx
from sqlalchemy import text

from habitjobs.analytics.days import day_bounds, local_day
from habitjobs.clock import FrozenClock
from habitjobs.resources import Resources
from tests.support.analytics_data import (
    LONG_AGO,
    add_entry,
    add_habit,
    add_user,
    daily,
    run_recompute,
    run_rollup,
    streak,
)
from tests.support.users import ApiUser

HAVANA = "America/Havana"
OCT_29, OCT_30, OCT_31, NOV_1 = date(2026, 10, 29), date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 1)
# 00:30 on the first pass through the repeated hour (CDT, UTC-4): 1 November by the wall clock.
FIRST_PASS = datetime(2026, 11, 1, 4, 30, tzinfo=UTC)


def test_the_day_before_a_repeated_midnight_ends_at_the_first_midnight() -> None:
    assert local_day(FIRST_PASS, HAVANA) == NOV_1
    bounds = day_bounds(OCT_31, HAVANA)
    assert bounds.hi == datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
    assert bounds.length_s == 24 * 3600  # Oct 31 is an ordinary day; 1 November has 25 hours
    assert day_bounds(NOV_1, HAVANA).length_s == 25 * 3600


async def test_havana_fold_day_daily_row_and_streak_agree(resources: Resources) -> None:
    async with resources.db.transaction() as session:
        # Archived at 00:30 on 1 November (first pass): it was live all of 31 October, which nobody did.
        archived_user = await add_user(session, zone=HAVANA, created_at=LONG_AGO)
        archived = await add_habit(session, archived_user, created_at=LONG_AGO, archived_at=FIRST_PASS)
        for day in (OCT_29, OCT_30):
            await add_entry(session, archived_user, archived, day)
        # Created at 00:30 on 1 November (first pass) and done that day: it did not exist on 31 October.
        new_user = await add_user(session, zone=HAVANA, created_at=LONG_AGO)
        new = await add_habit(session, new_user, created_at=FIRST_PASS)
        await add_entry(session, new_user, new, NOV_1)

    resources.clock = FrozenClock(datetime(2026, 11, 2, 12, 0, tzinfo=UTC))
    for day in (OCT_29, OCT_30, OCT_31, NOV_1):
        await run_rollup(resources, HAVANA, day)

    archived_day = (await daily(resources, archived_user))[OCT_31]
    archived_streak = await streak(resources, archived)
    assert archived_streak is not None
    # The streak counts 31 October as a miss (its run of two ended there) …
    assert (archived_streak.best_streak, archived_streak.current_streak) == (2, 0)
    # … and so does the daily row: one habit due, none done.
    assert (archived_day.habits_due, archived_day.habits_done) == (1, 0)

    new_day = (await daily(resources, new_user)).get(OCT_31)
    new_streak = await streak(resources, new)
    assert new_streak is not None
    # The streak: no miss before 1 November (the habit did not exist), one done day …
    assert (new_streak.current_streak, new_streak.best_streak) == (1, 1)
    # … and the daily row of 31 October has nothing due.
    assert new_day is not None
    assert new_day.habits_due == 0


async def test_a_row_computed_before_its_day_ended_is_served_as_not_final(
    client: httpx.AsyncClient, resources: Resources, make_user: Callable[[], Awaitable[ApiUser]]
) -> None:
    user = await make_user()
    today = date(2026, 5, 4)
    async with resources.db.transaction() as session:
        await session.execute(
            text("UPDATE users SET created_at = :at WHERE id = :u"), {"at": LONG_AGO, "u": user.id}
        )
        habit = await add_habit(session, user.id, created_at=LONG_AGO)
        await add_entry(session, user.id, habit, today)
        # What a merge of late data does: mark the day for the user's recompute.
        await session.execute(
            text("INSERT INTO stats_dirty_days (user_id, local_date, marked_at) VALUES (:u, :d, :at)"),
            {"u": user.id, "d": today, "at": datetime(2026, 5, 4, 11, 0, tzinfo=UTC)},
        )
    resources.clock = FrozenClock(datetime(2026, 5, 4, 12, 0, tzinfo=UTC))
    await run_recompute(resources, user.id)

    got = await client.get("/v1/stats/daily?from=2026-05-04&to=2026-05-04", headers=user.headers)
    assert got.status_code == 200, got.text
    (row,) = got.json()["days"]
    assert (row["local_date"], row["habits_done"], row["final"]) == ("2026-05-04", 1, False)

    # The roll-up after the day's end: the same numbers, now final.
    resources.clock = FrozenClock(datetime(2026, 5, 5, 0, 5, tzinfo=UTC))
    await run_rollup(resources, "UTC", today)
    (row,) = (await client.get("/v1/stats/daily?from=2026-05-04&to=2026-05-04", headers=user.headers)).json()[
        "days"
    ]
    assert (row["habits_done"], row["final"]) == (1, True)
