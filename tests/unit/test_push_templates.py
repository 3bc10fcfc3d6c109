"""Notification kinds, their texts and locales, and the Notification model other domains build."""

import string
import uuid

import pytest
from pydantic import ValidationError

from habitjobs.push.schemas import Notification
from habitjobs.push.templates import TEXTS, Kind, MissingField, fields_of, render, resolve_locale

HABIT = uuid.UUID("00000000-0000-0000-0000-0000000000aa")


def test_every_shipped_locale_has_every_kind_with_the_same_placeholders() -> None:
    for locale, texts in TEXTS.items():
        assert set(texts) == set(Kind), locale
        for kind, text in texts.items():
            names = {n for t in (text.title, text.body) for n in _fields(t)}
            assert names == fields_of(kind), (locale, kind)


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize(
    ("notification", "title", "body_part"),
    [
        (Notification.morning_routine(HABIT, "Sunrise"), "Good morning", "Time for Sunrise"),
        (Notification.evening_routine(HABIT, "Wind down"), "Evening routine", "Wind down with Wind down"),
        (Notification.habit_reminder(HABIT, "Read 10 pages"), "Read 10 pages", "small step"),
        (
            Notification.streak_at_risk(HABIT, "Stretch", 12),
            "Keep your streak alive",
            "12-day streak on Stretch",
        ),
        (
            Notification.streak_milestone(HABIT, "Meditate", 30),
            "30 days in a row",
            "Meditate going for 30 days",
        ),
        (Notification.test(), "Test notification", "reach this device"),
    ],
)
def test_each_kind_renders_in_english(notification: Notification, title: str, body_part: str) -> None:
    text = render(notification.kind, notification.params, "en")
    assert text.title == title
    assert body_part in text.body


def test_kinds_carry_ids_for_deep_links_as_strings() -> None:
    assert Notification.habit_reminder(HABIT, "Read").data == {"habit_id": str(HABIT)}
    assert Notification.streak_at_risk(HABIT, "Read", 3).params["streak_days"] == "3"


@pytest.mark.parametrize(
    ("asked", "resolved"),
    [("en", "en"), ("en-GB", "en"), ("pt_BR", "en"), ("de", "en"), (None, "en"), ("", "en")],
)
def test_locales_fall_back_to_the_language_then_english(asked: str | None, resolved: str) -> None:
    assert resolve_locale(asked) == resolved


def test_a_locale_resolves_to_its_language_when_that_is_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TEXTS, "de", dict(TEXTS["en"]))
    assert resolve_locale("de-AT") == "de"


def test_missing_parameters_are_refused_where_the_notification_is_made() -> None:
    with pytest.raises(ValidationError, match="habit_name"):
        Notification(kind=Kind.HABIT_REMINDER)
    with pytest.raises(MissingField, match="streak_days"):
        render(Kind.STREAK_AT_RISK, {"habit_name": "x"})


def test_data_values_must_be_strings_and_few() -> None:
    with pytest.raises(ValidationError):
        Notification(kind=Kind.TEST, data={"n": 3})
    with pytest.raises(ValidationError):
        Notification(kind=Kind.TEST, data={str(i): "x" for i in range(11)})
