"""The minute tick: turn due reminders into push deliveries, exactly once per reminder and local day.

Per chunk, in one transaction:
1. claim due reminders (``FOR UPDATE SKIP LOCKED``: two ticks racing split the rows, never share them);
2. decide, at send time, which are still relevant (habit not yet done today, routine not finished, a
   streak worth saving) and which are too late (past the tolerance: skipped, not sent late);
3. insert one delivery per enabled device with a deterministic dedupe key
   (``reminder:<id>:<local date>:<device>``, ``ON CONFLICT DO NOTHING``);
4. advance ``next_fire_at`` to the next local day it is due;
5. stage ``push.send_batch`` jobs in the outbox, delayed so each user's notification goes out at the fire
   instant plus a per-user offset (spreading the top-of-minute spike).
The commit makes all of it visible at once; the outbox enqueues the jobs after it.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.push.schemas import Notification
from habitjobs.push.service import Occasion, create_fan_out, send_jobs
from habitjobs.queue.outbox import Outbox
from habitjobs.reminders import tick_sql as sql
from habitjobs.reminders.schedule import next_fire_at, occurrence_day, spread_offset_s

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TickSettings:
    """The tick's knobs, from the settings (reminders/jobs.py: tick_settings)."""

    lookahead_s: int  # claim what fires within this: the next tick would be late for it
    tolerance_s: int  # a reminder more than this late is skipped, not sent
    chunk: int
    min_streak_days: int
    spread_s: int = 60


@dataclass
class TickResult:
    claimed: int = 0
    notified: int = 0  # reminders that produced at least one delivery
    deliveries: int = 0
    not_relevant: int = 0  # already done, nothing at risk, no device
    too_late: int = 0
    jobs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Due:
    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    habit_id: uuid.UUID | None
    routine_id: uuid.UUID | None
    fire_at: datetime
    local_date: date
    locale: str
    next_fire_at: datetime | None


def _plan(row: Row[Any], now: datetime, tolerance: timedelta, horizon: datetime) -> _Due:
    """Which occurrence this tick handles, and the one after it.

    After an outage the stored occurrence may be older than the tolerance: then the tick handles the
    most recent occurrence still within it (if any is due by the horizon) and the missed ones are
    skipped, never replayed.
    """
    zone = ZoneInfo(row.zone)
    fire_at: datetime = row.next_fire_at
    local_time: time = row.local_time
    if now - fire_at > tolerance:
        catch_up = next_fire_at(now - tolerance, local_time, row.days_mask, zone)
        if catch_up is not None and catch_up <= horizon:
            fire_at = catch_up
    following = next_fire_at(max(fire_at, now - tolerance), local_time, row.days_mask, zone)
    return _Due(
        id=row.id,
        user_id=row.user_id,
        kind=row.kind,
        habit_id=row.habit_id,
        routine_id=row.routine_id,
        fire_at=fire_at,
        # The day the occurrence belongs to, not the fire instant's date (a jump may end after midnight).
        local_date=occurrence_day(fire_at, local_time, zone),
        locale=row.locale,
        next_fire_at=following,
    )


async def _notifications(
    session: AsyncSession, due: list[_Due], min_streak: int
) -> dict[uuid.UUID, Notification]:
    """What each still-relevant reminder says; reminders missing from the result are not sent."""
    out: dict[uuid.UUID, Notification] = {}
    habits = [d for d in due if d.kind == "habit"]
    if habits:
        rows = await session.execute(
            sql.HABITS_TO_REMIND,
            {
                "reminder_ids": [d.id for d in habits],
                "habit_ids": [d.habit_id for d in habits],
                "local_dates": [d.local_date for d in habits],
                "user_ids": [d.user_id for d in habits],
            },
        )
        for r in rows:
            out[r.reminder_id] = Notification.habit_reminder(r.habit_id, r.name)
    routines = [d for d in due if d.kind in ("morning_routine", "evening_routine")]
    if routines:
        rows = await session.execute(
            sql.ROUTINES_TO_REMIND,
            {
                "reminder_ids": [d.id for d in routines],
                "routine_ids": [d.routine_id for d in routines],
                "kinds": [d.kind.removesuffix("_routine") for d in routines],
                "local_dates": [d.local_date for d in routines],
                "user_ids": [d.user_id for d in routines],
            },
        )
        kinds = {d.id: d.kind for d in routines}
        for r in rows:
            make = (
                Notification.morning_routine
                if kinds[r.reminder_id] == "morning_routine"
                else Notification.evening_routine
            )
            out[r.reminder_id] = make(r.routine_id, r.name)
    streaks = [d for d in due if d.kind == "streak_risk"]
    if streaks:
        rows = await session.execute(
            sql.STREAKS_AT_RISK,
            {
                "reminder_ids": [d.id for d in streaks],
                "local_dates": [d.local_date for d in streaks],
                "user_ids": [d.user_id for d in streaks],
                "min_streak": min_streak,
            },
        )
        for r in rows:
            out[r.reminder_id] = Notification.streak_at_risk(r.habit_id, r.name, int(r.current_streak))
    return out


async def tick_chunk(
    session: AsyncSession,
    outbox: Outbox,
    now: datetime,
    config: TickSettings,
    skip: set[uuid.UUID] | None = None,
) -> TickResult | None:
    """One chunk in the caller's transaction; None when nothing is due. Reminders that cannot be planned
    are added to ``skip`` (and not claimed again by this tick)."""
    skip = set() if skip is None else skip
    await session.execute(sql.PREFER_INDEX_LOOKUPS)
    horizon = now + timedelta(seconds=config.lookahead_s)
    claimed = (
        await session.execute(sql.CLAIM_DUE, {"horizon": horizon, "limit": config.chunk, "skip": list(skip)})
    ).all()
    if not claimed:
        return None
    tolerance = timedelta(seconds=config.tolerance_s)
    due: list[_Due] = []
    for row in claimed:
        # One reminder that cannot be planned must not stop the others in its chunk: it is logged and left
        # as it is (claimed again by the next tick), the rest of the chunk goes on.
        try:
            due.append(_plan(row, now, tolerance, horizon))
        except Exception:
            skip.add(row.id)
            log.exception(
                "reminder %s (zone %s) could not be scheduled; skipped in this tick", row.id, row.zone
            )
    result = TickResult(claimed=len(claimed))
    in_time = [d for d in due if now - d.fire_at <= tolerance]
    result.too_late = len(due) - len(in_time)
    notifications = await _notifications(session, in_time, config.min_streak_days)

    occasions: list[Occasion] = []
    send_at: dict[str, datetime] = {}
    for d in in_time:
        notification = notifications.get(d.id)
        if notification is None:
            continue
        key = f"reminder:{d.id}:{d.local_date.isoformat()}"
        occasions.append(Occasion(key, d.user_id, notification, d.locale, d.fire_at + tolerance))
        send_at[key] = max(d.fire_at, now) + timedelta(
            seconds=spread_offset_s(str(d.user_id), config.spread_s)
        )
    created = await create_fan_out(session, occasions)
    inserted = [(ident, send_at[key]) for ident, key in created]
    result.notified = len({key for _, key in created})
    result.deliveries = len(inserted)
    result.not_relevant = len(in_time) - result.notified

    if due:
        await session.execute(
            sql.ADVANCE, {"ids": [d.id for d in due], "next_fire_ats": [d.next_fire_at for d in due]}
        )
    result.jobs = await _stage_sends(session, outbox, inserted, now)
    return result


async def _stage_sends(
    session: AsyncSession,
    outbox: Outbox,
    inserted: list[tuple[uuid.UUID, datetime]],
    now: datetime,
) -> list[str]:
    """One delayed send job per second of send time and ≤ 500 deliveries."""
    by_second: dict[int, list[uuid.UUID]] = defaultdict(list)
    for ident, at in inserted:
        by_second[int(at.timestamp())].append(ident)
    jobs = []
    for second, ids in sorted(by_second.items()):
        # Sorted: two ticks racing over the same rows name the same jobs.
        delay_ms = max(0, round((second - now.timestamp()) * 1000))
        jobs += send_jobs(sorted(ids), delay_ms=delay_ms)
    return await outbox.add_many(session, jobs)
