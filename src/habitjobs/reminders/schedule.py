"""When does a local-time reminder fire next? Pure: no I/O, the caller passes the instant and the zone.

Rules:
- A reminder is a wall-clock time in an IANA zone plus a weekday mask (bit 0 = Monday). It is never
  stored as a UTC time of day: that drifts by an hour at every DST change.
- Candidates are found by stepping *calendar days* in the zone (never by adding 24 hours, which is
  wrong on 23- and 25-hour days).
- A time that does not exist on that day (inside a spring-forward gap, e.g. 02:30 when clocks jump from
  02:00 to 03:00) fires at the next valid instant: the moment the clocks jump (03:00). That moment may
  be on the next calendar day (America/Nuuk jumps from 23:00 to 00:00 in March: Saturday's 23:30 fires
  at Sunday 00:00); it is still Saturday's occurrence — its dedupe key and "done today?" use Saturday
  (:func:`occurrence_day`).
- A time that exists twice (inside a fall-back fold, e.g. 01:30) fires once, at its first occurrence.
- A calendar day that does not exist in the zone at all (Pacific/Apia skipped 2011-12-30, jumping from
  the 29th 23:59:59 to the 31st 00:00) has no occurrence: the reminder skips that day and fires on the
  next due day that exists.
"""

from __future__ import annotations

import functools
import zlib
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from habitjobs.weekdays import ALL_DAYS_MASK, on_weekday


class MissingDay(ValueError):
    """The calendar day does not exist in the zone (the clocks jumped over all of it)."""


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant at which ``at`` o'clock happens on ``day`` in ``zone`` (gap → clocks' jump,
    fold → first occurrence). Raises :class:`MissingDay` when ``day`` does not exist in ``zone``."""
    wall = datetime.combine(day, at.replace(tzinfo=None, fold=0))
    first = wall.replace(tzinfo=zone, fold=0)
    if _exists(first):
        return first.astimezone(UTC)
    jump = _jump(wall, zone)
    if (jump - _TICK).astimezone(zone).date() < day < jump.astimezone(zone).date():
        raise MissingDay(f"{day} does not exist in {zone.key}")
    return jump


_TICK = timedelta(microseconds=1)


def _jump(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant the clocks jump over ``wall`` (a wall time inside a gap), found by bisection.

    Read with the offset after the jump, ``wall`` is an instant before it; read with the offset before
    the jump, an instant after it (PEP 495). Offsets change on whole seconds.
    """
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    lo, hi = before.timestamp(), after.timestamp()
    if lo >= hi:  # not a forward jump (cannot happen for a wall time inside a gap)
        return after
    target = after.astimezone(zone).utcoffset()
    lo_s, hi_s = int(lo), -int(-hi // 1)
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == target:
            hi_s = mid
        else:
            lo_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


def _exists(aware: datetime) -> bool:
    """True unless the wall time falls in a gap (it would not survive a round trip through UTC)."""
    back = aware.astimezone(UTC).astimezone(aware.tzinfo)
    return back.replace(tzinfo=None) == aware.replace(tzinfo=None)


def next_fire_at(after: datetime, at: time, days_mask: int, zone: ZoneInfo) -> datetime | None:
    """The first firing strictly after ``after`` (aware), in UTC; None if no weekday is selected."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    return _next_fire_at(after.astimezone(UTC), at, days_mask, zone)


# A tick advances thousands of reminders sharing a few (instant, time, weekdays, zone) combinations.
@functools.lru_cache(maxsize=4096)
def _next_fire_at(after: datetime, at: time, days_mask: int, zone: ZoneInfo) -> datetime | None:
    if not days_mask & ALL_DAYS_MASK:
        return None
    # Start a day early: `after` in UTC may still be "yesterday" locally relative to a late time.
    day = after.astimezone(zone).date() - timedelta(days=1)
    for _ in range(16):
        if on_weekday(days_mask, day):
            try:
                instant = local_instant(day, at, zone)
            except MissingDay:
                instant = None  # the day does not exist there: skipped
            if instant is not None and instant > after:
                return instant
        day += timedelta(days=1)
    raise AssertionError("unreachable: a selected weekday occurs within any 16 consecutive days")


def local_date_of(instant: datetime, zone: ZoneInfo) -> date:
    """The local calendar date of an instant."""
    return instant.astimezone(zone).date()


@functools.lru_cache(maxsize=4096)
def occurrence_day(fire_at: datetime, at: time, zone: ZoneInfo) -> date:
    """The calendar day whose ``at`` o'clock occurrence fires at ``fire_at`` (for dedupe keys and "done
    today?": one delivery per local day). Usually the local date of ``fire_at``; the day before when that
    day's time fell into a jump that ended after midnight (America/Nuuk: Saturday 23:30 → Sunday 00:00)."""
    local = fire_at.astimezone(zone).date()
    for day in (local, local - timedelta(days=1)):
        try:
            if local_instant(day, at, zone) == fire_at:
                return day
        except MissingDay:
            continue
    return local


def spread_offset_s(user_key: str, window_s: int = 60) -> int:
    """A deterministic per-user offset in ``[0, window_s)``: spreads the top-of-minute spike.

    CRC-32, not Python's salted ``hash``, so every process agrees.
    """
    return zlib.crc32(user_key.encode()) % window_s
