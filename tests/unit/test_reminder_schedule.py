"""next_fire_at across the 2026 DST changes, odd offsets, gaps and folds; and a no-drift property."""

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from habitjobs.reminders.schedule import local_instant, next_fire_at, spread_offset_s
from habitjobs.weekdays import ALL_DAYS_MASK as ALL_DAYS
from habitjobs.weekdays import on_weekday

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
KOLKATA = ZoneInfo("Asia/Kolkata")
KATHMANDU = ZoneInfo("Asia/Kathmandu")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fires(start: datetime, at: time, zone: ZoneInfo, count: int, mask: int = ALL_DAYS) -> list[datetime]:
    out, after = [], start
    for _ in range(count):
        nxt = next_fire_at(after, at, mask, zone)
        assert nxt is not None
        out.append(nxt)
        after = nxt
    return out


@pytest.mark.parametrize(
    ("zone", "day_before", "expected_utc"),
    [
        # 07:00 local stays 07:00 local: the UTC instant moves by the DST shift, never the wall time.
        (NY, date(2026, 3, 7), [utc(2026, 3, 7, 12), utc(2026, 3, 8, 11), utc(2026, 3, 9, 11)]),
        (NY, date(2026, 10, 31), [utc(2026, 10, 31, 11), utc(2026, 11, 1, 12), utc(2026, 11, 2, 12)]),
        (BERLIN, date(2026, 3, 28), [utc(2026, 3, 28, 6), utc(2026, 3, 29, 5), utc(2026, 3, 30, 5)]),
        (BERLIN, date(2026, 10, 24), [utc(2026, 10, 24, 5), utc(2026, 10, 25, 6), utc(2026, 10, 26, 6)]),
        (SYDNEY, date(2026, 4, 4), [utc(2026, 4, 3, 20), utc(2026, 4, 4, 21), utc(2026, 4, 5, 21)]),
        (SYDNEY, date(2026, 10, 3), [utc(2026, 10, 2, 21), utc(2026, 10, 3, 20), utc(2026, 10, 4, 20)]),
        (
            LORD_HOWE,
            date(2026, 4, 4),
            [utc(2026, 4, 3, 20), utc(2026, 4, 4, 20, 30), utc(2026, 4, 5, 20, 30)],
        ),
        (
            LORD_HOWE,
            date(2026, 10, 3),
            [utc(2026, 10, 2, 20, 30), utc(2026, 10, 3, 20), utc(2026, 10, 4, 20)],
        ),
        (KOLKATA, date(2026, 3, 7), [utc(2026, 3, 7, 1, 30), utc(2026, 3, 8, 1, 30), utc(2026, 3, 9, 1, 30)]),
        (
            KATHMANDU,
            date(2026, 3, 7),
            [utc(2026, 3, 7, 1, 15), utc(2026, 3, 8, 1, 15), utc(2026, 3, 9, 1, 15)],
        ),
    ],
)
def test_seven_oclock_across_dst_changes(
    zone: ZoneInfo, day_before: date, expected_utc: list[datetime]
) -> None:
    start = datetime.combine(day_before, time(0, 0), tzinfo=zone)
    got = fires(start, time(7, 0), zone, 3)
    assert got == expected_utc
    assert all(f.astimezone(zone).time() == time(7, 0) for f in got)


@pytest.mark.parametrize(
    ("zone", "day", "at", "expected_local"),
    [
        # Spring forward: the wall time does not exist that day → the moment the clocks jump.
        (NY, date(2026, 3, 8), time(2, 30), datetime(2026, 3, 8, 3, 0)),
        (BERLIN, date(2026, 3, 29), time(2, 30), datetime(2026, 3, 29, 3, 0)),
        (SYDNEY, date(2026, 10, 4), time(2, 30), datetime(2026, 10, 4, 3, 0)),
        (LORD_HOWE, date(2026, 10, 4), time(2, 15), datetime(2026, 10, 4, 2, 30)),
        # Fall back: the wall time happens twice → the first one (summer offset).
        (NY, date(2026, 11, 1), time(1, 30), datetime(2026, 11, 1, 1, 30)),
        (BERLIN, date(2026, 10, 25), time(2, 30), datetime(2026, 10, 25, 2, 30)),
        (SYDNEY, date(2026, 4, 5), time(2, 30), datetime(2026, 4, 5, 2, 30)),
        (LORD_HOWE, date(2026, 4, 5), time(1, 45), datetime(2026, 4, 5, 1, 45)),
    ],
)
def test_gaps_and_folds(zone: ZoneInfo, day: date, at: time, expected_local: datetime) -> None:
    instant = local_instant(day, at, zone)
    local = instant.astimezone(zone)
    assert local.replace(tzinfo=None) == expected_local
    if at == expected_local.time():  # a fold: the first occurrence has the larger (summer) offset
        later = datetime.combine(day, at, tzinfo=zone).replace(fold=1)
        assert instant < later.astimezone(UTC)


@pytest.mark.parametrize(
    ("zone", "day", "at"), [(NY, date(2026, 11, 1), time(1, 30)), (LORD_HOWE, date(2026, 4, 5), time(1, 45))]
)
def test_an_ambiguous_time_fires_once(zone: ZoneInfo, day: date, at: time) -> None:
    start = datetime.combine(day - timedelta(days=1), time(12, 0), tzinfo=zone)
    got = fires(start, at, zone, 3)
    assert [f.astimezone(zone).date() for f in got] == [day, day + timedelta(days=1), day + timedelta(days=2)]


def test_weekday_mask_selects_days() -> None:
    weekdays = 0b0011111  # Monday to Friday
    start = datetime(2026, 3, 6, 8, 0, tzinfo=BERLIN)  # a Friday, after 07:00
    got = fires(start, time(7, 0), BERLIN, 3, weekdays)
    assert [f.astimezone(BERLIN).date() for f in got] == [
        date(2026, 3, 9),
        date(2026, 3, 10),
        date(2026, 3, 11),
    ]
    assert next_fire_at(start, time(7, 0), 0, BERLIN) is None


def test_strictly_after_and_needs_an_aware_instant() -> None:
    instant = local_instant(date(2026, 5, 1), time(7, 0), BERLIN)
    assert next_fire_at(instant, time(7, 0), ALL_DAYS, BERLIN) == instant + timedelta(days=1)
    assert next_fire_at(instant - timedelta(microseconds=1), time(7, 0), ALL_DAYS, BERLIN) == instant
    with pytest.raises(ValueError, match="aware"):
        next_fire_at(datetime(2026, 5, 1), time(7, 0), ALL_DAYS, BERLIN)


def test_late_evening_local_time_is_found_when_utc_is_already_tomorrow() -> None:
    # 23:30 in Kolkata is 18:00 UTC; from 19:00 UTC (00:30 local next day) the next one is tomorrow's.
    got = next_fire_at(utc(2026, 6, 1, 19, 0), time(23, 30), ALL_DAYS, KOLKATA)
    assert got == utc(2026, 6, 2, 18, 0)


def test_spread_offset_is_stable_and_in_range() -> None:
    offsets = {spread_offset_s(f"user-{i}") for i in range(500)}
    assert offsets <= set(range(60))
    assert len(offsets) > 40  # actually spreads
    assert spread_offset_s("abc") == spread_offset_s("abc")


ZONES = [
    NY,
    BERLIN,
    SYDNEY,
    LORD_HOWE,
    KOLKATA,
    KATHMANDU,
    ZoneInfo("America/St_Johns"),
    ZoneInfo("Pacific/Chatham"),
]


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 15, 30, 45, 59]),
    mask=st.integers(1, ALL_DAYS),
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 1)),
)
def test_fire_times_never_drift(zone: ZoneInfo, hour: int, minute: int, mask: int, start: datetime) -> None:
    at = time(hour, minute)
    after = start.replace(tzinfo=UTC)
    got = fires(after, at, zone, 40, mask)
    assert all(b > a for a, b in itertools.pairwise(got)), "strictly increasing"
    local_days = [f.astimezone(zone).date() for f in got]
    assert len(set(local_days)) == len(local_days), "at most once per local day"
    for fire, day in zip(got, local_days, strict=True):
        assert on_weekday(mask, day)
        wall = fire.astimezone(zone).replace(tzinfo=None)
        if wall.time() != at:
            # Only inside a spring-forward gap: fired when the clocks jumped, less than 3 hours later.
            assert local_instant(day, at, zone) == fire
            assert timedelta(0) < wall - datetime.combine(day, at) < timedelta(hours=3)
    # No due day is skipped between the first and the last firing.
    day = local_days[0]
    expected = []
    while day <= local_days[-1]:
        if on_weekday(mask, day):
            expected.append(day)
        day += timedelta(days=1)
    assert local_days == expected
