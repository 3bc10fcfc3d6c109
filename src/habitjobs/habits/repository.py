"""All SQL of routines and habits (completions and focus sessions are written by sync)."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.habits.models import FocusSession, Habit, HabitCompletion, Routine

# Reading and writing one routine or habit is habitjobs.owned's (the same for every synced entity).
Positioned = TypeVar("Positioned", Routine, Habit)


async def list_live(session: AsyncSession, model: type[Positioned], user_id: uuid.UUID) -> list[Positioned]:
    stmt = (
        select(model)
        .where(model.user_id == user_id, model.deleted_at.is_(None))
        .order_by(model.position, model.created_at, model.id)
    )
    return list((await session.scalars(stmt)).all())


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
