"""The statistics and streak API: precomputed rows only, clear 422s naming the parameter, 404 for other
users' habits, every user sees only their own numbers."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from habitjobs.clock import FrozenClock
from habitjobs.resources import Resources
from tests.support.analytics_data import LONG_AGO, add_entry, add_focus, add_habit, run_rollup
from tests.support.users import MakeUser


async def _two_weeks(resources: Resources, user_id: uuid.UUID) -> uuid.UUID:
    """A daily habit done on weekdays only, focus on Tuesdays; nights from the 2nd to the 15th of March."""
    async with resources.db.transaction() as s:
        # Signed up before those days (a day before the sign-up gets no row).
        await s.execute(
            text("UPDATE users SET created_at = :at WHERE id = :u"), {"at": LONG_AGO, "u": user_id}
        )
        habit = await add_habit(s, user_id)
        for day in range(2, 16):
            if date(2026, 3, day).weekday() < 5:
                await add_entry(s, user_id, habit, date(2026, 3, day))
        await add_focus(s, user_id, date(2026, 3, 3), 1500)
        await add_focus(s, user_id, date(2026, 3, 10), 2700)
    for day in range(2, 16):
        resources.clock = FrozenClock(datetime(2026, 3, day + 1, 0, 5, tzinfo=UTC))
        await run_rollup(resources, "UTC", date(2026, 3, day))
    return habit


async def test_daily_weekly_and_streak_from_the_precomputed_tables(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    habit = await _two_weeks(resources, user.id)

    got = await client.get("/v1/stats/daily?from=2026-03-01&to=2026-03-04", headers=user.headers)
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["from"], body["to"]) == ("2026-03-01", "2026-03-04")
    assert [d["local_date"] for d in body["days"]] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    tuesday = body["days"][1]
    assert tuesday["completion_rate"] == 1.0  # a JSON number
    assert (tuesday["habits_due"], tuesday["perfect_day"], tuesday["focus_seconds"]) == (1, True, 1500)

    weeks = (await client.get("/v1/stats/weekly?from=2026-03-02&to=2026-03-09", headers=user.headers)).json()
    first, second = weeks["weeks"]
    assert (first["week_start"], first["habits_done"], first["perfect_days"]) == ("2026-03-02", 5, 5)
    assert (first["avg_completion_rate"], first["best_streak"], first["change"]) == (0.7143, 5, None)
    assert second["week_start"] == "2026-03-09"
    assert second["change"] == {
        "habits_done": 0,
        "focus_seconds": 1200,
        "days_active": 0,
        "avg_completion_rate": 0.0,
    }
    # The week before the range is read for the change, not listed.
    only_second = (
        await client.get("/v1/stats/weekly?from=2026-03-09&to=2026-03-09", headers=user.headers)
    ).json()
    assert [w["week_start"] for w in only_second["weeks"]] == ["2026-03-09"]
    assert only_second["weeks"][0]["change"]["focus_seconds"] == 1200

    got = (await client.get(f"/v1/habits/{habit}/streak", headers=user.headers)).json()
    # Weekends missed: the run since Monday the 9th; Monday the 16th is open.
    assert got == {
        "habit_id": str(habit),
        "current_streak": 0,
        "best_streak": 5,
        "last_done_date": "2026-03-13",
        "computed_through": "2026-03-15",
        "computed_at": "2026-03-16T00:05:00Z",
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-03-10&to=2026-03-01", "from"),
        ("from=2025-01-01&to=2026-03-01", "to"),
        ("to=2026-03-01", "from"),
        ("from=2026-03-01", "to"),
        ("from=2026-03-01&to=yesterday", "to"),
        ("from=2026-02-30&to=2026-03-01", "from"),
    ],
)
async def test_bad_ranges_are_422_naming_the_parameter(
    client: httpx.AsyncClient, make_user: MakeUser, query: str, field: str
) -> None:
    user = await make_user()
    for path in ("/v1/stats/daily", "/v1/stats/weekly"):
        got = await client.get(f"{path}?{query}", headers=user.headers)
        assert got.status_code == 422, got.text
        assert got.json()["error"]["field"] == field


async def test_a_year_of_weeks_is_allowed_but_not_more(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    # 53 weeks of weekly rows (371 days) and 366 days of daily rows, each counted inclusively.
    for path, last_ok in (("weekly", "2026-03-08"), ("daily", "2026-03-03")):
        ok = await client.get(f"/v1/stats/{path}?from=2025-03-03&to={last_ok}", headers=user.headers)
        assert ok.status_code == 200, (path, ok.text)
        one_more = date.fromisoformat(last_ok) + timedelta(days=1)
        too_long = await client.get(f"/v1/stats/{path}?from=2025-03-03&to={one_more}", headers=user.headers)
        assert too_long.status_code == 422, path
        assert too_long.json()["error"]["field"] == "to"


async def test_each_user_sees_only_their_own(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    alice, mallory = await make_user(), await make_user()
    habit = await _two_weeks(resources, alice.id)
    mine = await client.get("/v1/stats/daily?from=2026-03-01&to=2026-03-31", headers=mallory.headers)
    assert mine.json()["days"] == []  # Mallory's own (empty) days, none of Alice's
    assert (
        await client.get("/v1/stats/weekly?from=2026-03-01&to=2026-03-31", headers=mallory.headers)
    ).json()["weeks"] == []
    assert (await client.get(f"/v1/habits/{habit}/streak", headers=mallory.headers)).status_code == 404
    assert (await client.get(f"/v1/habits/{uuid.uuid4()}/streak", headers=alice.headers)).status_code == 404
    assert (await client.get("/v1/stats/daily?from=2026-03-01&to=2026-03-31")).status_code == 401


async def test_a_habit_not_computed_yet_has_no_streak_and_a_deleted_one_is_gone(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    habit = (await client.post("/v1/habits", headers=user.headers, json={"name": "Read"})).json()["id"]
    got = (await client.get(f"/v1/habits/{habit}/streak", headers=user.headers)).json()
    assert (got["current_streak"], got["best_streak"], got["computed_through"]) == (0, 0, None)
    assert (await client.delete(f"/v1/habits/{habit}", headers=user.headers)).status_code == 204
    assert (await client.get(f"/v1/habits/{habit}/streak", headers=user.headers)).status_code == 404
