"""Reading job state out of Redis, in our own shapes (bullmq's objects do not leave this package)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bullmq import Job

from habitjobs.queue.producer import Producer


def _ms(value: Any) -> datetime | None:
    try:
        millis = int(value or 0)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(millis / 1000, UTC) if millis > 0 else None


@dataclass(frozen=True)
class JobView:
    id: str
    name: str
    queue: str
    state: str
    progress: Any
    attempts_made: int
    max_attempts: int
    created_at: datetime | None
    processed_at: datetime | None
    finished_at: datetime | None
    delay_ms: int
    failed_reason: str | None
    return_value: Any
    data: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    stacktrace: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)


_CONSISTENT_READS = 5


def view_of(
    job: Job, queue: str, state: str, logs: list[str] | None = None, *, policy_attempts: int | None = None
) -> JobView:
    """``policy_attempts``: the attempts the worker enforces for this job type (the stored options may say
    otherwise when another producer, e.g. NestJS, added the job)."""
    opts = dict(job.opts or {})
    return JobView(
        id=str(job.id),
        name=str(job.name),
        queue=queue,
        state=state,
        progress=job.progress,
        attempts_made=int(job.attemptsMade or 0),
        max_attempts=policy_attempts or max(1, int(opts.get("attempts") or 1)),
        created_at=_ms(job.timestamp),
        processed_at=_ms(job.processedOn),
        finished_at=_ms(job.finishedOn),
        delay_ms=int(job.delay or 0),
        failed_reason=job.failedReason,
        return_value=job.returnvalue,
        data=job.data if isinstance(job.data, dict) else {"value": job.data},
        options=opts,
        stacktrace=list(job.stacktrace or []),
        logs=logs or [],
    )


async def get_job(producer: Producer, queue: str, job_id: str, *, with_logs: bool = False) -> JobView | None:
    handle = producer.queue(queue)
    # The job's hash and its state are two reads: a job finishing in between would show "completed" with
    # the hash of its active run (no attempt counted, no result). Read the state on both sides of the
    # hash, until both agree.
    state = await handle.getJobState(job_id)
    for _ in range(_CONSISTENT_READS):
        job = await handle.getJob(job_id)
        if job is None:
            return None
        before, state = state, await handle.getJobState(job_id)
        if state == before:
            break
    logs: list[str] = []
    if with_logs:
        result = await handle.getJobLogs(job_id)
        logs = list(result.get("logs", []))
    return view_of(job, queue, str(state), logs, policy_attempts=policy_attempts(producer, str(job.name)))


def policy_attempts(producer: Producer, name: str) -> int | None:
    spec = producer.registry.find(name)
    return spec.policy.attempts if spec else None
