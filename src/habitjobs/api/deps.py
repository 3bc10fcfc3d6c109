"""Dependencies shared by every router: resources, the current user, the admin check."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import text

from habitjobs.accounts.auth import read_token
from habitjobs.errors import Forbidden, Unauthorized
from habitjobs.resources import Resources

_bearer = HTTPBearer(auto_error=False, description="`habitjobs token --email you@example.com` prints one")


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    is_admin: bool


async def current_principal(
    resources: ResourcesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    claims = read_token(resources.settings, credentials.credentials)
    async with resources.db.engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT is_admin FROM users WHERE id = :id"), {"id": claims.user_id})
        ).first()
    if row is None:
        raise Unauthorized("the token's user no longer exists")
    return Principal(user_id=claims.user_id, is_admin=bool(row[0]))


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def current_user_id(principal: CurrentPrincipal) -> uuid.UUID:
    return principal.user_id


CurrentUser = Annotated[uuid.UUID, Depends(current_user_id)]


async def require_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this needs an administrator")
    return principal


AdminUser = Annotated[Principal, Depends(require_admin)]
