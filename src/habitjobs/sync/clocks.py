"""Last-writer-wins clocks. Pure.

A write's clock is ``(client_updated_at, writer)``: the device's timestamp, then the id of the client that
wrote it as the tie-break. Clocks compare as tuples; a write applies when its clock is **at least** the
current one, so two writes of one client with the same timestamp resolve to the later one (a client's
mutations are always merged in their order), and different clients never tie.

Writer ids compare by code point, like Python strings; SQL that compares them must use ``COLLATE "C"``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from habitjobs import bounds

# The clock of one write (not a time source: that is habitjobs.clock.Clock).
WriteClock = tuple[datetime, str]

# Older than any real write: the clock of a field nobody has written yet.
ZERO: WriteClock = (datetime(1970, 1, 1, tzinfo=UTC), "")


def parse_timestamp(value: object) -> datetime | None:
    """An ISO 8601 timestamp with an offset (``...Z`` or ``...+02:00``), or None when it is not one.

    Naive timestamps are refused: a phone's local wall time without its offset is ambiguous. So are
    instants outside the supported range (:mod:`habitjobs.bounds`): they could not be stored or compared.
    """
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    try:
        return bounds.check_instant(parsed)
    except bounds.OutOfRange:
        return None


def timestamp_problem(value: object) -> str:
    """Why :func:`parse_timestamp` refused ``value``, in words for the client."""
    if isinstance(value, str) and 10 <= len(value) <= 40:
        try:
            bounds.check_instant(datetime.fromisoformat(value))
        except bounds.OutOfRange as exc:
            return f"client_updated_at {exc}"
        except ValueError:
            pass
    return "client_updated_at is not an ISO 8601 time with offset"


def clamp_limit(received_at: datetime, max_skew_s: float) -> datetime:
    """The latest client timestamp accepted for an upload received at ``received_at``.

    Tied to the upload's arrival rather than to the merge's own clock, so merging the same upload twice,
    or later, decides the same way.
    """
    return received_at + timedelta(seconds=max_skew_s)


def clamp(timestamp: datetime, limit: datetime) -> datetime:
    """A device whose clock runs fast must not win every later conflict: cap its timestamps."""
    return min(timestamp, limit)


def encode(clock: WriteClock) -> list[str]:
    """JSON form of a clock, as stored in ``field_clocks``."""
    return [clock[0].isoformat(), clock[1]]


def decode(raw: Any) -> WriteClock | None:
    """The inverse of :func:`encode`; None for anything malformed (treated as never written)."""
    if not isinstance(raw, list) or len(raw) != 2 or not isinstance(raw[1], str):
        return None
    timestamp = parse_timestamp(raw[0])
    return None if timestamp is None else (timestamp, raw[1])
