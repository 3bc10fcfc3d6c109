"""Job types of the accounts domain."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from habitjobs.accounts import deletion, service
from habitjobs.accounts import repository as repo
from habitjobs.dashboard.sessions import for_settings as dashboard_sessions
from habitjobs.errors import RetryLater
from habitjobs.queue.forget import forget
from habitjobs.queue.names import DEFAULT
from habitjobs.queue.registry import Awaited, AwaitedPage, AwaitedScan, FailedJob, JobContext, JobSpec
from habitjobs.queue.retry import RetryPolicy

if TYPE_CHECKING:
    from habitjobs.resources import Resources

# A deletion that finds jobs of the user running waits this long for them to finish, then looks again.
_BUSY_RETRY_S = 5.0


class ExportData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    export_id: uuid.UUID


async def export_data(ctx: JobContext, payload: ExportData) -> dict[str, Any]:
    """Build the export. Over the size cap it fails at once (no retries); however it ends failed, the
    export shows ``failed`` with the reason (:func:`on_export_failed`), and the user may ask again."""
    resources = ctx.resources
    settings = resources.settings
    async with resources.db.transaction() as session:
        await service.start_export(session, payload.export_id)
    async with resources.db.transaction() as session:
        rows = await service.build_export(
            session,
            payload.export_id,
            resources.clock.now(),
            max_bytes=settings.export_max_bytes,
            keep_s=settings.export_keep_s,
        )
    return {"export_id": str(payload.export_id), "rows": rows, "already_done": rows is None}


class DeleteUser(BaseModel):
    """Carries the deletion's id only: the job's record in Redis never holds the user's id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deletion_id: uuid.UUID


async def delete_user(ctx: JobContext, payload: DeleteUser) -> dict[str, Any]:
    """Erase every row of the user, their jobs in the queues, then the user (see ``accounts.deletion``).

    Safe to run twice and to resume after a crash: each chunk commits with its count; a retry finds
    fewer rows; the last transaction happens once.
    """
    resources = ctx.resources
    deletion_id = payload.deletion_id
    answer: dict[str, Any] = {"deletion_id": str(deletion_id)}
    now = resources.clock.now()
    async with resources.db.transaction() as session:
        found = await deletion.start(session, deletion_id, now)
    if found is None or found.status in deletion.FINAL:
        return {**answer, "status": "missing" if found is None else found.status}
    if found.status == "scheduled":
        raise RetryLater("the grace period has not ended", after_s=(found.not_before - now).total_seconds())
    assert found.user_id is not None
    user_id, needle, keep = found.user_id, str(found.user_id), {ctx.job_id}
    # The user's queued jobs go first, so that none of them writes rows behind the erasure.
    async with resources.db.transaction() as session:
        staged = await deletion.jobs_of(session, user_id)
    report = await forget(resources.producer, needle, job_ids=staged, keep=keep)
    async with resources.db.transaction() as session:
        targets = await deletion.plan(session)
    chunk, rows = resources.settings.account_deletion_chunk_rows, found.rows_deleted
    for target in targets:
        while True:
            async with resources.db.transaction() as session:
                erased = await deletion.erase_chunk(session, deletion_id, target, user_id, chunk)
            rows += erased
            if erased:
                await ctx.progress({"table": target.table, "rows_deleted": rows})
            if erased < chunk:
                break
    # Then every record of the user's jobs, finished ones included, and the queue events naming them.
    report = report.add(await forget(resources.producer, needle, finished=True, events=True, keep=keep))
    # Their dashboard sessions (an administrator's) name them too.
    await dashboard_sessions(resources.producer.redis, resources.settings).close_all_of(user_id)
    if report.busy and ctx.attempt < ctx.max_attempts:
        raise RetryLater(
            f"{report.busy} job(s) of the user are running; erasing after they end", after_s=_BUSY_RETRY_S
        )
    async with resources.db.transaction() as session:
        rows += await deletion.finish(session, deletion_id, user_id, targets, resources.clock.now())
    return {
        **answer,
        "status": "done",
        "rows_deleted": rows,
        "jobs_removed": report.removed,
        "events_removed": report.events,
    }


async def on_export_failed(resources: Resources, failed: FailedJob) -> None:
    """The export job failed for good (over the size cap, out of attempts, stalled, removed): the export
    is ``failed`` with the reason, and the user may request another."""
    try:
        export_id = ExportData.model_validate(failed.data).export_id
    except ValueError:
        return
    # A reason of the handler's own (over the size cap) reads as it is; any other is the job's.
    own = f"{service.EXPORT_JOB}: "
    reason = failed.reason
    reason = reason[len(own) :] if reason.startswith(own) else f"the export job failed: {reason}"
    async with resources.db.transaction() as session:
        await service.fail_export(
            session, export_id, reason, resources.clock.now(), resources.settings.export_keep_s
        )


async def awaiting_exports(resources: Resources, scan: AwaitedScan) -> AwaitedPage:
    async with resources.db.transaction() as session:
        rows = await repo.open_exports(session, scan.older_than, scan.after, scan.limit)
    jobs = [
        Awaited(job_id, {"export_id": str(export_id)}, (requested_at, str(export_id)))
        for export_id, job_id, requested_at in rows
    ]
    return AwaitedPage(jobs, jobs[-1].position if len(rows) >= scan.limit else None)


async def awaiting_deletions(resources: Resources, scan: AwaitedScan) -> AwaitedPage:
    """Deletions not carried out yet, and their jobs (a job Redis lost is enqueued again; one still in
    its grace period then waits again: the handler checks ``not_before``)."""
    async with resources.db.transaction() as session:
        rows = await repo.open_deletions(session, scan.older_than, scan.after, scan.limit)
    jobs = [
        Awaited(job_id, {"deletion_id": str(deletion_id)}, (requested_at, str(deletion_id)))
        for deletion_id, job_id, requested_at in rows
    ]
    return AwaitedPage(jobs, jobs[-1].position if len(rows) >= scan.limit else None)


JOBS: list[JobSpec[Any]] = [
    JobSpec(
        service.EXPORT_JOB,
        DEFAULT,
        ExportData,
        export_data,
        policy=RetryPolicy(attempts=5, base_delay_s=5, max_delay_s=300),
        description="assemble a copy of all of a user's data",
        fair=True,
        on_final_failure=on_export_failed,
        awaiting=awaiting_exports,
    ),
    JobSpec(
        deletion.DELETE_JOB,
        DEFAULT,
        DeleteUser,
        delete_user,
        policy=RetryPolicy(attempts=10, base_delay_s=5, max_delay_s=300),
        description="erase a user's account and every row and queued job that belongs to it",
        # No final-failure hook: a deletion that failed stays live (the account locked) until an operator
        # retries its job; a job Redis lost comes back through the reconciliation.
        awaiting=awaiting_deletions,
    ),
]
