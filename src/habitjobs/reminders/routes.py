"""HTTP routes: the current user's reminders."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from habitjobs.api.deps import CurrentUser, ResourcesDep
from habitjobs.api.openapi import error_responses
from habitjobs.reminders import service
from habitjobs.reminders.schemas import ReminderIn, ReminderOut, ReminderPatch

router = APIRouter(prefix="/v1", tags=["reminders"])


@router.get("/reminders")
async def list_reminders(user_id: CurrentUser, resources: ResourcesDep) -> list[ReminderOut]:
    async with resources.db.transaction() as session:
        rows = await service.list_reminders(session, user_id)
        return [ReminderOut.model_validate(r, from_attributes=True) for r in rows]


@router.post("/reminders", status_code=status.HTTP_201_CREATED, responses=error_responses(404, 409, 413))
async def create_reminder(body: ReminderIn, user_id: CurrentUser, resources: ResourcesDep) -> ReminderOut:
    async with resources.db.transaction() as session:
        reminder = await service.create_reminder(
            session, resources.clock, user_id, body, max_reminders=resources.settings.max_reminders_per_user
        )
        return ReminderOut.model_validate(reminder, from_attributes=True)


@router.get("/reminders/{reminder_id}", responses=error_responses(404))
async def get_reminder(reminder_id: uuid.UUID, user_id: CurrentUser, resources: ResourcesDep) -> ReminderOut:
    async with resources.db.transaction() as session:
        reminder = await service.get_reminder(session, user_id, reminder_id)
        return ReminderOut.model_validate(reminder, from_attributes=True)


@router.patch("/reminders/{reminder_id}", responses=error_responses(404, 409, 413))
async def patch_reminder(
    reminder_id: uuid.UUID, body: ReminderPatch, user_id: CurrentUser, resources: ResourcesDep
) -> ReminderOut:
    async with resources.db.transaction() as session:
        reminder = await service.patch_reminder(session, resources.clock, user_id, reminder_id, body)
        return ReminderOut.model_validate(reminder, from_attributes=True)


@router.delete(
    "/reminders/{reminder_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404)
)
async def delete_reminder(reminder_id: uuid.UUID, user_id: CurrentUser, resources: ResourcesDep) -> Response:
    async with resources.db.transaction() as session:
        await service.delete_reminder(session, resources.clock, user_id, reminder_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
