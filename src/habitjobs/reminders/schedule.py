"""When does a local-time reminder fire next? Pure: no I/O, the caller passes the instant and the zone.

Rules:
- A reminder is a wall-clock time in an IANA zone plus a weekday mask (bit 0 = Monday). It is never
  stored as a UTC time of day: that drifts by an hour at every DST change.
- Candidates are found by stepping *calendar days* in the zone (never by adding 24 hours, which is
  wrong on 23- and 25-hour days).
- A time that does not exist on that day (inside a spring-forward gap, e.g. 02:30 when clocks jump from
  02:00 to 03:00) fires at the next valid instant: the moment the clocks jump (03:00).
- A time that exists twice (inside a fall-back fold, e.g. 01:30) fires once, at its first occurrence.
"""

from __future__ import annotations

import functools
import zlib
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from habitjobs.weekdays import ALL_DAYS_MASK, on_weekday

# A gap is at most a few hours in the real world; this bounds the search for its end.
_MAX_GAP = timedelta(hours=3)


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant at which ``at`` o'clock happens on ``day`` in ``zone`` (gap → clocks' jump,
    fold → first occurrence)."""
    wall = datetime.combine(day, at.replace(tzinfo=None, fold=0))
    first = wall.replace(tzinfo=zone, fold=0)
    if _exists(first):
        return first.astimezone(UTC)
    # Inside a gap: the first wall-clock minute after `wall` that exists is the moment clocks jump.
    probe = wall
    while probe - wall <= _MAX_GAP:
        probe = (probe + timedelta(minutes=1)).replace(second=0, microsecond=0)
        candidate = probe.replace(tzinfo=zone, fold=0)
        if _exists(candidate):
            return candidate.astimezone(UTC)
    raise ValueError(f"{wall} in {zone.key} is inside an implausibly long gap")


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
    for _ in range(9):
        if on_weekday(days_mask, day):
            instant = local_instant(day, at, zone)
            if instant > after:
                return instant
        day += timedelta(days=1)
    raise AssertionError("unreachable: a selected weekday occurs within any 9 consecutive days")


def local_date_of(instant: datetime, zone: ZoneInfo) -> date:
    """The local calendar date of an instant (for dedupe keys: one delivery per local day)."""
    return instant.astimezone(zone).date()


def spread_offset_s(user_key: str, window_s: int = 60) -> int:
    """A deterministic per-user offset in ``[0, window_s)``: spreads the top-of-minute spike.

    CRC-32, not Python's salted ``hash``, so every process agrees.
    """
    return zlib.crc32(user_key.encode()) % window_s
