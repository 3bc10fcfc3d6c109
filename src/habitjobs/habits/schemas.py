"""API bodies for routines and habits."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from habitjobs.bounds import LocalDay, SafeText, TimeOfDay
from habitjobs.weekdays import ALL_DAYS_MASK

Name = Annotated[SafeText, Field(min_length=1, max_length=200)]
DaysMask = Annotated[int, Field(ge=0, le=ALL_DAYS_MASK, description="bit 0 = Monday … bit 6 = Sunday")]
Position = Annotated[int, Field(ge=0, le=10_000)]
RoutineKind = Literal["morning", "evening", "break", "custom"]
HabitKind = Literal["check", "duration", "quantity"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoutineIn(Body):
    id: uuid.UUID | None = Field(default=None, description="chosen by the app; generated when absent")
    kind: RoutineKind
    name: Name
    start_local_time: TimeOfDay | None = None
    days_mask: DaysMask = ALL_DAYS_MASK
    position: Position = 0


class RoutinePatch(Body):
    kind: RoutineKind | None = None
    name: Name | None = None
    start_local_time: TimeOfDay | None = None
    days_mask: DaysMask | None = None
    position: Position | None = None


class RoutineOut(BaseModel):
    id: uuid.UUID
    kind: RoutineKind
    name: str
    start_local_time: TimeOfDay | None
    days_mask: int
    position: int
    server_version: int
    client_updated_at: datetime


class HabitIn(Body):
    id: uuid.UUID | None = None
    routine_id: uuid.UUID | None = None
    name: Name
    kind: HabitKind = "check"
    duration_seconds: Annotated[int, Field(ge=1, le=24 * 3600)] | None = None
    target_value: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)] | None = None
    days_mask: DaysMask = ALL_DAYS_MASK
    position: Position = 0
    created_local_date: LocalDay | None = None


class HabitPatch(Body):
    routine_id: uuid.UUID | None = None
    name: Name | None = None
    kind: HabitKind | None = None
    duration_seconds: Annotated[int, Field(ge=1, le=24 * 3600)] | None = None
    target_value: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)] | None = None
    days_mask: DaysMask | None = None
    position: Position | None = None
    archived: bool | None = None


class HabitOut(BaseModel):
    id: uuid.UUID
    routine_id: uuid.UUID | None
    name: str
    kind: HabitKind
    duration_seconds: int | None
    target_value: Decimal | None
    days_mask: int
    position: int
    created_local_date: date | None
    archived_at: datetime | None
    server_version: int
    client_updated_at: datetime
