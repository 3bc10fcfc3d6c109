"""Who a verified token is: the user of its (issuer, subject), created on first sight; and explicit links
that let one user sign in through more than one provider.

A user is never found by e-mail. Two providers reporting the same address are two users, until the
user — signed in through the first — hands the second provider's token to ``POST /v1/me/identities``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.accounts import repository as repo
from habitjobs.accounts.auth import VerifiedToken
from habitjobs.accounts.models import UserIdentity
from habitjobs.errors import Conflict, NotFound, Unauthorized


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    is_admin: bool
    # The account's deletion was requested: its tokens only reach the deletion's own routes.
    locked: bool


LOCKED_MESSAGE = "this account is being deleted (GET /v1/me/deletion; DELETE it to cancel)"
GONE_MESSAGE = "the token's user no longer exists"


async def refusals(session: AsyncSession, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Unauthorized]:
    """Of users named by verified tokens of this server, those who may not write (one query for all):
    gone, or with their deletion requested. What :func:`sign_in` and the lock check decide, for many at
    once — the sync upload intake checks a whole group of uploads inside the transaction that stores them.
    """
    wanted = set(user_ids)
    found = await repo.principals_by_ids(session, list(wanted))
    refused: dict[uuid.UUID, Unauthorized] = {}
    for user_id in wanted:
        row = found.get(user_id)
        if row is None:
            refused[user_id] = Unauthorized(GONE_MESSAGE)
        elif row.locked:
            refused[user_id] = Unauthorized(LOCKED_MESSAGE)
    return refused


async def sign_in(session: AsyncSession, token: VerifiedToken) -> Principal:
    """The token's user (one query); a provider's unknown identity becomes a new user."""
    if token.user_id is not None:
        found = await repo.principal_by_id(session, token.user_id)
        if found is None:
            raise Unauthorized(GONE_MESSAGE)
        return Principal(found.user_id, found.is_admin, found.locked)
    found = await repo.principal_by_identity(session, token.issuer, token.subject)
    if found is None:
        created = await repo.create_user_with_identity(session, token.issuer, token.subject, token.email)
        if created is None:  # another request signed the same identity in first
            found = await repo.principal_by_identity(session, token.issuer, token.subject)
            if found is None:
                raise Unauthorized("the token's user no longer exists")
        else:
            return Principal(created, is_admin=False, locked=False)
    return Principal(found.user_id, found.is_admin, found.locked)


async def list_identities(session: AsyncSession, user_id: uuid.UUID) -> list[UserIdentity]:
    return await repo.list_identities(session, user_id)


async def link_identity(
    session: AsyncSession, user_id: uuid.UUID, token: VerifiedToken
) -> tuple[UserIdentity, bool]:
    """Attach the (already verified) provider token's identity to the user. Returns it and whether it is
    new; an identity that signs another user in already is a 409 (accounts are never merged)."""
    added = await repo.add_identity(session, user_id, token.issuer, token.subject, token.email)
    if added is not None:
        return added, True
    existing = await repo.find_identity(session, token.issuer, token.subject)
    if existing is None or existing.user_id != user_id:
        raise Conflict(
            "this identity already signs in another account; sign in with it and delete that account "
            "(DELETE /v1/me) before linking it here",
            field="token",
        )
    return existing, False


async def unlink_identity(session: AsyncSession, user_id: uuid.UUID, identity_id: uuid.UUID) -> None:
    """Remove one of the user's identities; the last one stays (the account could not be signed in to)."""
    await repo.lock_user_row(session, user_id)  # two unlinks at once may not remove the last two
    identities = await repo.list_identities(session, user_id)
    if identity_id not in {i.id for i in identities}:
        raise NotFound(f"identity {identity_id} not found")
    if len(identities) == 1:
        raise Conflict("this is the account's only identity; link another one first")
    await repo.delete_identity(session, user_id, identity_id)
