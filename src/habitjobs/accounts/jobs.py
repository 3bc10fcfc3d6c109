"""Job types of the accounts domain."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict

from habitjobs.accounts import service
from habitjobs.queue.names import DEFAULT
from habitjobs.queue.registry import JobContext, JobSpec
from habitjobs.queue.retry import RetryPolicy


class ExportData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    export_id: uuid.UUID


async def export_data(ctx: JobContext, payload: ExportData) -> dict[str, Any]:
    async with ctx.resources.db.transaction() as session:
        rows = await service.build_export(session, payload.export_id, ctx.resources.clock.now())
    return {"export_id": str(payload.export_id), "rows": rows, "already_done": rows is None}


JOBS: list[JobSpec[Any]] = [
    JobSpec(
        service.EXPORT_JOB,
        DEFAULT,
        ExportData,
        export_data,
        policy=RetryPolicy(attempts=5, base_delay_s=5, max_delay_s=300),
        description="assemble a copy of all of a user's data",
    ),
]
