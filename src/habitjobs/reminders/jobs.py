"""Job types of the reminders domain: the minute tick."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from habitjobs.config import Settings
from habitjobs.queue.names import SCHEDULER
from habitjobs.queue.registry import JobSpec, Schedule
from habitjobs.queue.retry import NO_RETRY
from habitjobs.reminders.tick import TickResult, TickSettings, tick_chunk

if TYPE_CHECKING:
    from habitjobs.resources import JobContext, Resources

TICK_JOB = "reminders.tick"


class Tick(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def tick_settings(settings: Settings) -> TickSettings:
    return TickSettings(
        lookahead_s=settings.reminder_lookahead_s,
        tolerance_s=settings.reminder_tolerance_s,
        chunk=settings.reminder_chunk,
        min_streak_days=settings.streak_alert_min_days,
    )


async def run_tick(resources: Resources) -> TickResult:
    """Everything due now, chunk by chunk (each chunk its own transaction, so a crash loses no work:
    committed chunks are done, the rest is still due for the next tick). ``reminder_parallel`` chunks run
    side by side — ``SKIP LOCKED`` hands each its own rows — so SQL and Python work overlap."""
    now = resources.clock.now()
    config = tick_settings(resources.settings)
    total = TickResult()
    skip: set[uuid.UUID] = set()  # reminders that could not be planned: logged, left for the next tick

    async def drain_chunks() -> None:
        while True:
            async with resources.db.transaction() as session:
                chunk = await tick_chunk(session, resources.outbox, now, config, skip)
            if chunk is None:
                return
            total.claimed += chunk.claimed
            total.notified += chunk.notified
            total.deliveries += chunk.deliveries
            total.not_relevant += chunk.not_relevant
            total.too_late += chunk.too_late
            total.jobs.extend(chunk.jobs)

    await asyncio.gather(*(drain_chunks() for _ in range(resources.settings.reminder_parallel)))
    return total


async def tick(ctx: JobContext, _payload: Tick) -> dict[str, Any]:
    result = await run_tick(ctx.resources)
    summary = asdict(result)
    summary["jobs"] = len(result.jobs)
    return summary


JOBS: list[JobSpec[Any]] = [
    JobSpec(TICK_JOB, SCHEDULER, Tick, tick, policy=NO_RETRY, description="turn due reminders into pushes"),
]


def schedules(settings: Settings) -> list[Schedule]:
    return [Schedule("reminders-tick", TICK_JOB, every_ms=settings.reminder_tick_every_ms)]
