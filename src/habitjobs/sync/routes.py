"""HTTP routes of offline sync: push a batch, follow it, pull changes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status

from habitjobs.api.deps import Credentials, CurrentUser, ResourcesDep, authenticate, token_user
from habitjobs.api.openapi import ErrorBody, error_responses
from habitjobs.api.ratelimit import SYNC, limiter, rate_limit
from habitjobs.errors import PayloadTooLarge
from habitjobs.sync import service
from habitjobs.sync.intake import Intake
from habitjobs.sync.schemas import BatchOut, PullOut, PushIn

router = APIRouter(prefix="/v1/sync", tags=["sync"])


async def _pushing(request: Request, credentials: Credentials) -> tuple[Intake, uuid.UUID]:
    """The push's one dependency (each dependency FastAPI solves costs the hottest route time): the
    caller and the upload intake (made once per app).

    A token of this server is verified here but its user is looked up by the intake, for a whole group
    of uploads in the transaction that stores them (gone or being deleted: 401 then); that spares every
    upload a transaction of its own. A provider's token signs in as on every route."""
    intake: Intake | None = getattr(request.app.state, "sync_intake", None)
    if intake is None:
        resources = request.app.state.resources
        intake = request.app.state.sync_intake = Intake(resources.db, resources.outbox)
    user_id = await token_user(request, credentials)
    if user_id is None:
        user_id = (await authenticate(request, credentials)).user_id
    await limiter(request).check(request, SYNC, user_id)
    # 413 for an upload over the sync size limit (tighter than the API-wide body limit).
    size, limit = len(await request.body()), request.app.state.resources.settings.sync_max_batch_bytes
    if size > limit:
        raise PayloadTooLarge(f"the batch has {size} bytes; at most {limit}", max_bytes=limit)
    return intake, user_id


_PUSH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": BatchOut,
        "description": "this batch_id was pushed before: its current status, no new job",
    },
    409: {
        "model": ErrorBody,
        "description": "`reset_required`: unsupported schema_version",
    },
    404: {"model": ErrorBody, "description": "another user's batch_id: answered as for an unknown id"},
    413: {"model": ErrorBody, "description": "more mutations or bytes than the configured limits"},
}


@router.post(
    "/push", status_code=status.HTTP_202_ACCEPTED, response_model=BatchOut, responses=_PUSH_RESPONSES
)
async def push(
    body: PushIn, request: Request, pushing: Annotated[tuple[Intake, uuid.UUID], Depends(_pushing)]
) -> Response:
    """Accept a batch of offline mutations; 202 once it and its merge job are durably stored."""
    intake, user_id = pushing
    settings = request.app.state.resources.settings
    batch, created = await intake.store(service.prepare_push(settings, user_id, body))
    return Response(
        BatchOut.of(batch).model_dump_json(),
        status_code=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
        media_type="application/json",
    )


@router.get("/batches/{batch_id}", dependencies=[Depends(rate_limit)], responses=error_responses(404))
async def get_batch(batch_id: uuid.UUID, user_id: CurrentUser, resources: ResourcesDep) -> BatchOut:
    """The merge outcome of one of the caller's batches."""
    async with resources.db.transaction() as session:
        return BatchOut.of(await service.get_batch(session, user_id, batch_id))


@router.get("/pull", dependencies=[Depends(rate_limit)])
async def pull(
    user_id: CurrentUser,
    resources: ResourcesDep,
    cursor: Annotated[
        str | None, Query(max_length=100, description="from the previous pull; omit at first")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> PullOut:
    """Rows changed since ``cursor`` (tombstones as ids), oldest first; repeat while ``has_more``."""
    async with resources.db.transaction() as session:
        return await service.pull(session, user_id, cursor, limit)
