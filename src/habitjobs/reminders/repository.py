"""SQL of the reminders domain (the tick's set-based statements live in ``tick_sql.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.accounts.models import User
from habitjobs.reminders.models import Reminder
from habitjobs.reminders.tick_sql import ADVANCE


async def user_zone(session: AsyncSession, user_id: uuid.UUID) -> str:
    return str(await session.scalar(select(User.timezone).where(User.id == user_id)))


async def list_live(session: AsyncSession, user_id: uuid.UUID) -> list[Reminder]:
    stmt = (
        select(Reminder)
        .where(Reminder.user_id == user_id, Reminder.deleted_at.is_(None))
        .order_by(Reminder.local_time, Reminder.id)
    )
    return list((await session.scalars(stmt)).all())


async def following_user_zone(session: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    """Live reminders without their own zone: they move when the user moves."""
    stmt = select(Reminder.id).where(
        Reminder.user_id == user_id, Reminder.deleted_at.is_(None), Reminder.timezone.is_(None)
    )
    return list((await session.scalars(stmt)).all())


async def schedules_of(session: AsyncSession, reminder_ids: Collection[uuid.UUID]) -> Sequence[Any]:
    """What ``next_fire_at`` derives from, with the zone each reminder follows."""
    stmt = (
        select(
            Reminder.id,
            Reminder.local_time,
            Reminder.days_mask,
            Reminder.enabled,
            Reminder.deleted_at,
            func.coalesce(Reminder.timezone, User.timezone).label("zone"),
        )
        .join(User, User.id == Reminder.user_id)
        .where(Reminder.id.in_(list(reminder_ids)))
    )
    return (await session.execute(stmt)).all()


async def set_next_fire(session: AsyncSession, changes: list[tuple[uuid.UUID, datetime | None]]) -> None:
    if changes:
        ids, fire_ats = zip(*changes, strict=True)
        await session.execute(ADVANCE, {"ids": list(ids), "next_fire_ats": list(fire_ats)})
