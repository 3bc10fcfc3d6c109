"""The values the system accepts: every one it can store, read back, compute on and export. Pure.

One definition for the API bodies, the sync mutations and the merge, so that a value accepted at one
door is accepted at every other and never fails later (in a query, a serialiser or an export).

- **Instants** (``...Z`` / ``...+02:00``) must carry an offset and lie in [1970-01-01, 2100-01-01) UTC
  after the offset is applied. Python's ``datetime`` ends at year 9999 and overflows when an offset pushes
  a value across that edge; PostgreSQL's ``timestamptz`` and date arithmetic do the same at their own
  edges. A range far inside both keeps every later computation (± a day, ± 14 hours of offset, week
  starts) valid.
- **Local dates** lie in [1970-01-01, 2099-12-31].
- **Text** must not contain NUL (PostgreSQL's ``text`` refuses it) nor lone UTF-16 surrogates (they
  cannot be encoded as UTF-8, so they cannot be stored or sent back).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainSerializer

MIN_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive
MIN_LOCAL_DATE = date(1970, 1, 1)
MAX_LOCAL_DATE = date(2099, 12, 31)

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class OutOfRange(ValueError):
    """A value the system cannot keep; the message says what the range is."""


def check_instant(value: datetime) -> datetime:
    """``value`` in UTC, or :class:`OutOfRange` (naive, or outside the supported range)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise OutOfRange("must carry a UTC offset (e.g. 2026-03-03T06:10:04Z)")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise OutOfRange(_instant_range()) from None
    if not MIN_INSTANT <= utc < MAX_INSTANT:
        raise OutOfRange(_instant_range())
    return utc


def check_local_date(value: date) -> date:
    if not MIN_LOCAL_DATE <= value <= MAX_LOCAL_DATE:
        raise OutOfRange(f"must be between {MIN_LOCAL_DATE} and {MAX_LOCAL_DATE}")
    return value


def check_text(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise OutOfRange("contains a character that cannot be stored (NUL or an unpaired surrogate)")
    return value


def is_storable_text(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


def check_time_of_day(value: time) -> time:
    """A wall-clock time of day, without an offset: it is read in the owner's time zone."""
    if value.tzinfo is not None:
        raise OutOfRange("must be a local time without an offset (e.g. 07:30)")
    return value


def _instant_range() -> str:
    return f"must lie between {MIN_INSTANT:%Y-%m-%d} and {MAX_INSTANT:%Y-%m-%d} (UTC, after the offset)"


def _time_of_day_schema(schema: dict[str, Any]) -> None:
    """Replace pydantic's ``format: time``, which JSON Schema defines as a time *with* an offset."""
    schema.pop("format", None)
    schema["type"] = "string"
    schema["pattern"] = TIME_OF_DAY_PATTERN


def _format_time(value: time) -> str:
    return value.strftime("%H:%M:%S") if value.microsecond == 0 else value.isoformat()


Instant = Annotated[datetime, AfterValidator(check_instant)]
"""An aware datetime inside the supported range, normalised to UTC."""

LocalDay = Annotated[date, AfterValidator(check_local_date)]
"""A calendar date inside the supported range."""

SafeText = Annotated[str, AfterValidator(check_text)]
"""Text PostgreSQL can store and JSON can carry back."""

TIME_OF_DAY_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"

TimeOfDay = Annotated[
    time,
    AfterValidator(check_time_of_day),
    PlainSerializer(_format_time, return_type=str, when_used="json"),
    Field(json_schema_extra=lambda schema: _time_of_day_schema(schema), examples=["07:30", "21:45:00"]),
]
"""A local time of day, ``HH:MM[:SS]`` without an offset; always sent back as ``HH:MM:SS``."""
