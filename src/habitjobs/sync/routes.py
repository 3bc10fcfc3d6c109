"""HTTP routes of offline sync: push a batch, follow it, pull changes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from habitjobs.accounts.auth import TokenClaims, read_token
from habitjobs.api.deps import CurrentUser, ResourcesDep
from habitjobs.api.ratelimit import SYNC, limiter, rate_limit
from habitjobs.errors import PayloadTooLarge, Unauthorized
from habitjobs.resources import Resources
from habitjobs.sync import service
from habitjobs.sync.intake import Intake
from habitjobs.sync.schemas import BatchOut, PullOut, PushIn

router = APIRouter(prefix="/v1/sync", tags=["sync"])
_bearer = HTTPBearer(auto_error=False, description="`habitjobs token --email you@example.com` prints one")


class _PushGate:
    """What every push needs, made once per app: the upload intake, and the tokens verified lately.

    The push is the hottest write, so it skips what the other routes do per request: the user is not
    read from the database (the batch row references it, so a token outliving its user fails there with
    401), and a token's signature is checked once, not on every push (its expiry still is).
    """

    _MAX_TOKENS = 10_000

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.intake = Intake(resources.db, resources.outbox)
        self._verified: dict[str, TokenClaims] = {}

    def user(self, token: str) -> uuid.UUID:
        claims = self._verified.get(token)
        if claims is None:
            claims = read_token(self.resources.settings, token)
            if len(self._verified) >= self._MAX_TOKENS:
                self._verified.clear()
            self._verified[token] = claims
        if claims.expires_at <= self.resources.clock.now():
            del self._verified[token]
            raise Unauthorized("the token has expired")
        return claims.user_id


async def _pushing(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> tuple[_PushGate, uuid.UUID]:
    """The push's one dependency (each dependency FastAPI solves costs the hottest route time)."""
    gate: _PushGate | None = getattr(request.app.state, "sync_push_gate", None)
    if gate is None:
        gate = request.app.state.sync_push_gate = _PushGate(request.app.state.resources)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    user_id = gate.user(credentials.credentials)
    await limiter(request).check(request, SYNC, user_id)
    # 413 for an upload over the sync size limit (tighter than the API-wide body limit).
    size, limit = len(await request.body()), gate.resources.settings.sync_max_batch_bytes
    if size > limit:
        raise PayloadTooLarge(f"the batch has {size} bytes; at most {limit}", max_bytes=limit)
    return gate, user_id


_PUSH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": BatchOut,
        "description": "this batch_id was pushed before: its current status, no new job",
    },
    409: {"description": "`reset_required`: unsupported schema_version; or a batch_id that cannot be used"},
    413: {"description": "more mutations or bytes than the configured limits"},
}


@router.post(
    "/push", status_code=status.HTTP_202_ACCEPTED, response_model=BatchOut, responses=_PUSH_RESPONSES
)
async def push(body: PushIn, pushing: Annotated[tuple[_PushGate, uuid.UUID], Depends(_pushing)]) -> Response:
    """Accept a batch of offline mutations; 202 once it and its merge job are durably stored."""
    gate, user_id = pushing
    batch, created = await gate.intake.store(service.prepare_push(gate.resources.settings, user_id, body))
    return Response(
        BatchOut.of(batch).model_dump_json(),
        status_code=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
        media_type="application/json",
    )


@router.get("/batches/{batch_id}", dependencies=[Depends(rate_limit)])
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
