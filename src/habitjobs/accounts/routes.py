"""HTTP routes: the current user, their sign-in identities, their devices, their data exports, the
deletion of their account."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from habitjobs.accounts import deletion, service, signin
from habitjobs.accounts.models import AccountDeletion, DataExport, Device, User
from habitjobs.accounts.schemas import (
    DeletionAccepted,
    DeletionOut,
    DeviceOut,
    DevicePut,
    ExportAccepted,
    ExportOut,
    IdentityLink,
    IdentityOut,
    MeOut,
    MePatch,
)
from habitjobs.api.deps import AccountOwner, AuthenticatorDep, CurrentUser, ResourcesDep
from habitjobs.api.openapi import ErrorBody, error_responses

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


@router.patch("/me", responses=error_responses(413))
async def patch_me(body: MePatch, user_id: CurrentUser, resources: ResourcesDep) -> MeOut:
    async with resources.db.transaction() as session:
        user = await service.patch_me(session, resources.clock, user_id, body)
        return _me(user)


@router.get("/devices")
async def list_devices(user_id: CurrentUser, resources: ResourcesDep) -> list[DeviceOut]:
    async with resources.db.transaction() as session:
        return [_device(d) for d in await service.list_devices(session, user_id)]


@router.put("/devices/{device_id}", responses=error_responses(404, 409, 413))
async def register_device(
    device_id: uuid.UUID, body: DevicePut, user_id: CurrentUser, resources: ResourcesDep
) -> DeviceOut:
    """Register this installation's push token (idempotent: the app calls it at every start)."""
    async with resources.db.transaction() as session:
        device = await service.register_device(
            session, user_id, device_id, body, max_devices=resources.settings.max_devices_per_user
        )
        return _device(device)


@router.delete("/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404))
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
    responses={
        **error_responses(404),
        410: {
            "model": ErrorBody,
            "description": "`export_expired`: the export expired and its document was deleted",
        },
    },
)
async def get_export(export_id: uuid.UUID, user_id: CurrentUser, resources: ResourcesDep) -> ExportOut:
    async with resources.db.transaction() as session:
        return _export(await service.get_export(session, user_id, export_id, resources.clock.now()))


@router.get("/me/identities")
async def list_identities(user_id: CurrentUser, resources: ResourcesDep) -> list[IdentityOut]:
    """The ways this account signs in: identity providers' subjects, and `local` for `habitjobs token`."""
    async with resources.db.transaction() as session:
        return [
            IdentityOut.model_validate(i, from_attributes=True)
            for i in await signin.list_identities(session, user_id)
        ]


@router.post(
    "/me/identities",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": IdentityOut, "description": "the identity was linked to this account already"},
        **error_responses(413),
        409: {
            "model": ErrorBody,
            "description": "the identity signs in another account (accounts are never merged)",
        },
    },
)
async def link_identity(
    body: IdentityLink,
    user_id: CurrentUser,
    resources: ResourcesDep,
    authenticator: AuthenticatorDep,
    response: Response,
) -> IdentityOut:
    """Let this account also sign in through another identity provider: send that provider's access
    token (verified like any token). Only this explicit link joins identities; equal e-mails never do."""
    token = await authenticator.verify_provider_token(body.token)
    async with resources.db.transaction() as session:
        identity, created = await signin.link_identity(session, user_id, token)
    if not created:
        response.status_code = status.HTTP_200_OK
    return IdentityOut.model_validate(identity, from_attributes=True)


@router.delete(
    "/me/identities/{identity_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404, 409),
)
async def unlink_identity(identity_id: uuid.UUID, user_id: CurrentUser, resources: ResourcesDep) -> Response:
    """Stop signing in through this identity (409 for the account's last one)."""
    async with resources.db.transaction() as session:
        await signin.unlink_identity(session, user_id, identity_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _deletion(found: AccountDeletion) -> DeletionOut:
    return DeletionOut.model_validate(found, from_attributes=True)


@router.delete("/me", status_code=status.HTTP_202_ACCEPTED, responses=error_responses(409))
async def delete_me(user_id: AccountOwner, resources: ResourcesDep) -> DeletionAccepted:
    """Delete this account and all its data. The account is locked at once (its tokens then reach only
    ``/v1/me/deletion``, its devices get no more pushes); a background job erases everything after the
    grace period (``HABITJOBS_ACCOUNT_DELETION_GRACE_S``), until which ``DELETE /v1/me/deletion`` cancels.
    Asking again returns the same deletion."""
    async with resources.db.transaction() as session:
        found = await deletion.request_deletion(
            session,
            resources.outbox,
            resources.clock,
            user_id,
            grace_s=resources.settings.account_deletion_grace_s,
        )
    return DeletionAccepted(
        deletion_id=found.id,
        job_id=found.job_id,
        status=found.status,
        not_before=found.not_before,
        status_url="/v1/me/deletion",
    )


@router.get("/me/deletion", responses=error_responses(404))
async def get_deletion(user_id: AccountOwner, resources: ResourcesDep) -> DeletionOut:
    """The account's latest deletion request (404 if there was none)."""
    async with resources.db.transaction() as session:
        return _deletion(await deletion.get_deletion(session, user_id))


@router.delete(
    "/me/deletion",
    responses={
        **error_responses(404),
        409: {"model": ErrorBody, "description": "the deletion has already started"},
    },
)
async def cancel_deletion(user_id: AccountOwner, resources: ResourcesDep) -> DeletionOut:
    """Cancel the pending deletion (during the grace period): the account and its devices work again."""
    async with resources.db.transaction() as session:
        return _deletion(await deletion.cancel_deletion(session, resources.clock, user_id))
