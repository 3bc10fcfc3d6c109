"""The minute tick across clock jumps that touch midnight, on a simulated clock, minute by minute:

- America/Nuuk jumps from Saturday 23:00 to Sunday 00:00 (2026-03-28): Saturday's 23:30 fires at Sunday
  00:00 as *Saturday's* delivery (its dedupe key and "done today?" follow Saturday), so Sunday's own 23:30
  still fires, and a Saturday-only reminder of a habit done that Saturday stays silent.
- Pacific/Apia skipped 2011-12-30 entirely: the reminder skips that day (documented), and no other user's
  reminder in the same chunk is held up by it.
- A reminder that cannot be planned at all (a zone the tz database does not know) is isolated: the rest of
  its chunk is delivered."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select

from habitjobs.accounts.models import Device
from habitjobs.clock import FrozenClock
from habitjobs.push.models import PushDelivery
from habitjobs.reminders.jobs import run_tick
from habitjobs.reminders.models import Reminder
from habitjobs.reminders.service import compute_next_fire
from habitjobs.resources import Resources
from tests.support.analytics_data import add_entry, add_habit, add_user

ALL_DAYS = 0b1111111
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


async def add_reminder(
    resources: Resources,
    zone: str,
    at: time,
    *,
    now: datetime,
    days_mask: int = ALL_DAYS,
    done_on: date | None = None,
    reminder_zone: str | None = None,
) -> uuid.UUID:
    """A user in ``zone`` with a daily habit, one device and a habit reminder at ``at``; returns its id."""
    reminder_id = uuid.uuid4()
    async with resources.db.transaction() as session:
        user_id = await add_user(session, zone=zone, created_at=LONG_AGO)
        habit_id = await add_habit(session, user_id, created_at=LONG_AGO)
        if done_on is not None:
            await add_entry(session, user_id, habit_id, done_on)
        await session.execute(
            insert(Device).values(
                id=uuid.uuid4(),
                user_id=user_id,
                platform="android",
                provider="fcm",
                push_token=f"tok-{uuid.uuid4().hex}",
            )
        )
        planned_zone = reminder_zone or zone
        first = (
            compute_next_fire(now, local_time=at, days_mask=days_mask, zone=planned_zone, enabled=True)
            if planned_zone == zone
            else now
        )
        await session.execute(
            insert(Reminder).values(
                id=reminder_id,
                user_id=user_id,
                kind="habit",
                habit_id=habit_id,
                local_time=at,
                days_mask=days_mask,
                timezone=reminder_zone,
                client_updated_at=now,
                server_version=1,
                next_fire_at=first,
            )
        )
    return reminder_id


async def walk(
    resources: Resources, start: datetime, end: datetime
) -> dict[uuid.UUID, list[tuple[date, datetime]]]:
    """Tick every minute from ``start`` to ``end``; per reminder: (keyed day, tick instant) per delivery."""
    clock = FrozenClock(start)
    resources.clock = clock
    seen: set[uuid.UUID] = set()
    out: dict[uuid.UUID, list[tuple[date, datetime]]] = {}
    while clock.now() <= end:
        result = await run_tick(resources)
        if result.deliveries:
            async with resources.db.transaction() as session:
                rows = (await session.scalars(select(PushDelivery))).all()
            for row in rows:
                if row.id in seen:
                    continue
                seen.add(row.id)
                _, reminder_id, day, _device = row.dedupe_key.split(":")
                out.setdefault(uuid.UUID(reminder_id), []).append((date.fromisoformat(day), clock.now()))
        clock.advance(timedelta(minutes=1))
    return out


def days(got: dict[uuid.UUID, list[tuple[date, datetime]]], reminder_id: uuid.UUID) -> list[date]:
    return [d for d, _ in got.get(reminder_id, [])]


async def test_nuuk_jump_from_23_to_midnight_keeps_saturday_s_reminder_on_saturday(
    resources: Resources,
) -> None:
    nuuk = ZoneInfo("America/Nuuk")
    start = datetime(2026, 3, 28, 22, 0, tzinfo=nuuk)  # Saturday; the clocks jump at 23:00 to Sunday 00:00
    end = datetime(2026, 3, 30, 0, 5, tzinfo=nuuk)
    saturday, sunday, monday = date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)
    daily_2330 = await add_reminder(resources, "America/Nuuk", time(23, 30), now=start)
    daily_0000 = await add_reminder(resources, "America/Nuuk", time(0, 0), now=start)
    saturday_only_done = await add_reminder(
        resources,
        "America/Nuuk",
        time(23, 30),
        now=start,
        days_mask=1 << saturday.weekday(),
        done_on=saturday,
    )
    saturday_only_open = await add_reminder(
        resources, "America/Nuuk", time(23, 30), now=start, days_mask=1 << saturday.weekday(), done_on=sunday
    )

    got = await walk(resources, start, end)

    assert days(got, daily_2330) == [saturday, sunday]
    assert days(got, daily_0000) == [sunday, monday]
    assert days(got, saturday_only_done) == []  # done that Saturday: nothing to remind
    assert days(got, saturday_only_open) == [saturday]  # done on Sunday only: Saturday's is still open
    jump = datetime(2026, 3, 29, 0, 0, tzinfo=nuuk).astimezone(UTC)  # arithmetic in UTC, not wall time
    # Saturday's 23:30 went out with the tick just before the jump (one minute of lookahead).
    (_, sat_tick), (_, sun_tick) = got[daily_2330]
    assert jump - timedelta(minutes=1) <= sat_tick <= jump
    assert (
        datetime(2026, 3, 29, 23, 29, tzinfo=nuuk) <= sun_tick <= datetime(2026, 3, 29, 23, 30, tzinfo=nuuk)
    )


async def test_apia_skipped_day_is_skipped_and_holds_up_no_one(resources: Resources) -> None:
    apia = ZoneInfo("Pacific/Apia")
    start = datetime(
        2011, 12, 29, 9, 0, tzinfo=apia
    )  # Thursday, UTC-10; at midnight it becomes Saturday, UTC+14
    end = datetime(2011, 12, 31, 10, 5, tzinfo=apia)
    apia_daily = await add_reminder(resources, "Pacific/Apia", time(10, 0), now=start)
    apia_late = await add_reminder(resources, "Pacific/Apia", time(23, 59), now=start)
    elsewhere = await add_reminder(resources, "UTC", time(20, 0), now=start)  # 10:00 in Apia on the 29th

    got = await walk(resources, start, end)

    assert days(got, apia_daily) == [date(2011, 12, 29), date(2011, 12, 31)]
    assert days(got, apia_late) == [date(2011, 12, 29)]
    assert days(got, elsewhere) == [date(2011, 12, 29), date(2011, 12, 30)]


async def test_a_reminder_that_cannot_be_planned_does_not_stop_its_chunk(resources: Resources) -> None:
    start = datetime(2026, 5, 4, 6, 58, tzinfo=UTC)
    broken = await add_reminder(resources, "UTC", time(7, 0), now=start, reminder_zone="Mars/Olympus_Mons")
    fine = [await add_reminder(resources, "UTC", time(7, 0), now=start) for _ in range(3)]

    got = await walk(resources, start, start + timedelta(minutes=3))

    assert days(got, broken) == []
    assert [days(got, r) for r in fine] == [[date(2026, 5, 4)]] * 3
    async with resources.db.transaction() as session:
        kept = await session.scalar(select(Reminder.next_fire_at).where(Reminder.id == broken))
    assert kept == start  # left as it was, for the next tick (and logged)
