"""The weekday rule, written once: a ``days_mask`` has bit 0 for Monday … bit 6 for Sunday. Pure.

Habits, routines and reminders carry such a mask; the reminders' schedule and the analytics' due days
both ask :func:`on_weekday`.
"""

from __future__ import annotations

from datetime import date

ALL_DAYS_MASK = 0b1111111  # bit 0 = Monday … bit 6 = Sunday


def weekday_bit(day: date) -> int:
    """The ``days_mask`` bit of ``day``."""
    return 1 << day.weekday()


def on_weekday(days_mask: int, day: date) -> bool:
    """Whether ``day``'s weekday is in ``days_mask``."""
    return bool(days_mask & weekday_bit(day))
