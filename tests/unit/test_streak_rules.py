"""The streak rules (pure): due days, skips, today open, archive, runs — hand-computed cases."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import date, timedelta

import pytest

from habitjobs.analytics.streaks import DueDays, Mark, Streak, compute, is_due_day, longest_run, mark_of

MON = date(2026, 3, 2)  # a Monday
DAILY = 0b1111111
MON_WED_FRI = 0b0010101
WEEKENDS = 0b1100000


def day(n: int) -> date:
    return MON + timedelta(days=n)


def entries(done: Sequence[int] = (), skipped: Sequence[int] = ()) -> dict[date, str]:
    out = {day(n): "done" for n in done}
    out.update({day(n): "skipped" for n in skipped})
    return out


def test_a_daily_habit_done_every_day_until_yesterday() -> None:
    got = compute(DueDays(DAILY, day(0)), entries(done=[0, 1, 2, 3]), today=day(4))
    assert got == Streak(current=4, best=4, last_done=day(3), computed_through=day(3))


def test_today_is_open_until_it_ends() -> None:
    schedule = DueDays(DAILY, day(0))
    # Nothing yet today: no miss, the run of ended days stands.
    assert compute(schedule, entries(done=[0, 1]), today=day(2)).current == 2
    # Done today already counts.
    assert compute(schedule, entries(done=[0, 1, 2]), today=day(2)).current == 3
    # Tomorrow, the day without an entry has ended: a miss.
    assert compute(schedule, entries(done=[0, 1]), today=day(3)).current == 0


def test_only_due_weekdays_count() -> None:
    schedule = DueDays(MON_WED_FRI, day(0))
    # Mon, Wed, Fri, Mon: Tuesday and the weekend are not due, so nothing breaks.
    got = compute(schedule, entries(done=[0, 2, 4, 7]), today=day(8))
    assert (got.current, got.best) == (4, 4)
    # Done on a Tuesday: not a due day, so it does not count.
    assert compute(schedule, entries(done=[0, 1]), today=day(2)).current == 1
    # Wednesday missed: the run breaks at the next ended due day.
    got = compute(schedule, entries(done=[0, 4, 7]), today=day(8))
    assert (got.current, got.best) == (2, 2)


def test_weekend_habit_across_weeks() -> None:
    schedule = DueDays(WEEKENDS, day(0))
    got = compute(schedule, entries(done=[5, 6, 12, 13]), today=day(19))
    assert (got.current, got.best, got.last_done) == (4, 4, day(13))
    # The next Saturday (day 19) is today: still open. On Sunday (20) it has ended without an entry.
    assert compute(schedule, entries(done=[5, 6, 12, 13]), today=day(20)).current == 0


def test_skipped_days_are_neutral() -> None:
    schedule = DueDays(DAILY, day(0))
    got = compute(schedule, entries(done=[0, 1, 3, 4], skipped=[2]), today=day(5))
    assert (got.current, got.best) == (4, 4)
    # Skipping today changes nothing either.
    got = compute(schedule, entries(done=[0, 1], skipped=[2]), today=day(2))
    assert got.current == 2


def test_a_gap_splits_runs_and_best_keeps_the_longest() -> None:
    schedule = DueDays(DAILY, day(0))
    got = compute(schedule, entries(done=[0, 1, 2, 4, 5]), today=day(6))
    assert (got.current, got.best) == (2, 3)


def test_filling_the_gap_restores_the_streak() -> None:
    schedule = DueDays(DAILY, day(0))
    before = compute(schedule, entries(done=[0, 1, 2, 4, 5]), today=day(6))
    after = compute(schedule, entries(done=[0, 1, 2, 3, 4, 5]), today=day(6))
    assert (before.current, after.current, after.best) == (2, 6, 6)


def test_days_before_the_habit_existed_are_not_misses_but_entries_then_count() -> None:
    schedule = DueDays(DAILY, start_day=day(3))
    # Back-filled entries before the start day count; the empty days before the start do not break.
    got = compute(schedule, entries(done=[0, 2, 3, 4]), today=day(5))
    assert (got.current, got.best) == (4, 4)


def test_an_archived_habit_keeps_the_streak_it_had() -> None:
    schedule = DueDays(DAILY, day(0), archive_day=day(3))
    # Archived on day 3 before doing it: day 3 stays open for ever, nothing after it counts.
    got = compute(schedule, entries(done=[0, 1, 2, 5]), today=day(10))
    assert got == Streak(current=3, best=3, last_done=day(2), computed_through=day(2))
    # Done on the archive day, then archived: that day counts.
    assert compute(schedule, entries(done=[0, 1, 2, 3]), today=day(10)).current == 4


def test_no_entries_no_streak() -> None:
    got = compute(DueDays(DAILY, day(0)), {}, today=day(9))
    assert got == Streak(0, 0, None, day(8))


def test_future_entries_are_ignored_until_their_day() -> None:
    got = compute(DueDays(DAILY, day(0)), entries(done=[0, 1, 9]), today=day(2))
    assert (got.current, got.last_done) == (2, day(1))


@pytest.mark.parametrize(
    ("entry", "day_offset", "expected"),
    [
        ("done", 0, Mark.DONE),
        ("skipped", 0, Mark.NEUTRAL),
        (None, 0, Mark.MISS),
        (None, 2, Mark.NEUTRAL),  # today: open
        ("done", 2, Mark.DONE),
        (None, 1, Mark.NEUTRAL),  # Tuesday is not due
        ("done", 1, Mark.NEUTRAL),
    ],
)
def test_mark_of_each_kind_of_day(entry: str | None, day_offset: int, expected: Mark) -> None:
    assert mark_of(DueDays(MON_WED_FRI, day(0)), day(day_offset), entry, today=day(2)) is expected


def test_due_rule_with_start_and_archive() -> None:
    schedule = DueDays(DAILY, start_day=day(2), archive_day=day(5))
    due = [n for n in range(8) if is_due_day(schedule, day(n), has_entry=False)]
    due_with_entry = [n for n in range(8) if is_due_day(schedule, day(n), has_entry=True)]
    assert due == [2, 3, 4]
    assert due_with_entry == [0, 1, 2, 3, 4, 5]


def test_longest_run_skips_neutral_and_breaks_on_miss() -> None:
    d, m, n = Mark.DONE, Mark.MISS, Mark.NEUTRAL
    assert longest_run([]) == 0
    assert longest_run([d, n, d, m, d]) == 2
    assert longest_run([m, d, d, d, n, n, d, m]) == 4


def test_every_week_of_entries_for_every_mask_is_consistent() -> None:
    """All 3**7 entry patterns over one week for a few masks: current ≤ best, best is the longest run of
    the marks, and current is the run that reaches the last non-neutral day."""
    for mask in (DAILY, MON_WED_FRI, WEEKENDS, 0b0000001):
        schedule = DueDays(mask, day(0))
        for pattern in itertools.product((None, "done", "skipped"), repeat=7):
            found = {day(i): s for i, s in enumerate(pattern) if s is not None}
            got = compute(schedule, found, today=day(7))
            sequence = [mark_of(schedule, day(i), found.get(day(i)), day(7)) for i in range(7)]
            counted = [m for m in sequence if m is not Mark.NEUTRAL]
            tail = 0
            for mark in reversed(counted):
                if mark is not Mark.DONE:
                    break
                tail += 1
            # Days before the first entry are left out of the walk; they cannot change the answer.
            assert got.best == longest_run(sequence), (mask, pattern)
            assert got.current == tail, (mask, pattern)
            assert got.current <= got.best
