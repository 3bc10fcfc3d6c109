"""API bodies for reminders."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from habitjobs.accounts.schemas import Timezone
from habitjobs.bounds import TimeOfDay
from habitjobs.weekdays import ALL_DAYS_MASK

Kind = Literal["morning_routine", "evening_routine", "habit", "streak_risk"]
DaysMask = Annotated[int, Field(ge=0, le=ALL_DAYS_MASK, description="bit 0 = Monday … bit 6 = Sunday")]
# When the streak-at-risk alert fires if the app does not choose.
DEFAULT_STREAK_ALERT_TIME = time(20, 0)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReminderIn(Body):
    id: uuid.UUID | None = None
    kind: Kind
    habit_id: uuid.UUID | None = None
    routine_id: uuid.UUID | None = None
    local_time: TimeOfDay | None = Field(
        default=None,
        validate_default=True,
        description="wall-clock time; required but for streak_risk, which defaults to 20:00",
    )
    days_mask: DaysMask = ALL_DAYS_MASK
    timezone: Timezone | None = Field(default=None, description="IANA zone; absent = follow the user's zone")
    enabled: bool = True

    @field_validator("local_time")
    @classmethod
    def _time_or_default(cls, value: time | None, info: ValidationInfo) -> time | None:
        # Here rather than in a model validator, so that the 422 names local_time.
        if value is None and info.data.get("kind") not in (None, "streak_risk"):
            raise ValueError("local_time is required")
        return value

    @model_validator(mode="after")
    def _complete(self) -> ReminderIn:
        if self.local_time is None:
            self.local_time = DEFAULT_STREAK_ALERT_TIME
        if self.local_time.tzinfo is not None:
            raise ValueError("local_time is a wall-clock time without offset (the zone is separate)")
        return self


class ReminderPatch(Body):
    local_time: TimeOfDay | None = None
    days_mask: DaysMask | None = None
    timezone: Timezone | None = None
    enabled: bool | None = None
    habit_id: uuid.UUID | None = None
    routine_id: uuid.UUID | None = None


class ReminderOut(BaseModel):
    id: uuid.UUID
    kind: Kind
    habit_id: uuid.UUID | None
    routine_id: uuid.UUID | None
    local_time: TimeOfDay
    days_mask: int
    timezone: str | None
    enabled: bool
    next_fire_at: datetime | None
    server_version: int
