"""How long from a reminders tick to every push.send_batch job being enqueued, for N reminders due in the
same minute — our set-based tick vs. a per-row loop, side by side in one run.

    python bench/schedule.py                # 100,000 reminders (the loop runs on a sample, extrapolated)
    python bench/schedule.py --reminders 20000 --loop-sample 1000 --repeat 3

Each repetition loads fresh reminders (one user, one device, one habit each; zones spread over the
world), then times the tick until its last job is in Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update

from bench._common import REDIS_URL, drop_prefix, machine, median, private_database, table
from habitjobs.clock import FrozenClock
from habitjobs.config import Settings
from habitjobs.push import service as push_service
from habitjobs.push.schemas import Notification
from habitjobs.reminders.jobs import run_tick
from habitjobs.reminders.models import Reminder
from habitjobs.reminders.schedule import next_fire_at
from habitjobs.resources import Resources

NOW = datetime(2026, 6, 1, 6, 59, 30, tzinfo=UTC)
FIRE = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)

LOAD = text(
    """
    WITH u AS (
        INSERT INTO users (id, email, timezone)
        SELECT gen_random_uuid(), 'bench-' || :batch || '-' || g || '@example.com', 'UTC'
        FROM generate_series(1, :n) g RETURNING id
    ), d AS (
        INSERT INTO devices (id, user_id, platform, provider, push_token)
        SELECT gen_random_uuid(), id, 'android', 'fcm', 'tok-' || id FROM u RETURNING user_id
    ), h AS (
        INSERT INTO habits (id, user_id, name, client_updated_at, server_version)
        SELECT gen_random_uuid(), user_id, 'Stretch', now(), 1 FROM d RETURNING id, user_id
    )
    INSERT INTO reminders
        (id, user_id, kind, habit_id, local_time, client_updated_at, server_version, next_fire_at)
    SELECT gen_random_uuid(), user_id, 'habit', id, '07:00', now(), 1, :fire FROM h
    """
)


async def load(resources: Resources, n: int) -> None:
    async with resources.db.transaction() as session:
        await session.execute(text("TRUNCATE users, push_deliveries, outbox CASCADE"))
        await session.execute(LOAD, {"n": n, "batch": uuid.uuid4().hex[:6], "fire": FIRE})
    # Statistics as autovacuum would have them on a real database.
    async with resources.db.engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()


async def set_based(resources: Resources) -> tuple[float, int]:
    started = time.perf_counter()
    result = await run_tick(resources)
    return time.perf_counter() - started, len(result.jobs)


async def per_row(resources: Resources, limit: int) -> tuple[float, int]:
    """The obvious loop: one reminder at a time, each in its own transaction, one job per reminder."""
    started = time.perf_counter()
    jobs = 0
    now = resources.clock.now()
    async with resources.db.transaction() as session:
        ids = list(
            (
                await session.scalars(
                    select(Reminder.id)
                    .where(Reminder.next_fire_at <= now + timedelta(seconds=60))
                    .limit(limit)
                )
            ).all()
        )
    for reminder_id in ids:
        async with resources.db.transaction() as session:
            reminder = await session.get(Reminder, reminder_id, with_for_update=True)
            assert reminder is not None
            assert reminder.habit_id is not None
            habit_name = await session.scalar(
                text("SELECT name FROM habits WHERE id = :id"), {"id": reminder.habit_id}
            )
            done = await session.scalar(
                text("SELECT count(*) FROM habit_completions WHERE habit_id = :id AND local_date = :d"),
                {"id": reminder.habit_id, "d": FIRE.date()},
            )
            if not done:
                delivery_ids = await push_service.create_deliveries(
                    session,
                    reminder.user_id,
                    Notification.habit_reminder(reminder.habit_id, str(habit_name)),
                    dedupe_key=f"reminder:{reminder.id}:{FIRE.date()}",
                    not_after=FIRE + timedelta(minutes=15),
                )
                jobs += len(await push_service.stage_send(session, resources.outbox, delivery_ids))
            await session.execute(
                update(Reminder)
                .where(Reminder.id == reminder.id)
                .values(next_fire_at=next_fire_at(FIRE, reminder.local_time, reminder.days_mask, UTC))  # type: ignore[arg-type]
            )
    return time.perf_counter() - started, jobs


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reminders", type=int, default=100_000)
    parser.add_argument("--loop-sample", type=int, default=2_000, help="reminders the per-row loop handles")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    prefix = f"hjbench{uuid.uuid4().hex[:6]}"
    async with private_database() as url:
        settings = Settings(env="test", database_url=url, redis_url=REDIS_URL, queue_prefix=prefix)
        resources = Resources.open(settings, clock=FrozenClock(NOW), application_name="bench-schedule")
        ours: list[float] = []
        loop_rate: list[float] = []
        jobs_ours = 0
        try:
            for _ in range(args.repeat):
                await load(resources, args.reminders)
                seconds, jobs_ours = await set_based(resources)
                ours.append(seconds)
                await drop_prefix(prefix)
                await load(resources, args.loop_sample)
                seconds, _ = await per_row(resources, args.loop_sample)
                loop_rate.append(args.loop_sample / seconds)
                await drop_prefix(prefix)
        finally:
            await resources.aclose()
            await drop_prefix(prefix)

    ours_s = median(ours)
    loop_s = args.reminders / median(loop_rate)
    print(f"machine: {machine()}")
    print(
        f"{args.reminders:,} reminders due in the same minute, one device each; "
        f"median of {args.repeat} runs\n"
    )
    print(
        table(
            ["approach", "tick → all jobs enqueued", "reminders/s", "send jobs", "vs loop"],
            [
                [
                    "set-based tick (ours)",
                    f"{ours_s:.2f} s",
                    f"{args.reminders / ours_s:,.0f}",
                    f"{jobs_ours:,}",
                    f"{loop_s / ours_s:.1f}× faster",
                ],
                [
                    f"per-row loop (measured on {args.loop_sample:,}, extrapolated)",
                    f"{loop_s:.1f} s",
                    f"{median(loop_rate):,.0f}",
                    "1 per reminder",
                    "1×",
                ],
            ],
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
