"""Use-cases for routines and habits through the API. Services never commit: the caller's scope does."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs import caps, owned
from habitjobs.clock import Clock
from habitjobs.errors import InvalidInput, NotFound
from habitjobs.habits import repository as repo
from habitjobs.habits.models import Habit, Routine
from habitjobs.habits.schemas import HabitIn, HabitPatch, RoutineIn, RoutinePatch

_NULLABLE = {"routine_id", "start_local_time", "duration_seconds", "target_value"}


def _patch_values(body: RoutinePatch | HabitPatch) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True)
    for key, value in values.items():
        if value is None and key not in _NULLABLE:
            raise InvalidInput(f"{key} may not be null", field=key)
    return values


async def list_routines(session: AsyncSession, user_id: uuid.UUID) -> list[Routine]:
    return await repo.list_live(session, Routine, user_id)


async def get_routine(session: AsyncSession, user_id: uuid.UUID, routine_id: uuid.UUID) -> Routine:
    routine = await owned.get_live(session, Routine, user_id, routine_id)
    if routine is None:
        raise NotFound(f"routine {routine_id} not found")
    return routine


async def create_routine(
    session: AsyncSession, clock: Clock, user_id: uuid.UUID, body: RoutineIn, *, max_routines: int
) -> Routine:
    values = body.model_dump()
    values["id"] = body.id or uuid.uuid4()
    values.update(user_id=user_id, **await owned.stamp_api_write(session, clock, user_id))
    # Counted under the version lock stamp_api_write took: concurrent creates are serialised.
    caps.ROUTINES.check(await owned.count_live(session, Routine, user_id), max_routines)
    routine = await owned.insert_new(session, Routine, values)
    if routine is None:
        raise await owned.id_taken(session, Routine, user_id, values["id"])
    return routine


async def patch_routine(
    session: AsyncSession, clock: Clock, user_id: uuid.UUID, routine_id: uuid.UUID, body: RoutinePatch
) -> Routine:
    values = _patch_values(body)
    await get_routine(session, user_id, routine_id)
    values.update(await owned.stamp_api_write(session, clock, user_id))
    routine = await owned.update_owned(session, Routine, user_id, routine_id, values)
    if routine is None:
        raise NotFound(f"routine {routine_id} not found")
    return routine


async def delete_routine(
    session: AsyncSession, clock: Clock, user_id: uuid.UUID, routine_id: uuid.UUID
) -> None:
    await get_routine(session, user_id, routine_id)
    values = await owned.stamp_api_write(session, clock, user_id)
    values["deleted_at"] = values["client_updated_at"]
    if await owned.update_owned(session, Routine, user_id, routine_id, values) is None:
        raise NotFound(f"routine {routine_id} not found")


async def _check_routine_ref(session: AsyncSession, user_id: uuid.UUID, routine_id: uuid.UUID | None) -> None:
    if routine_id is not None and await owned.get_live(session, Routine, user_id, routine_id) is None:
        raise InvalidInput(f"routine {routine_id} does not exist", field="routine_id")


async def list_habits(session: AsyncSession, user_id: uuid.UUID) -> list[Habit]:
    return await repo.list_live(session, Habit, user_id)


async def get_habit(session: AsyncSession, user_id: uuid.UUID, habit_id: uuid.UUID) -> Habit:
    habit = await owned.get_live(session, Habit, user_id, habit_id)
    if habit is None:
        raise NotFound(f"habit {habit_id} not found")
    return habit


def _check_kind(kind: str, duration_seconds: int | None, target_value: object) -> None:
    if kind == "duration" and duration_seconds is None:
        raise InvalidInput("a duration habit needs duration_seconds", field="duration_seconds")
    if kind == "quantity" and target_value is None:
        raise InvalidInput("a quantity habit needs target_value", field="target_value")


async def create_habit(
    session: AsyncSession, clock: Clock, user_id: uuid.UUID, body: HabitIn, *, max_habits: int
) -> Habit:
    _check_kind(body.kind, body.duration_seconds, body.target_value)
    await _check_routine_ref(session, user_id, body.routine_id)
    values = body.model_dump()
    values["id"] = body.id or uuid.uuid4()
    values.update(user_id=user_id, **await owned.stamp_api_write(session, clock, user_id))
    # Counted under the version lock stamp_api_write took: concurrent creates are serialised.
    caps.HABITS.check(await owned.count_live(session, Habit, user_id), max_habits)
    habit = await owned.insert_new(session, Habit, values)
    if habit is None:
        raise await owned.id_taken(session, Habit, user_id, values["id"])
    return habit


async def patch_habit(
    session: AsyncSession, clock: Clock, user_id: uuid.UUID, habit_id: uuid.UUID, body: HabitPatch
) -> Habit:
    values = _patch_values(body)
    current = await get_habit(session, user_id, habit_id)
    if "routine_id" in values:
        await _check_routine_ref(session, user_id, values["routine_id"])
    _check_kind(
        values.get("kind", current.kind),
        values.get("duration_seconds", current.duration_seconds),
        values.get("target_value", current.target_value),
    )
    stamp = await owned.stamp_api_write(session, clock, user_id)
    if "archived" in values:
        values["archived_at"] = stamp["client_updated_at"] if values.pop("archived") else None
    values.update(stamp)
    habit = await owned.update_owned(session, Habit, user_id, habit_id, values)
    if habit is None:
        raise NotFound(f"habit {habit_id} not found")
    return habit


async def delete_habit(session: AsyncSession, clock: Clock, user_id: uuid.UUID, habit_id: uuid.UUID) -> None:
    await get_habit(session, user_id, habit_id)
    values = await owned.stamp_api_write(session, clock, user_id)
    values["deleted_at"] = values["client_updated_at"]
    if await owned.update_owned(session, Habit, user_id, habit_id, values) is None:
        raise NotFound(f"habit {habit_id} not found")
