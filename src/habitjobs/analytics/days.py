"""Calendar rules shared by statistics and streaks: local days, day bounds, weeks, due days. Pure.

A user's local day starts ``day_start_minutes`` after local midnight (a night owl's Tuesday may end at
04:00 on Wednesday). Its bounds are wall-clock times turned into instants in the user's zone, so a DST
day lasts 23 or 25 hours — never "start + 24 h". The SQL builds the same bounds
(:func:`habitjobs.analytics.stats_sql.first_instant`).

One definition of a day for everything (daily rows, streaks, "today"): an instant belongs to the local
day its wall clock shows (``local_day``). So a day begins at the *first* instant its start time is shown:
when the clocks fall back across the day's start (America/Havana goes from 01:00 back to 00:00, so
midnight happens twice), the day begins at the first midnight, and the hour between the two belongs to
the new day, as the wall clock says.

When is a habit due on a day? When the day is one of its weekdays (``days_mask``, bit 0 = Monday) and
either

- it has an entry (done or skipped) that day, and it was not archived before the day began — an entry
  proves the habit existed, even before its ``created_local_date`` (offline back-filling); or
- it existed by the end of the day (``created_local_date`` ≤ day, or, without one, created before the
  day ended) and was not archived before the day ended.

Deleted habits and deleted entries count for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from habitjobs.weekdays import on_weekday


def local_day(instant: datetime, zone: str, day_start_minutes: int = 0) -> date:
    """The local day an instant falls in, for a user of ``zone`` whose days start that late."""
    wall = instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
    return (wall - timedelta(minutes=day_start_minutes)).date()


def day_start(day: date, zone: str, day_start_minutes: int = 0) -> datetime:
    """The instant ``day`` begins (UTC): the first instant its start time is shown (a time repeated by DST
    is its earlier instant); a start time skipped by DST takes the offset before the gap (02:30 on a
    spring-forward night is 03:30 summer time) — both are PEP 495's ``fold=0``."""
    wall = datetime.combine(day, time()) + timedelta(minutes=day_start_minutes)
    return wall.replace(tzinfo=ZoneInfo(zone), fold=0).astimezone(UTC)


@dataclass(frozen=True)
class DayBounds:
    day: date
    lo: datetime  # inclusive
    hi: datetime  # exclusive

    @property
    def length_s(self) -> float:
        return (self.hi - self.lo).total_seconds()


def day_bounds(day: date, zone: str, day_start_minutes: int = 0) -> DayBounds:
    return DayBounds(
        day,
        day_start(day, zone, day_start_minutes),
        day_start(day + timedelta(days=1), zone, day_start_minutes),
    )


def week_start_of(day: date, week_start: int) -> date:
    """First day of the week holding ``day``; ``week_start`` is the weekday weeks begin on (0 = Monday)."""
    return day - timedelta(days=(day.weekday() - week_start) % 7)


def closes_week(day: date, week_start: int) -> bool:
    """Whether ``day`` is the last day of its week."""
    return (day.weekday() - week_start) % 7 == 6


@dataclass(frozen=True)
class HabitLife:
    """What the due rule needs to know about a habit."""

    days_mask: int
    created_local_date: date | None
    created_at: datetime
    archived_at: datetime | None = None
    deleted: bool = False


def is_due(habit: HabitLife, bounds: DayBounds, *, has_entry: bool) -> bool:
    """The due rule of this module's docstring, for one habit on one day."""
    if habit.deleted or not on_weekday(habit.days_mask, bounds.day):
        return False
    if has_entry:
        return habit.archived_at is None or habit.archived_at >= bounds.lo
    existed = (
        habit.created_local_date <= bounds.day
        if habit.created_local_date is not None
        else habit.created_at < bounds.hi
    )
    return existed and (habit.archived_at is None or habit.archived_at >= bounds.hi)
