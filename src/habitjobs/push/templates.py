"""Notification kinds and their texts, per locale. Pure: no I/O.

A locale adds a dictionary to :data:`TEXTS` with every kind; lookups fall back from ``pt-BR`` to ``pt``
to English. Placeholders are ``{name}`` fields; every kind declares the ones it needs, so a missing value is
an error where the notification is created, not a broken text on a phone.
"""

from __future__ import annotations

import enum
import functools
import string
from dataclasses import dataclass


class Kind(enum.StrEnum):
    MORNING_ROUTINE = "morning_routine"
    EVENING_ROUTINE = "evening_routine"
    HABIT_REMINDER = "habit_reminder"
    STREAK_AT_RISK = "streak_at_risk"
    STREAK_MILESTONE = "streak_milestone"
    TEST = "test"


@dataclass(frozen=True)
class Text:
    title: str
    body: str


DEFAULT_LOCALE = "en"

TEXTS: dict[str, dict[Kind, Text]] = {
    "en": {
        Kind.MORNING_ROUTINE: Text(
            "Good morning", "Time for {routine_name}. Start your day one habit at a time."
        ),
        Kind.EVENING_ROUTINE: Text("Evening routine", "Wind down with {routine_name}."),
        Kind.HABIT_REMINDER: Text("{habit_name}", "A small step today keeps the habit going."),
        Kind.STREAK_AT_RISK: Text(
            "Keep your streak alive",
            "Your {streak_days}-day streak on {habit_name} ends at midnight. There is still time.",
        ),
        Kind.STREAK_MILESTONE: Text(
            "{streak_days} days in a row", "You kept {habit_name} going for {streak_days} days. Well done!"
        ),
        Kind.TEST: Text("Test notification", "Push notifications reach this device."),
    },
}


@functools.cache
def fields_of(kind: Kind) -> frozenset[str]:
    """The placeholders ``kind`` needs (the same in every locale)."""
    text = TEXTS[DEFAULT_LOCALE][kind]
    names: set[str] = set()
    for template in (text.title, text.body):
        names.update(name for _, name, _, _ in string.Formatter().parse(template) if name)
    return frozenset(names)


def resolve_locale(locale: str | None) -> str:
    """The best locale we ship for ``locale`` (exact, then its language, then English)."""
    if locale:
        if locale in TEXTS:
            return locale
        language = locale.split("-", 1)[0].split("_", 1)[0].lower()
        if language in TEXTS:
            return language
    return DEFAULT_LOCALE


class MissingField(ValueError):
    pass


def render(kind: Kind, params: dict[str, str], locale: str | None = None) -> Text:
    """The title and body of ``kind`` in ``locale``, with ``params`` filled in."""
    missing = fields_of(kind) - params.keys()
    if missing:
        raise MissingField(f"notification {kind.value!r} needs {', '.join(sorted(missing))}")
    text = TEXTS[resolve_locale(locale)].get(kind) or TEXTS[DEFAULT_LOCALE][kind]
    return Text(text.title.format(**params), text.body.format(**params))
