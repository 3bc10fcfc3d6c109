"""Response bodies of the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from habitjobs.queue.inspect import JobView
from habitjobs.queue.monitor import WorkerInfo
from habitjobs.queue.operations import JobPage, QueueSummary


class QueueOut(BaseModel):
    name: str
    description: str
    paused: bool
    counts: dict[str, int]

    @classmethod
    def of(cls, summary: QueueSummary) -> QueueOut:
        return cls(
            name=summary.name, description=summary.description, paused=summary.paused, counts=summary.counts
        )


class JobSummaryOut(BaseModel):
    id: str
    name: str
    state: str
    attempts_made: int
    max_attempts: int
    created_at: datetime | None
    finished_at: datetime | None
    failed_reason: str | None


class JobDetailOut(JobSummaryOut):
    queue: str
    data: dict[str, Any]
    options: dict[str, Any]
    progress: Any
    processed_at: datetime | None
    delay_ms: int
    return_value: Any
    stacktrace: list[str]
    logs: list[str]

    @classmethod
    def of(cls, view: JobView) -> JobDetailOut:
        return cls(
            id=view.id,
            name=view.name,
            state=view.state,
            attempts_made=view.attempts_made,
            max_attempts=view.max_attempts,
            created_at=view.created_at,
            finished_at=view.finished_at,
            failed_reason=view.failed_reason,
            queue=view.queue,
            data=view.data,
            options=view.options,
            progress=view.progress,
            processed_at=view.processed_at,
            delay_ms=view.delay_ms,
            return_value=view.return_value,
            stacktrace=view.stacktrace,
            logs=view.logs,
        )


class JobPageOut(BaseModel):
    queue: str
    state: str
    page: int
    page_size: int
    total: int
    jobs: list[JobSummaryOut]

    @classmethod
    def of(cls, page: JobPage) -> JobPageOut:
        return cls(
            queue=page.queue,
            state=page.state,
            page=page.page,
            page_size=page.page_size,
            total=page.total,
            jobs=[
                JobSummaryOut(
                    id=v.id,
                    name=v.name,
                    state=v.state,
                    attempts_made=v.attempts_made,
                    max_attempts=v.max_attempts,
                    created_at=v.created_at,
                    finished_at=v.finished_at,
                    failed_reason=v.failed_reason,
                )
                for v in page.jobs
            ],
        )


class RetriedOut(BaseModel):
    queue: str
    retried: int


class WorkerOut(BaseModel):
    """A worker connected now: its queue, its name (host:pid), its Redis connection's address and age."""

    queue: str
    name: str
    addr: str
    age_s: int
    idle_s: int

    @classmethod
    def of(cls, worker: WorkerInfo) -> WorkerOut:
        return cls(
            queue=worker.queue, name=worker.name, addr=worker.addr, age_s=worker.age_s, idle_s=worker.idle_s
        )
