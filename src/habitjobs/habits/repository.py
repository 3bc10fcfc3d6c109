"""All SQL of routines and habits (completions and focus sessions are written by sync)."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.habits.models import FocusSession, Habit, HabitCompletion, Routine
from habitjobs.reminders.models import Reminder

# The entities the API writes one by one (their owner, tombstone and sync columns are the same).
Entity = TypeVar("Entity", Routine, Habit, Reminder)
Positioned = TypeVar("Positioned", Routine, Habit)


async def list_live(session: AsyncSession, model: type[Positioned], user_id: uuid.UUID) -> list[Positioned]:
    stmt = (
        select(model)
        .where(model.user_id == user_id, model.deleted_at.is_(None))
        .order_by(model.position, model.created_at, model.id)
    )
    return list((await session.scalars(stmt)).all())


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


async def owner_of(
    session: AsyncSession, model: type[Routine | Habit | Reminder], entity_id: uuid.UUID
) -> uuid.UUID | None:
    """The user whose row has this id (live or deleted), or None when no row has it."""
    owner: uuid.UUID | None = await session.scalar(select(model.user_id).where(model.id == entity_id))
    return owner


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


_EXPORTED = (Routine, Habit, HabitCompletion, FocusSession)


async def export_rows(session: AsyncSession, user_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """Every row the user owns in this domain, tombstones included, as plain dicts."""
    out: dict[str, list[dict[str, Any]]] = {}
    for model in _EXPORTED:
        rows = (await session.scalars(select(model).where(model.user_id == user_id))).all()
        out[model.__tablename__] = [
            {c.key: getattr(row, c.key) for c in model.__table__.columns} for row in rows
        ]
    return out


_EXPORT_SIZE = text(
    "SELECT "
    + " + ".join(
        f"(SELECT coalesce(sum(octet_length(row_to_json(t)::text)), 0) FROM {m.__tablename__} t "
        "WHERE t.user_id = :user_id)"
        for m in _EXPORTED
    )
)


async def export_size_estimate(session: AsyncSession, user_id: uuid.UUID) -> int:
    """About how many bytes of JSON :func:`export_rows` makes, measured by PostgreSQL without reading the
    rows out (an export far over its size cap is refused before it is loaded into memory)."""
    return int((await session.execute(_EXPORT_SIZE, {"user_id": user_id})).scalar_one())
