"""The supported ranges: accepted at every edge, refused just past it, whatever the offset."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from pydantic import BaseModel, ValidationError

from habitjobs import bounds
from habitjobs.bounds import Instant, LocalDay, SafeText, TimeOfDay


class Model(BaseModel):
    at: Instant | None = None
    day: LocalDay | None = None
    text: SafeText | None = None
    clock: TimeOfDay | None = None


@pytest.mark.parametrize("hours", [-14, -1, 0, 5.75, 14])
def test_instants_inside_the_range_are_kept_in_utc(hours: float) -> None:
    zone = timezone(timedelta(hours=hours))
    first = bounds.MIN_INSTANT.astimezone(zone)
    last = (bounds.MAX_INSTANT - timedelta(microseconds=1)).astimezone(zone)
    assert Model(at=first.isoformat()).at == bounds.MIN_INSTANT
    assert Model(at=last.isoformat()).at == bounds.MAX_INSTANT - timedelta(microseconds=1)


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+14:00",  # overflows when the offset is applied
        "9999-12-31T23:59:59-14:00",
        "1969-12-31T23:59:59.999999Z",
        "2100-01-01T00:00:00Z",
        "2099-12-31T23:00:00-01:00",
        "2026-03-03T06:10:04",  # no offset
    ],
)
def test_instants_outside_the_range_are_refused(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        Model(at=value)
    assert info.value.errors()[0]["loc"] == ("at",)


def test_local_dates_have_inclusive_edges() -> None:
    assert Model(day=bounds.MIN_LOCAL_DATE).day == date(1970, 1, 1)
    assert Model(day=bounds.MAX_LOCAL_DATE).day == date(2099, 12, 31)
    for bad in (date(1969, 12, 31), date(2100, 1, 1), date(1, 1, 1), date(9999, 12, 31)):
        with pytest.raises(ValidationError):
            Model(day=bad)


@pytest.mark.parametrize("value", ["a\x00b", "\x00", "x\ud800y", "\udfff"])
def test_text_postgresql_cannot_store_is_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        Model(text=value)
    assert not bounds.is_storable_text(value)


def test_ordinary_text_passes_untouched() -> None:
    value = "Morgenlauf 🏃 \t\n ünïcødé"
    assert Model(text=value).text == value


def test_time_of_day_has_no_offset_and_is_sent_back_as_hh_mm_ss() -> None:
    assert Model(clock="07:30").clock == time(7, 30)
    assert Model(clock="07:30").model_dump(mode="json")["clock"] == "07:30:00"
    for bad in ("07:00:00Z", "07:00+02:00", "24:00", "7:30"):
        with pytest.raises(ValidationError):
            Model(clock=bad)


def test_time_of_day_schema_is_a_pattern_not_format_time() -> None:
    for mode in ("validation", "serialization"):
        schema = Model.model_json_schema(mode=mode)
        clock = next(s for s in schema["properties"]["clock"]["anyOf"] if s.get("type") == "string")
        assert "format" not in clock
        assert clock["pattern"] == bounds.TIME_OF_DAY_PATTERN


def test_an_instant_at_utc_is_unchanged() -> None:
    value = datetime(2026, 3, 3, 6, 10, 4, tzinfo=UTC)
    assert Model(at=value).at == value
