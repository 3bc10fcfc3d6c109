"""Pydantic models of the push domain: a notification to create (other domains build these)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from habitjobs.push.templates import Kind, fields_of

# FCM accepts string values only in ``data``; keep the keys short and the values ids.
DataValue = Annotated[str, Field(max_length=200)]


class Notification(BaseModel):
    """What to tell a user, before it is rendered in their language.

    ``params`` fill the text's placeholders (see :mod:`habitjobs.push.templates`); ``data`` travels to the app
    unchanged (ids for deep links; strings only).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind
    params: dict[str, str] = Field(default_factory=dict)
    data: dict[str, DataValue] = Field(default_factory=dict, max_length=10)

    @model_validator(mode="after")
    def _complete(self) -> Notification:
        missing = fields_of(self.kind) - self.params.keys()
        if missing:
            raise ValueError(f"notification {self.kind.value!r} needs params {', '.join(sorted(missing))}")
        return self

    @classmethod
    def morning_routine(cls, routine_id: uuid.UUID, routine_name: str) -> Notification:
        return cls(
            kind=Kind.MORNING_ROUTINE,
            params={"routine_name": routine_name},
            data={"routine_id": str(routine_id)},
        )

    @classmethod
    def evening_routine(cls, routine_id: uuid.UUID, routine_name: str) -> Notification:
        return cls(
            kind=Kind.EVENING_ROUTINE,
            params={"routine_name": routine_name},
            data={"routine_id": str(routine_id)},
        )

    @classmethod
    def habit_reminder(cls, habit_id: uuid.UUID, habit_name: str) -> Notification:
        return cls(
            kind=Kind.HABIT_REMINDER, params={"habit_name": habit_name}, data={"habit_id": str(habit_id)}
        )

    @classmethod
    def streak_at_risk(cls, habit_id: uuid.UUID, habit_name: str, streak_days: int) -> Notification:
        return cls(
            kind=Kind.STREAK_AT_RISK,
            params={"habit_name": habit_name, "streak_days": str(streak_days)},
            data={"habit_id": str(habit_id)},
        )

    @classmethod
    def streak_milestone(cls, habit_id: uuid.UUID, habit_name: str, streak_days: int) -> Notification:
        return cls(
            kind=Kind.STREAK_MILESTONE,
            params={"habit_name": habit_name, "streak_days": str(streak_days)},
            data={"habit_id": str(habit_id)},
        )

    @classmethod
    def test(cls) -> Notification:
        return cls(kind=Kind.TEST)
