"""The ``maintenance.retention`` job: every retention rule of the system, on the scheduler queue."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.accounts import service as accounts
from habitjobs.config import Settings
from habitjobs.maintenance import retention
from habitjobs.queue.names import SCHEDULER
from habitjobs.queue.registry import JobSpec, Schedule
from habitjobs.queue.retry import NO_RETRY
from habitjobs.resources import JobContext

RETENTION_JOB = "maintenance.retention"
# Batches per rule and run: a big backlog is worked off over several runs, each of them short.
MAX_BATCHES_PER_RUN = 100


class Retention(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def rules(settings: Settings) -> list[retention.Rule]:
    """Every retention rule, in the order they run (a new one is one entry here)."""
    forget_after = timedelta(seconds=settings.export_forget_after_s)

    async def forget_exports(session: AsyncSession, now: datetime, limit: int) -> int:
        return await accounts.forget_exports(session, now - forget_after, limit)

    return [
        # Exports past their expiry lose their document (the big part) and answer 410...
        retention.Rule("data_exports.expire", accounts.expire_exports),
        # ...and are forgotten altogether (404) after export_forget_after_s more.
        retention.Rule("data_exports.forget", forget_exports),
    ]


async def run_retention(ctx: JobContext, _payload: Retention) -> dict[str, Any]:
    resources = ctx.resources
    settings = resources.settings
    return await retention.run(
        resources.db,
        rules(settings),
        now=resources.clock.now(),
        batch=settings.retention_batch,
        max_batches=MAX_BATCHES_PER_RUN,
    )


JOBS: list[JobSpec[Any]] = [
    JobSpec(
        RETENTION_JOB,
        SCHEDULER,
        Retention,
        run_retention,
        policy=NO_RETRY,
        description="delete what is kept only for a while (expired data exports), in small batches",
    ),
]


def schedules(settings: Settings) -> list[Schedule]:
    return [Schedule("maintenance-retention", RETENTION_JOB, every_ms=settings.retention_every_ms)]
