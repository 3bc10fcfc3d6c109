"""Job types of offline sync: merging an upload. (Old tombstones and uploads are forgotten by
``maintenance.retention``, which gathers every retention rule; :func:`retention_rules` are sync's.)"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from habitjobs.analytics import jobs as analytics_jobs
from habitjobs.config import Settings
from habitjobs.errors import RetryLater
from habitjobs.queue.names import SCHEDULER, SYNC
from habitjobs.queue.registry import (
    Awaited,
    AwaitedPage,
    AwaitedScan,
    FailedJob,
    JobSpec,
    Schedule,
)
from habitjobs.queue.retry import NO_RETRY, RetryPolicy
from habitjobs.sync import repository as repo
from habitjobs.sync import service

if TYPE_CHECKING:
    from habitjobs.resources import JobContext, Resources

log = logging.getLogger(__name__)

PURGE_JOB = "sync.purge"


class ApplyBatch(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_id: uuid.UUID


class Purge(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# An upload waiting for earlier ones merges at most this many of them itself before it retries later.
_MAX_HELPED = 50


async def apply_batch(ctx: JobContext, payload: ApplyBatch) -> dict[str, Any]:
    """Merge an uploaded batch, one transaction per chunk. Safe to run twice and to resume after a crash:
    progress is the client's ``last_mutation_id``, committed with each chunk."""
    resources = ctx.resources
    run = _Run(resources, ctx, may_wait=ctx.attempt == 1)
    # A last attempt that fails does not touch the batch here: the job's final failure, however it comes
    # (this handler, the stalled limit, an operator), is settled in one place (on_batch_job_failed).
    try:
        step = await run.merge(payload.batch_id)
    finally:
        if run.marked_user is not None:
            await request_stats_recompute(resources, run.marked_user)
    log.info(
        "batch %s %s: %s applied, %s stale, %d rejected",
        payload.batch_id,
        step.status,
        step.result.get("applied"),
        step.result.get("ignored_stale"),
        len(step.result.get("rejected", [])),
    )
    return {
        "batch_id": str(payload.batch_id),
        "status": step.status,
        **{
            k: step.result.get(k) for k in ("applied", "ignored_stale", "already_applied", "last_mutation_id")
        },
        "rejected": len(step.result.get("rejected", [])),
        "rejected_codes": dict(Counter(str(r.get("code")) for r in step.result.get("rejected", []))),
        "helped": run.helped,
    }


class _Run:
    """One job run: merges its batch, and first any earlier upload of the same client it waits for."""

    def __init__(self, resources: Resources, ctx: JobContext, *, may_wait: bool) -> None:
        self.resources = resources
        self.ctx = ctx
        self.may_wait = may_wait
        self.helped = 0
        # The batch's user, once a merge (of it or of an earlier upload it helped) left dirty marks. One
        # user: a run only helps uploads of the same client.
        self.marked_user: uuid.UUID | None = None

    async def merge(self, batch_id: uuid.UUID, *, helping: bool = False) -> service.Step:
        settings = self.resources.settings
        work: service.BatchWork | None = None
        while True:
            # The batch is read in the first chunk's transaction: one connection checkout per chunk.
            async with self.resources.db.transaction() as session:
                if work is None:
                    work = await service.load_batch(session, settings, batch_id)
                    if work is not None and not helping and service.failed_by_job(work):
                        # This job failed for good before and runs again: an operator retried it.
                        await service.reopen_if_job_failed(session, batch_id)
                        work = await service.load_batch(session, settings, batch_id)
                if work is None:  # removed by retention after it was merged: nothing is left to do
                    return service.Step(True, "missing")
                if work.status in service.FINAL_STATUSES:
                    return service.Step(True, work.status, work.result)
                step = await service.merge_next_chunk(
                    session,
                    settings,
                    work,
                    may_wait=self.may_wait and not helping,
                    now=self.resources.clock.now(),
                )
            if step.blocked_by is not None:
                self.helped += 1
                if self.helped > _MAX_HELPED:
                    raise RetryLater("too many earlier uploads of this client to merge first", after_s=5)
                await self.merge(step.blocked_by, helping=True)
            elif step.done:
                break
            elif not helping:
                await self.ctx.progress({"merged_through": step.result["last_mutation_id"]})
        if step.result.get("marked"):
            self.marked_user = work.user_id
        return step


def _batch_of(failed: FailedJob) -> uuid.UUID | None:
    """The batch a failed job was for: from its payload, else from its id (the payload may be invalid)."""
    try:
        return ApplyBatch.model_validate(failed.data).batch_id
    except ValueError:
        return service.batch_of_job_id(failed.job_id)


async def on_batch_job_failed(resources: Resources, failed: FailedJob) -> None:
    """The merge job failed for good: the batch is ``failed`` with a reason the phone reads; an
    operator's retry of the job takes it up again."""
    batch_id = _batch_of(failed)
    if batch_id is None:
        return
    async with resources.db.transaction() as session:
        await service.fail_batch(
            session, batch_id, service.job_failure_message(failed.reason), job_failed=True
        )


async def awaiting_batches(resources: Resources, scan: AwaitedScan) -> AwaitedPage:
    """Batches not merged yet, and the merge job each waits on (for the reconciliation)."""
    async with resources.db.transaction() as session:
        rows = await repo.open_batches(session, scan.older_than, scan.after, scan.limit)
    jobs = [
        Awaited(job_id, {"batch_id": str(batch_id)}, (received_at, str(batch_id)))
        for batch_id, job_id, received_at in rows
    ]
    return AwaitedPage(jobs, jobs[-1].position if len(rows) >= scan.limit else None)


async def request_stats_recompute(resources: Resources, user_id: uuid.UUID) -> bool:
    """THE HOOK where a merge asks for the user's statistics and streaks to be recomputed.

    The dirty marks (``stats_dirty_days``, ``streak_dirty``) are already committed, so this enqueue is
    best effort: a lost one delays the recompute (the analytics planner sweeps marks that waited too
    long), it loses no data. It is delayed by ``sync_recompute_debounce_ms`` and deduplicated per user
    (``recompute-<user>``), so a phone uploading ten batches in a row costs one recompute. A worker whose
    registry has no analytics job type enqueues nothing: the marks wait. Returns whether one was requested.
    """
    if resources.registry.find(analytics_jobs.RECOMPUTE_JOB) is None:
        return False
    try:
        await analytics_jobs.request_recompute(
            resources, [user_id], delay_ms=resources.settings.sync_recompute_debounce_ms
        )
    except Exception:
        log.exception("could not request a statistics recompute for user %s (the dirty marks wait)", user_id)
        return False
    return True


async def retired_purge(_ctx: JobContext, _payload: Purge) -> dict[str, Any]:
    """``sync.purge`` was the periodic job before ``maintenance.retention`` took its work over; a
    scheduler an older worker registered in Redis may still fire it, harmlessly."""
    return {"retired": "tombstones and uploads are purged by maintenance.retention"}


JOBS: list[JobSpec[Any]] = [
    JobSpec(
        service.APPLY_JOB,
        SYNC,
        ApplyBatch,
        apply_batch,
        policy=RetryPolicy(attempts=10, base_delay_s=1, max_delay_s=60),
        description="merge an uploaded batch of offline mutations",
        fair=True,
        on_final_failure=on_batch_job_failed,
        awaiting=awaiting_batches,
    ),
    JobSpec(
        PURGE_JOB,
        SCHEDULER,
        Purge,
        retired_purge,
        policy=NO_RETRY,
        description="retired: maintenance.retention purges old tombstones and uploads",
    ),
]


def schedules(_settings: Settings) -> list[Schedule]:
    return []
