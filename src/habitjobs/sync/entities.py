"""What can be synced: one :class:`EntitySpec` per entity, gathered in :data:`ENTITIES`.

Adding an entity (reminders, say) is one entry here: its table, its data model, how it merges
("record" or "settings", see :mod:`habitjobs.sync.lww`), its references, and the dirty marks its changes
leave. The merge, the pull and the protocol read everything else from the spec.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Table

from habitjobs.accounts.schemas import Timezone
from habitjobs.bounds import Instant, LocalDay, SafeText, TimeOfDay
from habitjobs.db.base import Base
from habitjobs.habits.models import FocusSession, Habit, HabitCompletion, Routine
from habitjobs.reminders.models import Reminder
from habitjobs.reminders.schemas import Kind as ReminderKind
from habitjobs.weekdays import ALL_DAYS_MASK

MergeKind = Literal["record", "settings"]
OpKind = Literal["upsert", "patch", "delete"]

# A change that affects a habit's whole history (its due days, its deletion) dirties its streak from here.
FROM_THE_START = date(1970, 1, 1)
_MAX_SECONDS = 7 * 24 * 3600

Name = Annotated[SafeText, Field(min_length=1, max_length=200)]
DaysMask = Annotated[int, Field(ge=0, le=ALL_DAYS_MASK)]
Position = Annotated[int, Field(ge=0, le=10_000)]
Seconds = Annotated[int, Field(ge=0, le=_MAX_SECONDS)]
Amount = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
RoutineKind = Literal["morning", "evening", "break", "custom"]
HabitKind = Literal["check", "duration", "quantity"]


class Data(BaseModel):
    """Entity data refuses unknown fields: a typo is a rejected mutation, not a silently dropped value."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- data models: "upsert" carries the full state, "patch" only the fields it changes -----------------


class RoutineData(Data):
    kind: RoutineKind
    name: Name
    start_local_time: TimeOfDay | None = None
    days_mask: DaysMask = ALL_DAYS_MASK
    position: Position = 0


class RoutinePatchData(Data):
    kind: RoutineKind | None = None
    name: Name | None = None
    start_local_time: TimeOfDay | None = None
    days_mask: DaysMask | None = None
    position: Position | None = None


class HabitData(Data):
    name: Name
    kind: HabitKind = "check"
    routine_id: uuid.UUID | None = None
    duration_seconds: Annotated[int, Field(ge=1, le=24 * 3600)] | None = None
    target_value: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)] | None = None
    days_mask: DaysMask = ALL_DAYS_MASK
    position: Position = 0
    created_local_date: LocalDay | None = None
    archived_at: Instant | None = None

    @model_validator(mode="after")
    def _kind_needs(self) -> HabitData:
        if self.kind == "duration" and self.duration_seconds is None:
            raise ValueError("a duration habit needs duration_seconds")
        if self.kind == "quantity" and self.target_value is None:
            raise ValueError("a quantity habit needs target_value")
        return self


class HabitPatchData(Data):
    name: Name | None = None
    kind: HabitKind | None = None
    routine_id: uuid.UUID | None = None
    duration_seconds: Annotated[int, Field(ge=1, le=24 * 3600)] | None = None
    target_value: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)] | None = None
    days_mask: DaysMask | None = None
    position: Position | None = None
    created_local_date: LocalDay | None = None
    archived_at: Instant | None = None


class CompletionData(Data):
    habit_id: uuid.UUID
    local_date: LocalDay
    status: Literal["done", "skipped"] = "done"
    value: Amount | None = None
    duration_seconds: Seconds | None = None
    completed_at: Instant | None = None
    tz: Timezone | None = None


class FocusSessionData(Data):
    started_at: Instant
    ended_at: Instant | None = None
    focus_seconds: Seconds = 0
    status: Literal["completed", "aborted"] = "completed"
    local_date: LocalDay

    @model_validator(mode="after")
    def _ends_after_start(self) -> FocusSessionData:
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self


class ReminderData(Data):
    """A reminder's full state. ``next_fire_at`` is the server's: recomputed after every merge."""

    kind: ReminderKind
    habit_id: uuid.UUID | None = None
    routine_id: uuid.UUID | None = None
    local_time: TimeOfDay
    days_mask: DaysMask = ALL_DAYS_MASK
    # An IANA zone, or null to follow the user's zone.
    timezone: Timezone | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> ReminderData:
        if self.kind == "habit" and self.habit_id is None:
            raise ValueError("a habit reminder needs habit_id")
        if self.local_time.tzinfo is not None:
            raise ValueError("local_time is a wall-clock time without offset (the zone is separate)")
        return self


_VERSION_MASK = ~(0xF000 << 64) & ~(0xC000 << 48)
_VERSION_5 = (5 << 76) | (0x8000 << 48)


def completion_id(habit_id: uuid.UUID, local_date: date) -> uuid.UUID:
    """The id of a habit's completion on a day: two offline devices checking it make the same row.

    ``uuid5(habit_id, local_date.isoformat())``, which clients compute the same way.
    """
    return uuid.UUID(int=_completion_id_int(habit_id, local_date))


def _completion_id_int(habit_id: uuid.UUID, local_date: date) -> int:
    # The merge checks one per uploaded completion: as an integer, without building a UUID object.
    digest = hashlib.sha1(habit_id.bytes + local_date.isoformat().encode(), usedforsecurity=False).digest()
    return (int.from_bytes(digest[:16]) & _VERSION_MASK) | _VERSION_5


# --- dirty marks ----------------------------------------------------------------------------------


@dataclass
class DirtyMarks:
    """Days whose statistics and habits whose streaks a merge invalidated."""

    days: set[date] = field(default_factory=set)
    streaks: dict[uuid.UUID, date] = field(default_factory=dict)

    def day(self, value: date | None) -> None:
        if value is not None:
            self.days.add(value)

    def streak(self, habit_id: uuid.UUID, from_date: date) -> None:
        current = self.streaks.get(habit_id)
        self.streaks[habit_id] = from_date if current is None else min(current, from_date)

    def merge(self, other: DirtyMarks) -> None:
        self.days |= other.days
        for habit_id, from_date in other.streaks.items():
            self.streak(habit_id, from_date)

    def __bool__(self) -> bool:
        return bool(self.days or self.streaks)


Row = Mapping[str, Any]
Marker = Callable[[DirtyMarks, Row, Row | None], None]


def _completion_marks(marks: DirtyMarks, after: Row, before: Row | None) -> None:
    marks.day(after["local_date"])
    marks.streak(after["habit_id"], after["local_date"])


def _focus_marks(marks: DirtyMarks, after: Row, before: Row | None) -> None:
    marks.day(after["local_date"])
    if before is not None:
        marks.day(before["local_date"])


_HABIT_HISTORY = ("days_mask", "archived_at", "deleted_at")


def _habit_marks(marks: DirtyMarks, after: Row, before: Row | None) -> None:
    # A new habit has no history yet; a renamed one keeps it.
    if before is not None and any(after[k] != before[k] for k in _HABIT_HISTORY):
        marks.streak(after["id"], after["created_local_date"] or FROM_THE_START)


def _no_marks(marks: DirtyMarks, after: Row, before: Row | None) -> None:
    return None


# --- the specs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parent:
    """A reference that must point at one of the user's own live rows (else the mutation is rejected)."""

    column: str
    entity: str
    missing_code: str
    deleted_code: str


@dataclass(frozen=True)
class Reference:
    """A reference that may point at a row not uploaded yet, but never at another user's row."""

    column: str
    entity: str
    code: str


@dataclass(frozen=True)
class Cascade:
    """Deleting a row of this entity tombstones the child entity's rows that point at it."""

    entity: str
    column: str


@dataclass(frozen=True)
class EntitySpec:
    name: str
    model: type[Base]
    merge: MergeKind
    data: type[Data]
    patch: type[Data] | None = None
    # Fields a patch may not set to null.
    not_null: frozenset[str] = frozenset()
    # The id an upsert must carry when the id derives from the data (as the UUID's 128-bit integer).
    derived_id: Callable[[Data], int] | None = None
    parent: Parent | None = None
    references: tuple[Reference, ...] = ()
    cascade: Cascade | None = None
    marks: Marker = _no_marks

    @property
    def table(self) -> Table:
        table: Table = self.model.__table__  # type: ignore[assignment]
        return table

    @functools.cached_property
    def fields(self) -> tuple[str, ...]:
        """The columns the data model writes."""
        return tuple(self.data.model_fields)

    @functools.cached_property
    def ops(self) -> frozenset[OpKind]:
        return frozenset({"upsert", "patch", "delete"} if self.patch else {"upsert", "delete"})

    @functools.cached_property
    def columns(self) -> tuple[str, ...]:
        """Every column a merge writes, in table order."""
        meta = {"id", "user_id", "client_updated_at", "device_id", "server_version", "deleted_at"}
        if self.merge == "settings":
            meta.add("field_clocks")
        wanted = meta | set(self.fields)
        return tuple(c.name for c in self.table.columns if c.name in wanted)


def _completion_id(data: Data) -> int:
    assert isinstance(data, CompletionData)
    return _completion_id_int(data.habit_id, data.local_date)


ENTITIES: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in (
        EntitySpec(
            "routine",
            Routine,
            "settings",
            RoutineData,
            RoutinePatchData,
            not_null=frozenset({"kind", "name", "days_mask", "position"}),
        ),
        EntitySpec(
            "habit",
            Habit,
            "settings",
            HabitData,
            HabitPatchData,
            not_null=frozenset({"name", "kind", "days_mask", "position"}),
            references=(Reference("routine_id", "routine", "unknown_routine"),),
            cascade=Cascade("habit_completion", "habit_id"),
            marks=_habit_marks,
        ),
        EntitySpec(
            "habit_completion",
            HabitCompletion,
            "record",
            CompletionData,
            derived_id=_completion_id,
            parent=Parent("habit_id", "habit", "unknown_habit", "habit_deleted"),
            marks=_completion_marks,
        ),
        EntitySpec("focus_session", FocusSession, "record", FocusSessionData, marks=_focus_marks),
        EntitySpec(
            "reminder",
            Reminder,
            "record",
            ReminderData,
            references=(
                Reference("habit_id", "habit", "unknown_habit"),
                Reference("routine_id", "routine", "unknown_routine"),
            ),
        ),
    )
}
"""In merge order: an entity's references come before it, so a habit created in the same upload as its
completions is there when they are checked. The position is also the entity's rank in pull pages."""
