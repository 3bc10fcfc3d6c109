"""Job types of the queue layer itself: the outbox relay and the reconciliation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from habitjobs.config import Settings
from habitjobs.queue.context import QueueResources
from habitjobs.queue.names import SCHEDULER
from habitjobs.queue.reconcile import reconcile
from habitjobs.queue.registry import HandlerContext, JobSpec, Schedule
from habitjobs.queue.retry import NO_RETRY

RECONCILE_JOB = "jobs.reconcile"


class RelayOutbox(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Reconcile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


async def relay_outbox(ctx: HandlerContext[QueueResources], _payload: RelayOutbox) -> dict[str, Any]:
    """Enqueue outbox rows whose after-commit enqueue never happened. (Acknowledged rows are deleted by
    ``maintenance.retention``.)"""
    settings = ctx.resources.settings
    relayed = await ctx.resources.outbox.relay(grace_s=settings.outbox_relay_grace_s)
    return {"relayed": relayed}


async def reconcile_jobs(ctx: HandlerContext[QueueResources], _payload: Reconcile) -> dict[str, int]:
    """Enqueue again the jobs that waiting rows still need but Redis lost; settle unsettled failures."""
    return (await reconcile(ctx.resources)).as_dict()


JOBS: list[JobSpec[Any]] = [
    JobSpec(
        "outbox.relay",
        SCHEDULER,
        RelayOutbox,
        relay_outbox,
        policy=NO_RETRY,
        description="enqueue jobs committed to the outbox but never acknowledged by Redis",
    ),
    JobSpec(
        RECONCILE_JOB,
        SCHEDULER,
        Reconcile,
        reconcile_jobs,
        policy=NO_RETRY,
        description="enqueue again the jobs waiting rows need but Redis lost; settle unsettled failures",
    ),
]


def schedules(settings: Settings) -> list[Schedule]:
    return [
        Schedule("outbox-relay", "outbox.relay", every_ms=settings.outbox_relay_every_ms),
        Schedule("jobs-reconcile", RECONCILE_JOB, every_ms=settings.reconcile_every_ms),
    ]
