"""Every zone of the installed tz database, for a whole year: a daily reminder fires exactly once for each
local day that exists (a day the clocks jump over entirely is skipped: documented in
habitjobs.reminders.schedule), at its wall time or, inside a gap, at the moment the clocks jump — and the
occurrence is keyed to the day it was computed for. Pure functions only: fast over ~600 zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest

from habitjobs.reminders.schedule import MissingDay, local_instant, next_fire_at, occurrence_day

ALL_DAYS = 0b1111111
# Just after midnight (gaps that start at midnight), a usual gap time, and late evening (jumps that end at
# midnight, e.g. America/Nuuk 23:00 → 00:00).
TIMES = [time(0, 30), time(2, 30), time(23, 30)]


def wall_exists(wall: datetime, zone: ZoneInfo) -> bool:
    return wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def day_exists(day: date, zone: ZoneInfo) -> bool:
    """Independent of the code under test: some half hour of the day survives a round trip via UTC."""
    return any(
        wall_exists(datetime.combine(day, time(minute // 60, minute % 60)), zone)
        for minute in range(0, 24 * 60, 30)
    )


def walk_year(zone: ZoneInfo, at: time, year: int) -> list[tuple[date, datetime]]:
    start = datetime(year, 1, 1, tzinfo=zone) - timedelta(days=1)
    end = datetime(year + 1, 1, 1, tzinfo=zone)
    out: list[tuple[date, datetime]] = []
    fire = next_fire_at(start, at, ALL_DAYS, zone)
    while fire is not None and fire < end:
        out.append((occurrence_day(fire, at, zone), fire))
        fire = next_fire_at(fire, at, ALL_DAYS, zone)
    return out


def check_zone(name: str, year: int) -> list[date]:
    """Asserts the properties for one zone; returns the days skipped as non-existent."""
    zone = ZoneInfo(name)
    skipped: list[date] = []
    for at in TIMES:
        walked = walk_year(zone, at, year)
        days = [d for d, _ in walked if d.year == year]
        assert len(days) == len(set(days)), (name, at, "a day fired twice")
        assert days == sorted(days), (name, at)
        for day, fire in walked:
            local = fire.astimezone(zone)
            wall = datetime.combine(day, at)
            if local.replace(tzinfo=None) != wall:
                # Only a wall time inside a gap moves, to the jump: a second earlier was before it.
                assert not wall_exists(wall, zone), (name, at, day, local)
                just_before = (fire - timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
                assert just_before < wall < local.replace(tzinfo=None), (name, at, day, local)
        present = set(days)
        day = date(year, 1, 1)
        while day.year == year:
            if day not in present:
                assert not day_exists(day, zone), (name, at, day, "an existing day never fired")
                with pytest.raises(MissingDay):
                    local_instant(day, at, zone)
                skipped.append(day)
            day += timedelta(days=1)
    return skipped


def test_every_zone_fires_once_per_existing_local_day_for_a_year() -> None:
    zones = sorted(available_timezones())
    assert len(zones) > 300
    for name in zones:
        assert check_zone(name, 2026) == [], name


def test_a_day_that_does_not_exist_is_skipped_once_and_nothing_else_is() -> None:
    # Pacific/Apia jumped from 2011-12-29 23:59:59 to 2011-12-31 00:00 (UTC-10 → UTC+14).
    assert check_zone("Pacific/Apia", 2011) == [date(2011, 12, 30)] * len(TIMES)
    apia = ZoneInfo("Pacific/Apia")
    friday_only = 1 << date(2011, 12, 30).weekday()
    after = datetime(2011, 12, 24, tzinfo=apia)
    fire = next_fire_at(after, time(9, 0), friday_only, apia)
    assert fire is not None
    assert fire.astimezone(apia) == datetime(2012, 1, 6, 9, 0, tzinfo=apia)


def test_a_jump_that_ends_at_midnight_keeps_the_evening_on_its_own_day() -> None:
    # America/Nuuk: Saturday 2026-03-28 23:00 → Sunday 00:00.
    nuuk = ZoneInfo("America/Nuuk")
    saturday = local_instant(date(2026, 3, 28), time(23, 30), nuuk)
    assert saturday.astimezone(nuuk) == datetime(2026, 3, 29, 0, 0, tzinfo=nuuk)
    assert occurrence_day(saturday, time(23, 30), nuuk) == date(2026, 3, 28)
    sunday = next_fire_at(saturday, time(23, 30), ALL_DAYS, nuuk)
    assert sunday is not None
    assert occurrence_day(sunday, time(23, 30), nuuk) == date(2026, 3, 29)
    # Sunday's midnight reminder fires at the same instant, as Sunday's.
    assert occurrence_day(saturday, time(0, 0), nuuk) == date(2026, 3, 29)
