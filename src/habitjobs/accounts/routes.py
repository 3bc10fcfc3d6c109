"""HTTP routes: the current user, their devices, their data exports."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from habitjobs.accounts import service
from habitjobs.accounts.models import DataExport, Device, User
from habitjobs.accounts.schemas import DeviceOut, DevicePut, ExportAccepted, ExportOut, MeOut, MePatch
from habitjobs.api.deps import CurrentUser, ResourcesDep

router = APIRouter(prefix="/v1", tags=["accounts"])


def _me(user: User) -> MeOut:
    return MeOut.model_validate(user, from_attributes=True)


def _device(device: Device) -> DeviceOut:
    return DeviceOut(
        id=device.id,
        platform=device.platform,
        provider=device.provider,
        push_token_tail=device.push_token[-6:],
        apns_env=device.apns_env,
        app_version=device.app_version,
        push_enabled=device.push_enabled,
        registered_at=device.registered_at,
        invalidated_at=device.invalidated_at,
        invalid_reason=device.invalid_reason,
    )


def _export(export: DataExport) -> ExportOut:
    return ExportOut.model_validate(export, from_attributes=True)


@router.get("/me")
async def get_me(user_id: CurrentUser, resources: ResourcesDep) -> MeOut:
    async with resources.db.transaction() as session:
        return _me(await service.get_me(session, user_id))


@router.patch("/me")
async def patch_me(body: MePatch, user_id: CurrentUser, resources: ResourcesDep) -> MeOut:
    async with resources.db.transaction() as session:
        user = await service.patch_me(session, resources.clock, user_id, body)
        return _me(user)


@router.get("/devices")
async def list_devices(user_id: CurrentUser, resources: ResourcesDep) -> list[DeviceOut]:
    async with resources.db.transaction() as session:
        return [_device(d) for d in await service.list_devices(session, user_id)]


@router.put("/devices/{device_id}")
async def register_device(
    device_id: uuid.UUID, body: DevicePut, user_id: CurrentUser, resources: ResourcesDep
) -> DeviceOut:
    """Register this installation's push token (idempotent: the app calls it at every start)."""
    async with resources.db.transaction() as session:
        device = await service.register_device(
            session, user_id, device_id, body, max_devices=resources.settings.max_devices_per_user
        )
        return _device(device)


@router.delete("/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unregister_device(device_id: uuid.UUID, user_id: CurrentUser, resources: ResourcesDep) -> Response:
    async with resources.db.transaction() as session:
        await service.unregister_device(session, user_id, device_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/me/exports",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {
            "model": ExportAccepted,
            "description": "an export of this user is already queued or running: it",
        }
    },
)
async def request_export(user_id: CurrentUser, resources: ResourcesDep, response: Response) -> ExportAccepted:
    """Start assembling a copy of all the user's data (202); poll the job or the export. One runs at a
    time: while one is queued or running, the answer is that one (200, the same job id)."""
    async with resources.db.transaction() as session:
        export, created = await service.request_export(session, resources.outbox, user_id)
    if not created:
        response.status_code = status.HTTP_200_OK
    return ExportAccepted(
        export_id=export.id,
        job_id=export.job_id,
        status=export.status,
        status_url=f"/v1/jobs/{export.job_id}",
        export_url=f"/v1/me/exports/{export.id}",
    )


@router.get(
    "/me/exports/{export_id}",
    responses={410: {"description": "`export_expired`: the export expired and its document was deleted"}},
)
async def get_export(export_id: uuid.UUID, user_id: CurrentUser, resources: ResourcesDep) -> ExportOut:
    async with resources.db.transaction() as session:
        return _export(await service.get_export(session, user_id, export_id, resources.clock.now()))
