"""Use-cases for routines and habits through the API. Services never commit: the caller's scope does."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs import caps
from habitjobs.clock import Clock
from habitjobs.errors import Conflict, HabitjobsError, InvalidInput, NotFound
from habitjobs.habits import repository as repo
from habitjobs.habits.models import Habit, Routine
from habitjobs.habits.schemas import HabitIn, HabitPatch, RoutineIn, RoutinePatch
from habitjobs.reminders.models import Reminder
from habitjobs.sync.repository import bump_version

# Writes made through the API (not from a device's offline queue) carry this as their writer id, which
# is also the last-writer-wins tie-break: at the same instant a device's own write wins over it.
API_WRITER = ""

_NULLABLE = {"routine_id", "start_local_time", "duration_seconds", "target_value"}


def _patch_values(body: RoutinePatch | HabitPatch) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True)
    for key, value in values.items():
        if value is None and key not in _NULLABLE:
            raise InvalidInput(f"{key} may not be null", field=key)
    return values


async def stamp_api_write(session: AsyncSession, clock: Clock, user_id: uuid.UUID) -> dict[str, Any]:
    """The sync columns of a row written through the API: the user's next version, now, the API as writer."""
    version = await bump_version(session, user_id)
    return {"server_version": version, "client_updated_at": clock.now(), "device_id": API_WRITER}


async def id_taken(
    session: AsyncSession, model: type[Routine | Habit | Reminder], user_id: uuid.UUID, entity_id: uuid.UUID
) -> HabitjobsError:
    """The answer to a create whose client-chosen id is taken: 409 when the caller's own row has it; for
    another user's row, 404 — as for any id the caller cannot see — so nothing confirms that it exists."""
    what = model.__tablename__.removesuffix("s")
    if await repo.owner_of(session, model, entity_id) == user_id:
        return Conflict(f"a {what} with id {entity_id} already exists", field="id")
    return NotFound(f"{what} {entity_id} not found")


async def list_routines(session: AsyncSession, user_id: uuid.UUID) -> list[Routine]:
    return await repo.list_live(session, Routine, user_id)


async def get_routine(session: AsyncSession, user_id: uuid.UUID, routine_id: uuid.UUID) -> Routine:
    routine = await repo.get_live(session, Routine, user_id, routine_id)
    if routine is None:
        raise NotFound(f"routine {routine_id} not found")
    return routine


async def create_routine(
    session: AsyncSession, clock: Clock, user_id: uuid.UUID, body: RoutineIn, *, max_routines: int
) -> Routine:
    values = body.model_dump()
    values["id"] = body.id or uuid.uuid4()
    values.update(user_id=user_id, **await stamp_api_write(session, clock, user_id))
    # Counted under the version lock stamp_api_write took: concurrent creates are serialised.
    caps.ROUTINES.check(await repo.count_live(session, Routine, user_id), max_routines)
    routine = await repo.insert_new(session, Routine, values)
    if routine is None:
        raise await id_taken(session, Routine, user_id, values["id"])
    return routine


async def patch_routine(
    session: AsyncSession, clock: Clock, user_id: uuid.UUID, routine_id: uuid.UUID, body: RoutinePatch
) -> Routine:
    values = _patch_values(body)
    await get_routine(session, user_id, routine_id)
    values.update(await stamp_api_write(session, clock, user_id))
    routine = await repo.update_owned(session, Routine, user_id, routine_id, values)
    if routine is None:
        raise NotFound(f"routine {routine_id} not found")
    return routine


async def delete_routine(
    session: AsyncSession, clock: Clock, user_id: uuid.UUID, routine_id: uuid.UUID
) -> None:
    await get_routine(session, user_id, routine_id)
    values = await stamp_api_write(session, clock, user_id)
    values["deleted_at"] = values["client_updated_at"]
    if await repo.update_owned(session, Routine, user_id, routine_id, values) is None:
        raise NotFound(f"routine {routine_id} not found")


async def _check_routine_ref(session: AsyncSession, user_id: uuid.UUID, routine_id: uuid.UUID | None) -> None:
    if routine_id is not None and await repo.get_live(session, Routine, user_id, routine_id) is None:
        raise InvalidInput(f"routine {routine_id} does not exist", field="routine_id")


async def list_habits(session: AsyncSession, user_id: uuid.UUID) -> list[Habit]:
    return await repo.list_live(session, Habit, user_id)


async def get_habit(session: AsyncSession, user_id: uuid.UUID, habit_id: uuid.UUID) -> Habit:
    habit = await repo.get_live(session, Habit, user_id, habit_id)
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
    values.update(user_id=user_id, **await stamp_api_write(session, clock, user_id))
    # Counted under the version lock stamp_api_write took: concurrent creates are serialised.
    caps.HABITS.check(await repo.count_live(session, Habit, user_id), max_habits)
    habit = await repo.insert_new(session, Habit, values)
    if habit is None:
        raise await id_taken(session, Habit, user_id, values["id"])
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
    stamp = await stamp_api_write(session, clock, user_id)
    if "archived" in values:
        values["archived_at"] = stamp["client_updated_at"] if values.pop("archived") else None
    values.update(stamp)
    habit = await repo.update_owned(session, Habit, user_id, habit_id, values)
    if habit is None:
        raise NotFound(f"habit {habit_id} not found")
    return habit


async def delete_habit(session: AsyncSession, clock: Clock, user_id: uuid.UUID, habit_id: uuid.UUID) -> None:
    await get_habit(session, user_id, habit_id)
    values = await stamp_api_write(session, clock, user_id)
    values["deleted_at"] = values["client_updated_at"]
    if await repo.update_owned(session, Habit, user_id, habit_id, values) is None:
        raise NotFound(f"habit {habit_id} not found")
