"""Statistics rules: what a daily and a weekly row hold. Pure; :mod:`habitjobs.analytics.stats_sql` is the
set-based twin, held equal by a property test (and the benchmark's per-user loop uses these directly).

Daily, per user and local day, over the habits due that day (:mod:`habitjobs.analytics.days`):
- ``habits_due`` / ``habits_done`` / ``habits_skipped``; an entry on a day the habit is not due is ignored;
- ``completion_rate`` = done / (due − skipped), 4 decimals, NULL when that is 0/0;
- ``perfect_day``: something was left to do and all of it was done;
- ``morning_pct`` / ``evening_pct``: the same rate × 100 (2 decimals) over the habits of the user's live
  morning / evening routines, NULL when there were none to do;
- focus: completed (not aborted) sessions of that local day — count, total and longest ``focus_seconds``.

Weekly, per user and week (its first day by the user's ``week_start``), from that week's daily rows:
``days_active`` (a habit done or a focus session), ``perfect_days``, ``habits_done``,
``avg_completion_rate`` (mean of the days that have a rate, 4 decimals), ``focus_seconds``, and
``best_streak``: the longest run of done due days of any one habit inside the week (skips neutral). It is
measured inside the week so that late data for one week never rewrites another week's row.

Decimals round half up, as PostgreSQL's ``round(numeric, n)`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeVar

from habitjobs.analytics.days import DayBounds, HabitLife, is_due
from habitjobs.analytics.streaks import Mark, longest_run

K = TypeVar("K")  # whatever identifies a habit: the same key in ``habits`` and ``entries``


def ratio(part: int, whole: int, *, scale: int, places: int) -> Decimal | None:
    """``scale`` × part / whole rounded half up to ``places`` decimals; None for 0/0."""
    if whole == 0:
        return None
    value = Decimal(scale * part) / Decimal(whole)
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class HabitFacts:
    life: HabitLife
    routine_kind: str | None = None  # kind of its live routine, if any


@dataclass(frozen=True)
class FocusFacts:
    focus_seconds: int
    status: str = "completed"
    deleted: bool = False


@dataclass(frozen=True)
class DailyRow:
    habits_due: int
    habits_done: int
    habits_skipped: int
    completion_rate: Decimal | None
    perfect_day: bool
    morning_pct: Decimal | None
    evening_pct: Decimal | None
    focus_sessions: int
    focus_seconds: int
    longest_focus_seconds: int


def _tally(statuses: Sequence[str | None]) -> tuple[int, int, int]:
    return len(statuses), statuses.count("done"), statuses.count("skipped")


def daily_row(
    bounds: DayBounds,
    habits: Mapping[K, HabitFacts],
    entries: Mapping[K, str],
    focus: Iterable[FocusFacts],
) -> DailyRow:
    """One user's day. ``entries`` maps habit key → live entry status on that day."""
    due: list[tuple[HabitFacts, str | None]] = [
        (h, entries.get(key)) for key, h in habits.items() if is_due(h.life, bounds, has_entry=key in entries)
    ]
    total, done, skipped = _tally([s for _, s in due])
    morning = _tally([s for h, s in due if h.routine_kind == "morning"])
    evening = _tally([s for h, s in due if h.routine_kind == "evening"])
    sessions = [f.focus_seconds for f in focus if f.status == "completed" and not f.deleted]
    return DailyRow(
        habits_due=total,
        habits_done=done,
        habits_skipped=skipped,
        completion_rate=ratio(done, total - skipped, scale=1, places=4),
        perfect_day=total - skipped > 0 and done == total - skipped,
        morning_pct=ratio(morning[1], morning[0] - morning[2], scale=100, places=2),
        evening_pct=ratio(evening[1], evening[0] - evening[2], scale=100, places=2),
        focus_sessions=len(sessions),
        focus_seconds=sum(sessions),
        longest_focus_seconds=max(sessions, default=0),
    )


@dataclass(frozen=True)
class WeeklyRow:
    days_active: int
    perfect_days: int
    habits_done: int
    avg_completion_rate: Decimal | None
    focus_seconds: int
    best_streak: int


def week_mark(status: str | None) -> Mark:
    """How a due day counts inside a closed week: every day of it has ended."""
    if status == "done":
        return Mark.DONE
    return Mark.NEUTRAL if status == "skipped" else Mark.MISS


def weekly_row(days: Sequence[DailyRow], habit_weeks: Iterable[Sequence[str | None]]) -> WeeklyRow:
    """``days``: the week's daily rows; ``habit_weeks``: per habit, the entry status of each of its due
    days in the week, in date order."""
    rates = [d.completion_rate for d in days if d.completion_rate is not None]
    average = None
    if rates:
        average = (sum(rates, Decimal(0)) / len(rates)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    return WeeklyRow(
        days_active=sum(1 for d in days if d.habits_done > 0 or d.focus_sessions > 0),
        perfect_days=sum(1 for d in days if d.perfect_day),
        habits_done=sum(d.habits_done for d in days),
        avg_completion_rate=average,
        focus_seconds=sum(d.focus_seconds for d in days),
        best_streak=max((longest_run(week_mark(s) for s in week) for week in habit_weeks), default=0),
    )


def rollup_days(run_day: date, day_start_minutes: int, *, moved_recently: bool) -> list[date]:
    """Which of a user's local days the nightly run of their zone's ``run_day`` computes.

    The run starts once ``run_day`` ended at local midnight. A user whose days start later (a night owl)
    is still inside ``run_day`` then, so that run computes their previous day, which has ended. A user
    who moved to this zone recently may have fallen between two zones' runs: they get the day before as
    well (re-computing a day is harmless).
    """
    last_ended = date.fromordinal(run_day.toordinal() - (1 if day_start_minutes > 0 else 0))
    if moved_recently:
        return [date.fromordinal(last_ended.toordinal() - 1), last_ended]
    return [last_ended]
