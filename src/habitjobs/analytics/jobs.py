"""Job types of statistics and streaks: the nightly roll-up of a zone, the debounced per-user recompute,
and the planner that finds zones whose day has ended."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from habitjobs.accounts.schemas import Timezone
from habitjobs.analytics import repository as repo
from habitjobs.analytics import service
from habitjobs.config import Settings
from habitjobs.errors import RetryLater
from habitjobs.queue.names import ANALYTICS, SCHEDULER
from habitjobs.queue.producer import Dedupe, EnqueueRequest
from habitjobs.queue.registry import JobSpec, Schedule
from habitjobs.queue.retry import NO_RETRY, RetryPolicy

if TYPE_CHECKING:
    from habitjobs.resources import JobContext, Resources

log = logging.getLogger(__name__)

DAILY_JOB = "analytics.daily_rollup"
RECOMPUTE_JOB = "analytics.recompute_user"
PLAN_JOB = "analytics.plan"


class DailyRollup(BaseModel):
    """The nightly run of one zone's local day. Job id: :func:`service.daily_job_id`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    zone: Timezone
    local_date: date


class RecomputeUser(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: uuid.UUID


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def recompute_dedupe(user_id: uuid.UUID) -> str:
    return f"recompute-{user_id}"


async def daily_rollup(ctx: JobContext, payload: DailyRollup) -> dict[str, Any]:
    """Roll up one zone's day, chunk by chunk. Each chunk commits its rows and the run's keyset cursor
    together, so a retry resumes after the last committed chunk; a finished run is not redone."""
    resources = ctx.resources
    settings = resources.settings
    zone, day = payload.zone, payload.local_date
    now = resources.clock.now()
    ends = service.zone_day_ended_at(zone, day)
    if now < ends:
        raise RetryLater(f"{day} has not ended in {zone} yet", after_s=(ends - now).total_seconds())
    async with resources.db.transaction() as session:
        run = await service.open_run(session, zone, day, now)
    if run.finished:
        return {"zone": zone, "local_date": day.isoformat(), "status": "already_finished"}
    replica = resources.analytics_db if resources.analytics_db is not resources.db else None
    after, users, chunks = run.last_user_id, run.users_done, 0
    while True:
        async with resources.db.transaction() as session:
            await repo.tune_transaction(session, settings.analytics_statement_timeout_ms)
            chunk = await service.next_chunk(session, zone, day, after, settings.analytics_chunk_users)
            if chunk is None:
                await service.finish_run(session, zone, day, resources.clock.now())
                break
            rows = None
            if replica is not None:
                # The heavy read goes to the replica; the primary only writes the results.
                async with replica.transaction() as read:
                    await repo.tune_transaction(read, settings.analytics_statement_timeout_ms)
                    rows = await service.compute_daily(read, chunk, now)
            await service.write_chunk(session, chunk, now, daily_rows=rows)
            await service.advance_run(session, zone, day, chunk)
        after, users, chunks = chunk.last_user_id, users + len(chunk.user_ids), chunks + 1
        await ctx.progress({"zone": zone, "local_date": day.isoformat(), "users": users, "chunks": chunks})
    return {"zone": zone, "local_date": day.isoformat(), "status": "finished", "users": users}


async def recompute_user(ctx: JobContext, payload: RecomputeUser) -> dict[str, Any]:
    """Recompute one user's dirty days, their closed weeks and the user's streaks (safe to run twice)."""
    resources = ctx.resources
    async with resources.db.transaction() as session:
        await repo.tune_transaction(session, resources.settings.analytics_statement_timeout_ms)
        done = await service.recompute_user(session, payload.user_id, resources.clock.now())
    if done is None:
        return {"user_id": str(payload.user_id), "status": "no_such_user"}
    return {"user_id": str(payload.user_id), "days": done.days, "weeks": done.weeks}


async def request_recompute(
    resources: Resources, user_ids: Sequence[uuid.UUID], *, delay_ms: int = 0
) -> None:
    """Ask for the users' recompute in ``delay_ms``, one job per user however often this is called.

    Deduplication id ``recompute-<user>``: while a request waits out its delay, more requests for the
    user are dropped — the waiting job reads every dirty mark committed before it starts. The
    deduplication lasts only as long as the delay, so a request made while a recompute already runs (it
    may have read the marks before this request's were committed) schedules the next one. Without a
    delay it lasts until the job finishes; marks it missed are swept up by ``analytics.plan``.
    """
    await resources.producer.enqueue_many(
        [
            EnqueueRequest(
                RECOMPUTE_JOB,
                RecomputeUser(user_id=u),
                delay_ms=delay_ms,
                dedupe=Dedupe(recompute_dedupe(u), ttl_ms=delay_ms if delay_ms > 0 else None),
            )
            for u in user_ids
        ]
    )


async def plan(ctx: JobContext, _payload: Plan) -> dict[str, Any]:
    """Enqueue the nightly run of every (zone, day) that ended and has no finished run, and a recompute
    for users whose dirty marks waited too long (their debounced enqueue was lost)."""
    resources = ctx.resources
    settings = resources.settings
    async with resources.db.transaction() as session:
        due = await service.zones_needing_rollup(
            session, resources.clock.now(), lookback_days=settings.analytics_plan_lookback_days
        )
        stale = await service.users_with_stale_marks(session, settings.analytics_stale_mark_s, limit=1_000)
    await resources.producer.enqueue_many(
        [
            EnqueueRequest(
                DAILY_JOB, DailyRollup(zone=zone, local_date=day), job_id=service.daily_job_id(zone, day)
            )
            for zone, day in due
        ]
    )
    if stale:
        log.warning("%d user(s) had dirty marks without a recompute; requesting it now", len(stale))
        await request_recompute(resources, stale)
    return {"rollups": len(due), "stale_recomputes": len(stale)}


JOBS: list[JobSpec[Any]] = [
    JobSpec(
        DAILY_JOB,
        ANALYTICS,
        DailyRollup,
        daily_rollup,
        policy=RetryPolicy(attempts=6, base_delay_s=30, max_delay_s=1800),
        description="daily and weekly statistics and streaks of one zone's local day, after it ended",
    ),
    JobSpec(
        RECOMPUTE_JOB,
        ANALYTICS,
        RecomputeUser,
        recompute_user,
        policy=RetryPolicy(attempts=5, base_delay_s=10, max_delay_s=600),
        description="recompute one user's statistics and streaks after late or changed data",
    ),
    JobSpec(
        PLAN_JOB,
        SCHEDULER,
        Plan,
        plan,
        policy=NO_RETRY,
        description="enqueue the nightly roll-up of every zone whose local day has ended",
    ),
]


def schedules(settings: Settings) -> list[Schedule]:
    return [Schedule("analytics-plan", PLAN_JOB, every_ms=settings.analytics_plan_every_ms)]
