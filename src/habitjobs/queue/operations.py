"""What an operator does with jobs: look at queues, read a failed job's stack traces, retry, remove,
promote, pause. One service, used by the admin API and the CLI alike."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from habitjobs.errors import Conflict, InvalidInput, NotFound
from habitjobs.queue.failures import removal_record, removed_key
from habitjobs.queue.inspect import JobView, get_job, policy_attempts, view_of
from habitjobs.queue.monitor import (
    QueueMetrics,
    WorkerInfo,
    live_workers,
    oldest_waiting_age_s,
    queue_metrics,
)
from habitjobs.queue.names import QUEUES
from habitjobs.queue.producer import Producer
from habitjobs.queue.reconcile import read_stats

State = Literal[
    "waiting", "active", "delayed", "prioritized", "completed", "failed", "paused", "waiting-children"
]
STATES: tuple[State, ...] = (
    "waiting",
    "active",
    "delayed",
    "prioritized",
    "completed",
    "failed",
    "paused",
    "waiting-children",
)
log = logging.getLogger(__name__)
MAX_PAGE_SIZE = 500
# Retrying everything reads the failed set in pages of this many jobs.
_SCAN_PAGE = 500


@dataclass(frozen=True)
class QueueSummary:
    name: str
    description: str
    paused: bool
    counts: dict[str, int]


@dataclass(frozen=True)
class QueueHealth:
    """A queue as the dashboard's overview shows it."""

    summary: QueueSummary
    last_hour: QueueMetrics
    oldest_waiting_s: float | None
    workers: int | None  # None: unknown (the Redis server refused CLIENT LIST)


@dataclass(frozen=True)
class JobFilter:
    """What a job list may be narrowed to; times in epoch milliseconds (created or finished within)."""

    name: str | None = None
    text: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    @property
    def empty(self) -> bool:
        return not (self.name or self.text or self.since_ms or self.until_ms)


@dataclass(frozen=True)
class SearchPage:
    queue: str
    state: str
    page: int
    page_size: int
    total: int  # jobs in the state
    scanned: int  # how many of them this search looked at (all, unless the scan limit was reached)
    more: bool  # a next page exists (or the scan stopped early)
    jobs: list[JobView]


# A filtered search reads at most this many jobs of a state (newest first), in pages.
SCAN_LIMIT = 20_000


@dataclass(frozen=True)
class JobPage:
    queue: str
    state: str
    page: int
    page_size: int
    total: int
    jobs: list[JobView]


class JobOperations:
    def __init__(self, producer: Producer) -> None:
        self._producer = producer

    def _queue(self, name: str) -> Any:
        if name not in QUEUES:
            raise NotFound(f"no queue named {name!r}; queues: {', '.join(QUEUES)}")
        return self._producer.queue(name)

    async def queues(self) -> list[QueueSummary]:
        out = []
        for name, defaults in QUEUES.items():
            handle = self._queue(name)
            counts = await handle.getJobCounts(*STATES)
            out.append(
                QueueSummary(
                    name=name,
                    description=defaults.description,
                    paused=bool(await handle.isPaused()),
                    counts={state: int(counts.get(state, 0)) for state in STATES},
                )
            )
        return out

    async def overview(self) -> list[QueueHealth]:
        """Every queue: counts, the last hour's completed and failed jobs, the oldest wait, workers."""
        redis, prefix = self._producer.redis, self._producer.prefix
        workers: list[WorkerInfo] | None
        try:
            workers = await self.workers()
        except Exception as exc:  # a managed Redis may refuse CLIENT LIST: the rest is still worth showing
            log.warning("workers unknown: CLIENT LIST failed: %s", exc)
            workers = None
        out = []
        for summary in await self.queues():
            out.append(
                QueueHealth(
                    summary=summary,
                    last_hour=await queue_metrics(redis, prefix, summary.name),
                    oldest_waiting_s=await oldest_waiting_age_s(redis, prefix, summary.name),
                    workers=None if workers is None else sum(1 for w in workers if w.queue == summary.name),
                )
            )
        return out

    async def workers(self, queue: str | None = None) -> list[WorkerInfo]:
        """Workers connected now (by their Redis client names), of one queue or all."""
        names = [queue] if queue is not None else list(QUEUES)
        if queue is not None:
            self._queue(queue)
        return await live_workers(self._producer.redis, self._producer.prefix, names)

    async def search_jobs(
        self, queue: str, state: str, where: JobFilter, *, page: int = 0, page_size: int = 50
    ) -> SearchPage:
        """Jobs of one state, newest first, narrowed by ``where``.

        Without a filter this is one range read of the state's list or sorted set (fast at any size).
        With one, the state is read newest first in pages until the page is filled, at most
        :data:`SCAN_LIMIT` jobs: the answer says how many were looked at."""
        if not where.empty:
            plain = await self.list_jobs(queue, state, page=0, page_size=1)
        else:
            plain = await self.list_jobs(queue, state, page=page, page_size=page_size)
            more = (page + 1) * page_size < plain.total
            return SearchPage(queue, state, page, page_size, plain.total, len(plain.jobs), more, plain.jobs)
        handle = self._queue(queue)
        wanted_from, wanted_to = page * page_size, (page + 1) * page_size
        matched: list[JobView] = []
        matches = scanned = 0
        text = (where.text or "").lower()
        while scanned < min(plain.total, SCAN_LIMIT) and matches <= wanted_to:
            jobs = await handle.getJobs([state], scanned, scanned + _SCAN_PAGE - 1, asc=False)
            if not jobs:
                break
            scanned += len(jobs)
            for job in jobs:
                if where.name and job.name != where.name:
                    continue
                stamp = int(job.finishedOn or job.timestamp or 0)
                if where.since_ms and stamp < where.since_ms:
                    continue
                if where.until_ms and stamp > where.until_ms:
                    continue
                if text:
                    haystack = f"{job.data} {job.failedReason or ''} {' '.join(job.stacktrace or [])}"
                    if text not in haystack.lower():
                        continue
                if wanted_from <= matches < wanted_to:
                    policy = policy_attempts(self._producer, str(job.name))
                    matched.append(view_of(job, queue, state, policy_attempts=policy))
                matches += 1
        more = matches > wanted_to or (scanned < plain.total and matches >= wanted_to)
        return SearchPage(queue, state, page, page_size, plain.total, scanned, more, matched)

    async def list_jobs(self, queue: str, state: str, *, page: int = 0, page_size: int = 50) -> JobPage:
        """Jobs of one state, newest first."""
        if state not in STATES:
            raise InvalidInput(f"unknown state {state!r}; one of {', '.join(STATES)}", field="state")
        if page < 0:
            raise InvalidInput("page must be >= 0", field="page")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}", field="page_size")
        handle = self._queue(queue)
        total = int((await handle.getJobCounts(state)).get(state, 0))
        start = page * page_size
        jobs = await handle.getJobs([state], start, start + page_size - 1, asc=False)
        return JobPage(
            queue=queue,
            state=state,
            page=page,
            page_size=page_size,
            total=total,
            jobs=[
                view_of(job, queue, state, policy_attempts=policy_attempts(self._producer, str(job.name)))
                for job in jobs
            ],
        )

    async def job(self, queue: str, job_id: str) -> JobView:
        """Everything about one job, logs and every attempt's stack trace included."""
        self._queue(queue)
        view = await get_job(self._producer, queue, job_id, with_logs=True)
        if view is None:
            raise NotFound(f"no job {job_id!r} in queue {queue!r}")
        return view

    async def _job_in(self, queue: str, job_id: str, *, state: str | None = None, verb: str = "") -> Any:
        """The job, or NotFound; with ``state``, Conflict unless the job is in that state now."""
        handle = self._queue(queue)
        job = await handle.getJob(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r} in queue {queue!r}")
        if state is not None:
            now = await handle.getJobState(job_id)
            if now != state:
                raise Conflict(f"job {job_id!r} is {now}, only {state} jobs can be {verb}", state=now)
        return job

    async def retry(self, queue: str, job_id: str) -> JobView:
        """Put a failed job back in the queue with its attempts counted from zero again."""
        job = await self._job_in(queue, job_id, state="failed", verb="retried")
        try:
            await job.retry("failed", {"resetAttemptsMade": True, "resetAttemptsStarted": True})
        except Exception as exc:  # bullmq reports a lost race (retried meanwhile) as a plain Exception
            raise Conflict(f"job {job_id!r} could not be retried: {exc}") from exc
        return await self.job(queue, job_id)

    async def retry_failed(self, queue: str, *, name: str | None = None) -> int:
        """Retry every job failed *now* in ``queue`` (only those named ``name`` if given).

        The failed set is read first, then each job is retried on its own (atomically, with attempts
        reset), so jobs failing while this runs are not swept up, and a job retried meanwhile by
        someone else is simply skipped.
        """
        handle = self._queue(queue)
        selected: list[Any] = []
        start = 0
        while True:
            jobs = await handle.getJobs(["failed"], start, start + _SCAN_PAGE - 1, asc=True)
            selected.extend(j for j in jobs if name is None or j.name == name)
            if len(jobs) < _SCAN_PAGE:
                break
            start += _SCAN_PAGE
        retried = 0
        for job in selected:
            try:
                await job.retry("failed", {"resetAttemptsMade": True, "resetAttemptsStarted": True})
            except Exception as exc:  # no longer failed (retried or removed meanwhile)
                log.info("job %s not retried: %s", job.id, exc)
                continue
            retried += 1
        return retried

    async def remove(self, queue: str, job_id: str) -> None:
        """Delete a job. Its domain is told as for a failure ("removed by an operator") by the next
        reconciliation run, which also keeps it from enqueueing the job again."""
        job = await self._job_in(queue, job_id)
        if not await self._queue(queue).remove(job_id):
            raise Conflict(f"job {job_id!r} is being processed (locked) and cannot be removed now")
        if self._producer.registry.find(str(job.name)) is not None:
            record = removal_record(str(job.name), job.data, "removed by an operator")
            await self._producer.redis.hset(removed_key(self._producer.prefix), job_id, record)

    async def promote(self, queue: str, job_id: str) -> JobView:
        """Run a delayed job (a retry waiting out its backoff, or a scheduled job) now."""
        job = await self._job_in(queue, job_id, state="delayed", verb="promoted")
        await job.promote()
        return await self.job(queue, job_id)

    async def reconciliation(self) -> dict[str, str]:
        """What the reconciliation runs did so far (``runs``, ``last_run_at``, ``last_*``, ``total_*``)."""
        return await read_stats(self._producer)

    async def pause(self, queue: str) -> None:
        """Workers stop taking this queue's jobs (active ones finish); producers can still add."""
        await self._queue(queue).pause()

    async def resume(self, queue: str) -> None:
        await self._queue(queue).resume()
