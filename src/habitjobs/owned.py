"""Rows a user owns and edits through the API and offline sync: what several domains share.

Routines and habits (habits), reminders (reminders) and the rows sync merges all carry the same owner,
tombstone and sync columns, and every write through the API takes the user's next version. The generic
access to such rows, the write stamp and the version bump live here, below every domain, so that the
domains need not import each other for them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Text, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from habitjobs.clock import Clock
from habitjobs.errors import Conflict, HabitjobsError, NotFound

# Writes made through the API (not from a device's offline queue) carry this as their writer id, which
# is also the last-writer-wins tie-break: at the same instant a device's own write wins over it.
API_WRITER = ""


class Synced:
    """Columns every synced entity has: what last-writer-wins needs (``client_updated_at``, ``device_id``),
    the pull cursor (``server_version``) and a ``deleted_at`` tombstone instead of a deletion."""

    if TYPE_CHECKING:
        # Every synced table declares these itself (its own key and owner foreign key).
        id: Mapped[uuid.UUID]
        user_id: Mapped[uuid.UUID]

    client_updated_at: Mapped[datetime]
    device_id: Mapped[str] = mapped_column(Text, server_default="")
    server_version: Mapped[int] = mapped_column(server_default="0")
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


Entity = TypeVar("Entity", bound=Synced)


async def get_live(
    session: AsyncSession,
    model: type[Entity],
    user_id: uuid.UUID,
    entity_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Entity | None:
    stmt = select(model).where(model.id == entity_id, model.user_id == user_id, model.deleted_at.is_(None))
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def count_live(session: AsyncSession, model: type[Entity], user_id: uuid.UUID) -> int:
    """How many live (not deleted) rows of ``model`` the user has."""
    stmt = select(func.count()).where(model.user_id == user_id, model.deleted_at.is_(None))
    return int((await session.execute(stmt)).scalar_one())


async def insert_new(session: AsyncSession, model: type[Entity], values: dict[str, Any]) -> Entity | None:
    """Insert a row with a client-chosen id; None when the id is already taken."""
    stmt = insert(model).values(**values).on_conflict_do_nothing(index_elements=["id"]).returning(model)
    return (await session.execute(stmt)).scalar_one_or_none()


async def owner_of(session: AsyncSession, model: type[Entity], entity_id: uuid.UUID) -> uuid.UUID | None:
    """The user whose row has this id (live or deleted), or None when no row has it."""
    owner: uuid.UUID | None = await session.scalar(select(model.user_id).where(model.id == entity_id))
    return owner


async def id_taken(
    session: AsyncSession, model: type[Entity], user_id: uuid.UUID, entity_id: uuid.UUID
) -> HabitjobsError:
    """The answer to a create whose client-chosen id is taken: 409 when the caller's own row has it; for
    another user's row, 404 — as for any id the caller cannot see — so nothing confirms that it exists."""
    what = str(getattr(model, "__tablename__", "row")).removesuffix("s")
    if await owner_of(session, model, entity_id) == user_id:
        return Conflict(f"a {what} with id {entity_id} already exists", field="id")
    return NotFound(f"{what} {entity_id} not found")


async def update_owned(
    session: AsyncSession,
    model: type[Entity],
    user_id: uuid.UUID,
    entity_id: uuid.UUID,
    values: dict[str, Any],
) -> Entity | None:
    stmt = (
        update(model)
        .where(model.id == entity_id, model.user_id == user_id, model.deleted_at.is_(None))
        .values(**values)
        .returning(model)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


_BUMP = text(
    "INSERT INTO user_sync_state AS s (user_id, version) VALUES (:user_id, 1) "
    "ON CONFLICT (user_id) DO UPDATE SET version = s.version + 1 RETURNING s.version"
)


async def bump_version(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Take the user's next version. The row stays locked until the transaction ends, which
    serialises one user's writes: commit order equals version order, so versions are a safe cursor."""
    return int((await session.execute(_BUMP, {"user_id": user_id})).scalar_one())


async def stamp_api_write(session: AsyncSession, clock: Clock, user_id: uuid.UUID) -> dict[str, Any]:
    """The sync columns of a row written through the API: the user's next version, now, the API as writer."""
    version = await bump_version(session, user_id)
    return {"server_version": version, "client_updated_at": clock.now(), "device_id": API_WRITER}
