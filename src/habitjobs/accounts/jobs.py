"""Job types of the accounts domain."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from habitjobs.accounts import repository as repo
from habitjobs.accounts import service
from habitjobs.queue.names import DEFAULT
from habitjobs.queue.registry import Awaited, AwaitedPage, AwaitedScan, FailedJob, JobContext, JobSpec
from habitjobs.queue.retry import RetryPolicy

if TYPE_CHECKING:
    from habitjobs.resources import Resources


class ExportData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    export_id: uuid.UUID


async def export_data(ctx: JobContext, payload: ExportData) -> dict[str, Any]:
    async with ctx.resources.db.transaction() as session:
        rows = await service.build_export(session, payload.export_id, ctx.resources.clock.now())
    return {"export_id": str(payload.export_id), "rows": rows, "already_done": rows is None}


async def on_export_failed(resources: Resources, failed: FailedJob) -> None:
    """The export job failed for good: the export is ``failed`` with the reason (a retry of the job by an
    operator builds it after all: a failed export is built like a queued one)."""
    try:
        export_id = ExportData.model_validate(failed.data).export_id
    except ValueError:
        return
    async with resources.db.transaction() as session:
        await repo.fail_export(session, export_id, f"the export job failed: {failed.reason}")


async def awaiting_exports(resources: Resources, scan: AwaitedScan) -> AwaitedPage:
    async with resources.db.transaction() as session:
        rows = await repo.open_exports(session, scan.older_than, scan.after, scan.limit)
    jobs = [
        Awaited(job_id, {"export_id": str(export_id)}, (requested_at, str(export_id)))
        for export_id, job_id, requested_at in rows
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
        on_final_failure=on_export_failed,
        awaiting=awaiting_exports,
    ),
]
