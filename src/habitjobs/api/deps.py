"""Dependencies shared by every router: resources, the current user, the admin check.

Every route that needs a user goes through :func:`authenticate`: the bearer token is verified (this
server's HS256 token or an identity provider's, see ``accounts.auth``), then the user is read in one
query — so a locked (being deleted) or deleted account is refused on its very next request.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from habitjobs.accounts import signin
from habitjobs.accounts.auth import Authenticator
from habitjobs.accounts.signin import Principal
from habitjobs.errors import Forbidden, Unauthorized
from habitjobs.observability import context as log_context
from habitjobs.resources import Resources

bearer = HTTPBearer(
    auto_error=False,
    description="an access token of a configured identity provider, or (where enabled) one that "
    "`habitjobs token --email you@example.com` prints",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


def get_authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


AuthenticatorDep = Annotated[Authenticator, Depends(get_authenticator)]


LOCKED_MESSAGE = signin.LOCKED_MESSAGE


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None, *, allow_locked: bool = False
) -> Principal:
    """The caller, from the request's bearer token (one query); 401 when there is none that works."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    token = await get_authenticator(request).verify(credentials.credentials)
    async with get_resources(request).db.transaction() as session:
        principal = await signin.sign_in(session, token)
    _name_in_logs(request, principal.user_id)
    if principal.locked and not allow_locked:
        raise Unauthorized(LOCKED_MESSAGE)
    return principal


async def token_user(request: Request, credentials: HTTPAuthorizationCredentials | None) -> uuid.UUID | None:
    """The user a token of this server names, verified but not looked up: the caller then checks in its
    own transaction that the user exists and is not locked (:func:`signin.refusals`). None for a provider's
    token (that needs :func:`authenticate`). 401 when there is no token that works."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    token = await get_authenticator(request).verify(credentials.credentials)
    if token.user_id is not None:
        _name_in_logs(request, token.user_id)
    return token.user_id


def _name_in_logs(request: Request, user_id: uuid.UUID) -> None:
    """Log lines of this request (and of the jobs it starts) name the user by id, never by e-mail."""
    log_context.user_id.set(str(user_id))
    request.scope.setdefault("state", {})["user_id"] = user_id


async def signed_in(request: Request, credentials: Credentials) -> Principal:
    """The caller, even while their account is locked for deletion (solved once per request)."""
    return await authenticate(request, credentials, allow_locked=True)


SignedIn = Annotated[Principal, Depends(signed_in)]


async def current_principal(principal: SignedIn) -> Principal:
    if principal.locked:
        raise Unauthorized(LOCKED_MESSAGE)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def current_user_id(principal: CurrentPrincipal) -> uuid.UUID:
    return principal.user_id


CurrentUser = Annotated[uuid.UUID, Depends(current_user_id)]


async def account_owner(principal: SignedIn) -> uuid.UUID:
    """The caller even while their account is locked for deletion: only for following and cancelling
    that deletion."""
    return principal.user_id


AccountOwner = Annotated[uuid.UUID, Depends(account_owner)]


async def require_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this needs an administrator")
    return principal


AdminUser = Annotated[Principal, Depends(require_admin)]
