"""``GET /v1/jobs/{job_id}``: the state of a background job the caller started."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, JsonValue

from habitjobs.api.deps import CurrentUser, ResourcesDep
from habitjobs.api.openapi import error_responses
from habitjobs.bounds import SafeText
from habitjobs.errors import NotFound
from habitjobs.queue.inspect import get_job
from habitjobs.queue.outbox import find_owned

router = APIRouter(prefix="/v1", tags=["jobs"])

JobId = Annotated[SafeText, Path(min_length=1, max_length=256, description="the job_id a route answered")]


# pending (committed, not yet queued) | waiting | delayed | prioritized | active | completed | failed
# | expired (finished and cleaned up by retention); waiting-children and unknown come from the queue.
JobState = Literal[
    "pending",
    "waiting",
    "waiting-children",
    "delayed",
    "prioritized",
    "active",
    "completed",
    "failed",
    "expired",
    "unknown",
]
# A job's progress and result: any JSON value the job reported.
JobValue = int | float | str | bool | dict[str, JsonValue] | list[JsonValue] | None


class JobOut(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    id: str
    name: str
    queue: str
    state: JobState
    progress: JobValue = None
    attempts_made: int = 0
    max_attempts: int = 1
    failed_reason: str | None = None
    result: JobValue = None
    created_at: datetime | None = None
    processed_at: datetime | None = None
    finished_at: datetime | None = None


@router.get("/jobs/{job_id}", responses=error_responses(404))
async def job_status(job_id: JobId, user_id: CurrentUser, resources: ResourcesDep) -> JobOut:
    async with resources.db.transaction() as session:
        row = await find_owned(session, job_id, user_id)
    if row is None:
        raise NotFound(f"job {job_id} not found")
    view = await get_job(resources.producer, row.queue, job_id)
    if view is None:
        # Not in Redis: either still in the outbox, or finished long enough ago to be cleaned up.
        state = "pending" if row.enqueued_at is None else "expired"
        return JobOut(id=job_id, name=row.job_name, queue=row.queue, state=state, created_at=row.created_at)
    return JobOut(
        id=view.id,
        name=view.name,
        queue=view.queue,
        state=view.state,
        progress=view.progress,
        attempts_made=view.attempts_made,
        max_attempts=view.max_attempts,
        failed_reason=view.failed_reason,
        result=view.return_value if view.state == "completed" else None,
        created_at=view.created_at,
        processed_at=view.processed_at,
        finished_at=view.finished_at,
    )
