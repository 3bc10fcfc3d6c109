"""Streak rules. Pure: the SQL in :mod:`habitjobs.analytics.streak_sql` computes the same thing set-based,
and a property test holds the two equal.

1. An entry counts for its stored ``local_date`` (the device's day); past days are never re-derived.
2. Only due days count (:mod:`habitjobs.analytics.days` says which days are due).
3. A skipped due day is neutral: it neither extends nor breaks a streak.
4. Today is open: a due day without an entry is a miss only once it has ended in the user's zone; done
   today already counts. An archived habit's archive day plays "today" for ever after: its streak stays
   as it stood when it was archived.
5. The streak is the number of done due days in the run; ``current`` is the run that reaches the last
   ended due day (or today), ``best`` the longest run ever.

Days before a habit's first entry cannot change a streak (a miss before any done day breaks nothing), so
the walk starts at the first entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import Enum

from habitjobs.weekdays import on_weekday


class Mark(Enum):
    DONE = "done"
    MISS = "miss"
    NEUTRAL = "neutral"


@dataclass(frozen=True)
class DueDays:
    """A habit's due days as plain dates (the user's zone already applied)."""

    days_mask: int
    start_day: date  # created_local_date, else the local day it was created
    archive_day: date | None = None  # the local day it was archived


@dataclass(frozen=True)
class Streak:
    current: int
    best: int
    last_done: date | None
    computed_through: date  # the last ended day the streak accounts for


def is_due_day(schedule: DueDays, day: date, *, has_entry: bool) -> bool:
    """The due rule of :mod:`habitjobs.analytics.days`, with the habit's life reduced to local days."""
    if not on_weekday(schedule.days_mask, day):
        return False
    archive = schedule.archive_day
    if has_entry:
        return archive is None or day <= archive
    return day >= schedule.start_day and (archive is None or day < archive)


def open_day(schedule: DueDays, today: date) -> date:
    """The one day that is not over yet for this habit: today, or its archive day if that came first."""
    archive = schedule.archive_day
    return today if archive is None else min(today, archive)


def mark_of(schedule: DueDays, day: date, entry: str | None, today: date) -> Mark:
    """How one day counts. ``entry`` is 'done', 'skipped' or None (no live entry)."""
    if not is_due_day(schedule, day, has_entry=entry is not None):
        return Mark.NEUTRAL
    if entry == "done":
        return Mark.DONE
    if entry is None and day < open_day(schedule, today):
        return Mark.MISS
    return Mark.NEUTRAL


def marks(schedule: DueDays, entries: Mapping[date, str], today: date) -> list[tuple[date, Mark]]:
    """Every day from the first entry to the open day, with how it counts."""
    last = open_day(schedule, today)
    relevant = [d for d in entries if d <= last]
    if not relevant:
        return []
    day, out = min(relevant), []
    while day <= last:
        out.append((day, mark_of(schedule, day, entries.get(day), today)))
        day += timedelta(days=1)
    return out


def longest_run(sequence: Iterable[Mark]) -> int:
    """The most DONE marks in a row, NEUTRAL ones skipped over, a MISS ending a run."""
    best = run = 0
    for mark in sequence:
        if mark is Mark.DONE:
            run += 1
            best = max(best, run)
        elif mark is Mark.MISS:
            run = 0
    return best


def compute(schedule: DueDays, entries: Mapping[date, str], today: date) -> Streak:
    """The streak from a habit's whole history. ``today`` is the user's local day now."""
    run = best = 0
    last_done: date | None = None
    for day, mark in marks(schedule, entries, today):
        if mark is Mark.DONE:
            run += 1
            best = max(best, run)
            last_done = day
        elif mark is Mark.MISS:
            run = 0
    return Streak(run, best, last_done, open_day(schedule, today) - timedelta(days=1))
