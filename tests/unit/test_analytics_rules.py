"""Calendar and statistics rules (pure): day bounds across DST, weeks, the due rule, daily and weekly rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from habitjobs.analytics.days import (
    HabitLife,
    closes_week,
    day_bounds,
    day_start,
    is_due,
    local_day,
    week_start_of,
)
from habitjobs.analytics.rules import (
    DailyRow,
    FocusFacts,
    HabitFacts,
    daily_row,
    ratio,
    rollup_days,
    weekly_row,
)

NY = "America/New_York"


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        (NY, date(2026, 3, 8), 23),
        (NY, date(2026, 11, 1), 25),
        ("Europe/Berlin", date(2026, 3, 29), 23),
        ("Europe/Berlin", date(2026, 10, 25), 25),
        ("Australia/Lord_Howe", date(2026, 10, 4), 23.5),  # half-hour DST
        ("Australia/Lord_Howe", date(2026, 4, 5), 24.5),
        ("Asia/Kathmandu", date(2026, 3, 8), 24),
        ("Asia/Kolkata", date(2026, 3, 8), 24),
    ],
)
def test_day_length_follows_the_local_clock(zone: str, day: date, hours: float) -> None:
    assert day_bounds(day, zone).length_s == hours * 3600


def test_bounds_of_a_dst_day_in_utc() -> None:
    spring = day_bounds(date(2026, 3, 8), NY)
    assert (spring.lo, spring.hi) == (
        datetime(2026, 3, 8, 5, tzinfo=UTC),
        datetime(2026, 3, 9, 4, tzinfo=UTC),
    )
    fall = day_bounds(date(2026, 11, 1), NY)
    assert (fall.lo, fall.hi) == (datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 11, 2, 5, tzinfo=UTC))


def test_a_later_day_start_shifts_the_day_and_wall_times_are_first_shown() -> None:
    # A night owl's day in New York starting at 04:00.
    owl = day_bounds(date(2026, 3, 9), NY, 240)
    assert (owl.lo, owl.hi) == (datetime(2026, 3, 9, 8, tzinfo=UTC), datetime(2026, 3, 10, 8, tzinfo=UTC))
    # 02:30 does not exist on 2026-03-08: read with the offset before the gap (03:30 EDT).
    assert day_start(date(2026, 3, 8), NY, 150) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    # 01:30 happens twice on 2026-11-01: the day starts at the first (EDT), as the wall clock shows it.
    assert day_start(date(2026, 11, 1), NY, 90) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_local_day_with_a_day_start() -> None:
    instant = datetime(2026, 3, 10, 7, 30, tzinfo=UTC)  # 03:30 in New York
    assert local_day(instant, NY) == date(2026, 3, 10)
    assert local_day(instant, NY, 240) == date(2026, 3, 9)
    assert local_day(instant, "Asia/Kathmandu") == date(2026, 3, 10)  # 13:15 there


@pytest.mark.parametrize("week_start", range(7))
def test_weeks_start_on_the_users_weekday(week_start: int) -> None:
    for offset in range(14):
        day = date(2026, 3, 2) + timedelta(days=offset)
        first = week_start_of(day, week_start)
        assert first.weekday() == week_start
        assert 0 <= (day - first).days <= 6
        assert closes_week(day, week_start) == ((day - first).days == 6)


def _life(**kwargs: object) -> HabitLife:
    values: dict[str, object] = {
        "days_mask": 0b1111111,
        "created_local_date": None,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    values.update(kwargs)
    return HabitLife(**values)  # type: ignore[arg-type]


def test_due_rule_on_a_25_hour_day() -> None:
    bounds = day_bounds(date(2026, 11, 1), NY)
    # Created at 23:30 local, 24.5 hours into the day: it existed before the day ended.
    late = datetime(2026, 11, 2, 4, 30, tzinfo=UTC)
    assert is_due(_life(created_at=late), bounds, has_entry=False)
    # Archived at the same instant: archived before the day ended, so not due without an entry…
    assert not is_due(_life(archived_at=late), bounds, has_entry=False)
    # …but an entry that day counts (it was archived after the day began).
    assert is_due(_life(archived_at=late), bounds, has_entry=True)


def test_due_rule_on_a_23_hour_day() -> None:
    bounds = day_bounds(date(2026, 3, 8), NY)
    # 00:30 on 2026-03-09 local: after the 23-hour day ended (start + 24 h would wrongly include it).
    next_day = datetime(2026, 3, 9, 4, 30, tzinfo=UTC)
    assert not is_due(_life(created_at=next_day), bounds, has_entry=False)
    assert is_due(_life(created_at=next_day), bounds, has_entry=True)  # an entry proves it existed


def test_due_rule_weekdays_dates_and_deletion() -> None:
    monday = day_bounds(date(2026, 3, 9), "UTC")
    assert not is_due(_life(days_mask=0b10), monday, has_entry=True)
    assert is_due(_life(days_mask=0b1), monday, has_entry=False)
    assert not is_due(_life(created_local_date=date(2026, 3, 10)), monday, has_entry=False)
    assert is_due(_life(created_local_date=date(2026, 3, 9)), monday, has_entry=False)
    assert not is_due(_life(deleted=True), monday, has_entry=True)
    before = datetime(2026, 3, 8, 23, tzinfo=UTC)
    assert not is_due(_life(archived_at=before), monday, has_entry=True)


@pytest.mark.parametrize(
    ("part", "whole", "scale", "places", "expected"),
    [
        (1, 3, 1, 4, Decimal("0.3333")),
        (2, 3, 1, 4, Decimal("0.6667")),
        (1, 32, 1, 4, Decimal("0.0313")),  # 0.03125: half rounds up
        (1, 8, 100, 2, Decimal("12.50")),
        (0, 5, 1, 4, Decimal("0.0000")),
        (0, 0, 1, 4, None),
    ],
)
def test_ratio_rounds_half_up(
    part: int, whole: int, scale: int, places: int, expected: Decimal | None
) -> None:
    assert ratio(part, whole, scale=scale, places=places) == expected


def test_daily_row_by_hand() -> None:
    bounds = day_bounds(date(2026, 3, 9), "UTC")  # a Monday
    habits = {
        "run": HabitFacts(_life(), "morning"),
        "stretch": HabitFacts(_life(), "morning"),
        "read": HabitFacts(_life(), "evening"),
        "journal": HabitFacts(_life(days_mask=0b10)),  # Tuesdays only: not due, its entry ignored
        "floss": HabitFacts(_life()),
    }
    entries = {"run": "done", "stretch": "skipped", "read": "done", "journal": "done"}
    focus = [
        FocusFacts(1500),
        FocusFacts(3000),
        FocusFacts(600, status="aborted"),
        FocusFacts(900, deleted=True),
    ]
    row = daily_row(bounds, habits, entries, focus)
    assert row == DailyRow(
        habits_due=4,
        habits_done=2,
        habits_skipped=1,
        completion_rate=Decimal("0.6667"),
        perfect_day=False,
        morning_pct=Decimal("100.00"),
        evening_pct=Decimal("100.00"),
        focus_sessions=2,
        focus_seconds=4500,
        longest_focus_seconds=3000,
    )


def test_a_perfect_day_needs_something_to_do() -> None:
    bounds = day_bounds(date(2026, 3, 9), "UTC")
    habits = {"a": HabitFacts(_life()), "b": HabitFacts(_life())}
    assert daily_row(bounds, habits, {"a": "done", "b": "skipped"}, []).perfect_day
    all_skipped = daily_row(bounds, habits, {"a": "skipped", "b": "skipped"}, [])
    assert (all_skipped.perfect_day, all_skipped.completion_rate) == (False, None)
    assert not daily_row(bounds, {}, {}, []).perfect_day


def _day(done: int, rate: str | None, perfect: bool = False, focus: int = 0, sessions: int = 0) -> DailyRow:
    return DailyRow(
        3, done, 0, None if rate is None else Decimal(rate), perfect, None, None, sessions, focus, 0
    )


def test_weekly_row_by_hand() -> None:
    days = [
        _day(3, "1.0000", perfect=True),
        _day(1, "0.3333"),
        _day(0, None, focus=1200, sessions=1),
        _day(0, "0.0000"),
        _day(2, "0.6667"),
    ]
    runs: list[list[str | None]] = [
        ["done", "done", None, "done", "done", "done"],  # a miss splits: the best run is 3
        ["done", "skipped", "done", "done", "done", "done"],  # the skip is neutral: 5
    ]
    row = weekly_row(days, runs)
    assert (row.days_active, row.perfect_days, row.habits_done, row.focus_seconds) == (4, 1, 6, 1200)
    assert row.avg_completion_rate == Decimal("0.5000")  # (1 + 0.3333 + 0 + 0.6667) / 4
    assert row.best_streak == 5


def test_rollup_days_for_normal_users_night_owls_and_movers() -> None:
    day = date(2026, 3, 9)
    assert rollup_days(day, 0, moved_recently=False) == [day]
    assert rollup_days(day, 240, moved_recently=False) == [date(2026, 3, 8)]
    assert rollup_days(day, 0, moved_recently=True) == [date(2026, 3, 8), day]
