"""Job types of the accounts domain."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict

from habitjobs.accounts import service
from habitjobs.errors import PermanentFailure
from habitjobs.queue.names import DEFAULT
from habitjobs.queue.registry import JobContext, JobSpec
from habitjobs.queue.retry import RetryPolicy


class ExportData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    export_id: uuid.UUID


async def export_data(ctx: JobContext, payload: ExportData) -> dict[str, Any]:
    """Build the export. Over the size cap it fails at once with the reason; after its last attempt it
    fails for good: either way the export shows ``failed`` with the reason, and the user may ask again."""
    resources = ctx.resources
    settings = resources.settings
    async with resources.db.transaction() as session:
        await service.start_export(session, payload.export_id)
    try:
        async with resources.db.transaction() as session:
            rows = await service.build_export(
                session,
                payload.export_id,
                resources.clock.now(),
                max_bytes=settings.export_max_bytes,
                keep_s=settings.export_keep_s,
            )
    except Exception as exc:
        permanent = isinstance(exc, PermanentFailure)
        if permanent or ctx.attempt >= ctx.max_attempts:
            reason = exc.message if isinstance(exc, PermanentFailure) else "the export could not be built"
            async with resources.db.transaction() as session:
                await service.fail_export(
                    session, payload.export_id, reason, resources.clock.now(), settings.export_keep_s
                )
        raise
    return {"export_id": str(payload.export_id), "rows": rows, "already_done": rows is None}


JOBS: list[JobSpec[Any]] = [
    JobSpec(
        service.EXPORT_JOB,
        DEFAULT,
        ExportData,
        export_data,
        policy=RetryPolicy(attempts=5, base_delay_s=5, max_delay_s=300),
        description="assemble a copy of all of a user's data",
        fair=True,
    ),
]
