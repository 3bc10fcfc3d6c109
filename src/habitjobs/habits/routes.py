"""HTTP routes: routines and habits of the current user."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from habitjobs.api.deps import CurrentUser, ResourcesDep
from habitjobs.api.openapi import error_responses
from habitjobs.habits import service
from habitjobs.habits.schemas import HabitIn, HabitOut, HabitPatch, RoutineIn, RoutineOut, RoutinePatch

router = APIRouter(prefix="/v1", tags=["habits"])


@router.get("/routines")
async def list_routines(user_id: CurrentUser, resources: ResourcesDep) -> list[RoutineOut]:
    async with resources.db.transaction() as session:
        rows = await service.list_routines(session, user_id)
        return [RoutineOut.model_validate(r, from_attributes=True) for r in rows]


@router.post("/routines", status_code=status.HTTP_201_CREATED, responses=error_responses(404, 409, 413))
async def create_routine(body: RoutineIn, user_id: CurrentUser, resources: ResourcesDep) -> RoutineOut:
    async with resources.db.transaction() as session:
        routine = await service.create_routine(
            session, resources.clock, user_id, body, max_routines=resources.settings.max_routines_per_user
        )
        return RoutineOut.model_validate(routine, from_attributes=True)


@router.get("/routines/{routine_id}", responses=error_responses(404))
async def get_routine(routine_id: uuid.UUID, user_id: CurrentUser, resources: ResourcesDep) -> RoutineOut:
    async with resources.db.transaction() as session:
        routine = await service.get_routine(session, user_id, routine_id)
        return RoutineOut.model_validate(routine, from_attributes=True)


@router.patch("/routines/{routine_id}", responses=error_responses(404, 409, 413))
async def patch_routine(
    routine_id: uuid.UUID, body: RoutinePatch, user_id: CurrentUser, resources: ResourcesDep
) -> RoutineOut:
    async with resources.db.transaction() as session:
        routine = await service.patch_routine(session, resources.clock, user_id, routine_id, body)
        return RoutineOut.model_validate(routine, from_attributes=True)


@router.delete(
    "/routines/{routine_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404)
)
async def delete_routine(routine_id: uuid.UUID, user_id: CurrentUser, resources: ResourcesDep) -> Response:
    async with resources.db.transaction() as session:
        await service.delete_routine(session, resources.clock, user_id, routine_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/habits")
async def list_habits(user_id: CurrentUser, resources: ResourcesDep) -> list[HabitOut]:
    async with resources.db.transaction() as session:
        rows = await service.list_habits(session, user_id)
        return [HabitOut.model_validate(h, from_attributes=True) for h in rows]


@router.post("/habits", status_code=status.HTTP_201_CREATED, responses=error_responses(404, 409, 413))
async def create_habit(body: HabitIn, user_id: CurrentUser, resources: ResourcesDep) -> HabitOut:
    async with resources.db.transaction() as session:
        habit = await service.create_habit(
            session, resources.clock, user_id, body, max_habits=resources.settings.max_habits_per_user
        )
        return HabitOut.model_validate(habit, from_attributes=True)


@router.get("/habits/{habit_id}", responses=error_responses(404))
async def get_habit(habit_id: uuid.UUID, user_id: CurrentUser, resources: ResourcesDep) -> HabitOut:
    async with resources.db.transaction() as session:
        habit = await service.get_habit(session, user_id, habit_id)
        return HabitOut.model_validate(habit, from_attributes=True)


@router.patch("/habits/{habit_id}", responses=error_responses(404, 409, 413))
async def patch_habit(
    habit_id: uuid.UUID, body: HabitPatch, user_id: CurrentUser, resources: ResourcesDep
) -> HabitOut:
    async with resources.db.transaction() as session:
        habit = await service.patch_habit(session, resources.clock, user_id, habit_id, body)
        return HabitOut.model_validate(habit, from_attributes=True)


@router.delete("/habits/{habit_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404))
async def delete_habit(habit_id: uuid.UUID, user_id: CurrentUser, resources: ResourcesDep) -> Response:
    async with resources.db.transaction() as session:
        await service.delete_habit(session, resources.clock, user_id, habit_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
