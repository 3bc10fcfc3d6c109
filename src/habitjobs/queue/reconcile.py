"""Reconciliation: domain rows that wait on a job Redis no longer has get their job back.

The outbox makes an enqueue survive a crash between commit and enqueue; it cannot help once Redis has
acknowledged the job and then loses it (a host crash with ``appendfsync everysec``, a failover to a
replica that lagged, a restore from an older copy). PostgreSQL still knows what is waiting: each job type
whose rows wait on its jobs declares an ``awaiting`` scan (its ``jobs.py``). Every run:

1. jobs an operator removed are settled as failures (their rows stop waiting), so that step 2 does not
   bring them back;
2. for each such job type, the rows older than ``HABITJOBS_RECONCILE_GRACE_S`` are read (at most
   ``HABITJOBS_RECONCILE_LIMIT`` per run, continuing where the previous run stopped, so a long backlog
   is covered over several runs) and their jobs looked up in Redis in one round trip:
   - missing → enqueued again under the same deterministic id (a job that is back meanwhile makes this a
     no-op: BullMQ ignores an id it has);
   - failed for good → the failure is settled (:mod:`habitjobs.queue.failures`): the worker that failed
     it died before telling the domain, or the database was away then;
   - completed while its rows still wait → counted and logged (a handler that returned without finishing
     its rows: a bug, nothing to re-run);
   - waiting, delayed, active → nothing to do.

When nothing is wrong a run costs one indexed query per job type (on open rows only) and one pipelined
round trip to Redis. Counts go to the log (a warning when jobs had to be enqueued again) and to a Redis
hash that ``habitjobs jobs reconciliation`` shows.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from habitjobs.queue.failures import failed_from_record, removed_key, settle_final_failure
from habitjobs.queue.producer import EnqueueRequest, Producer
from habitjobs.queue.registry import Awaited, AwaitedScan, FailedJob, JobSpec, Position

if TYPE_CHECKING:
    from habitjobs.queue.context import QueueResources

log = logging.getLogger(__name__)

_CURSOR_TTL_S = 24 * 3600
_FIELDS_PER_JOB = 5


@dataclass
class ReconcileReport:
    checked: int = 0  # jobs that rows wait on, looked up in Redis
    requeued: int = 0  # gone from Redis: enqueued again under their own id
    settled: int = 0  # failed for good while their rows still waited: the domain was told
    removed: int = 0  # removed by an operator: the domain was told
    completed_waiting: int = 0  # completed although rows still wait on them (logged, left alone)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def stats_key(prefix: str) -> str:
    return f"{prefix}:reconcile:stats"


def _cursor_key(prefix: str, job_name: str) -> str:
    return f"{prefix}:reconcile:after:{job_name}"


def _encode(position: Position) -> str:
    return f"{position[0].isoformat()}|{position[1]}"


def _decode(raw: str | None) -> Position | None:
    if not raw or "|" not in raw:
        return None
    stamp, _, ident = raw.partition("|")
    try:
        return datetime.fromisoformat(stamp), ident
    except ValueError:
        return None


async def reconcile(resources: QueueResources) -> ReconcileReport:
    """One reconciliation run (see the module)."""
    settings = resources.settings
    report = ReconcileReport()
    await _settle_removals(resources, report)
    older_than = resources.clock.now() - timedelta(seconds=settings.reconcile_grace_s)
    for spec in resources.registry:
        if spec.awaiting is not None:
            await _reconcile_type(resources, spec, older_than, report)
    await _record(resources.producer, report, resources.clock.now())
    if report.requeued:
        log.warning(
            "reconciliation: Redis had lost %d job(s) that rows still waited on; enqueued them again (%s)",
            report.requeued,
            report.as_dict(),
        )
    elif report.settled or report.removed or report.completed_waiting:
        log.info("reconciliation: %s", report.as_dict())
    return report


async def _settle_removals(resources: QueueResources, report: ReconcileReport) -> None:
    redis = resources.producer.redis
    key = removed_key(resources.settings.queue_prefix)
    pending: dict[str, str] = await redis.hgetall(key)
    for job_id, raw in pending.items():
        try:
            failed = failed_from_record(job_id, raw)
        except (ValueError, KeyError, TypeError):
            log.warning("dropping an unreadable removal record for job %s", job_id)
            await redis.hdel(key, job_id)
            continue
        await settle_final_failure(resources, failed)
        await redis.hdel(key, job_id)
        report.removed += 1


async def _reconcile_type(
    resources: QueueResources, spec: JobSpec[Any], older_than: datetime, report: ReconcileReport
) -> None:
    assert spec.awaiting is not None
    settings = resources.settings
    producer = resources.producer
    cursor = _cursor_key(settings.queue_prefix, spec.name)
    after = _decode(await producer.redis.get(cursor))
    page = await spec.awaiting(resources, AwaitedScan(older_than, after, settings.reconcile_limit))
    if page.next_after is None:
        await producer.redis.delete(cursor)
    else:
        await producer.redis.set(cursor, _encode(page.next_after), ex=_CURSOR_TTL_S)
    jobs: dict[str, Awaited] = {}
    for job in page.jobs:
        jobs.setdefault(job.job_id, job)
    if not jobs:
        return
    report.checked += len(jobs)
    states = await _job_states(producer, spec.queue, list(jobs))
    lost: list[Awaited] = []
    for job_id, (state, reason) in states.items():
        if state == "missing":
            lost.append(jobs[job_id])
        elif state == "failed":
            failed = FailedJob(job_id, spec.name, jobs[job_id].data, reason or "failed")
            await settle_final_failure(resources, failed)
            report.settled += 1
        elif state == "completed":
            log.warning("job %s (%s) completed but rows still wait on it", job_id, spec.name)
            report.completed_waiting += 1
    if lost:
        await producer.enqueue_many([EnqueueRequest(spec.name, job.data, job_id=job.job_id) for job in lost])
        report.requeued += len(lost)
        log.info("enqueued again (lost by Redis): %s", ", ".join(job.job_id for job in lost[:20]))


async def _job_states(
    producer: Producer, queue: str, job_ids: list[str]
) -> dict[str, tuple[str, str | None]]:
    """Each job's state as far as reconciliation cares: missing, failed (with its reason), completed,
    removed (an operator's removal not settled yet), or pending (waiting, delayed, active)."""
    base = f"{producer.prefix}:{queue}"
    removed = removed_key(producer.prefix)
    async with producer.redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.exists(f"{base}:{job_id}")
            pipe.zscore(f"{base}:failed", job_id)
            pipe.zscore(f"{base}:completed", job_id)
            pipe.hget(f"{base}:{job_id}", "failedReason")
            pipe.hexists(removed, job_id)
        answers = await pipe.execute()
    states: dict[str, tuple[str, str | None]] = {}
    for index, job_id in enumerate(job_ids):
        exists, failed, completed, reason, being_removed = answers[
            index * _FIELDS_PER_JOB : (index + 1) * _FIELDS_PER_JOB
        ]
        if being_removed:
            states[job_id] = ("removed", None)
        elif not exists:
            states[job_id] = ("missing", None)
        elif failed is not None:
            states[job_id] = ("failed", reason)
        elif completed is not None:
            states[job_id] = ("completed", None)
        else:
            states[job_id] = ("pending", None)
    return states


async def _record(producer: Producer, report: ReconcileReport, now: datetime) -> None:
    values = report.as_dict()
    async with producer.redis.pipeline(transaction=True) as pipe:
        pipe.hincrby(stats_key(producer.prefix), "runs", 1)
        for field, value in values.items():
            if value:
                pipe.hincrby(stats_key(producer.prefix), f"total_{field}", value)
        pipe.hset(
            stats_key(producer.prefix),
            mapping={"last_run_at": now.isoformat(), **{f"last_{k}": v for k, v in values.items()}},
        )
        await pipe.execute()


async def read_stats(producer: Producer) -> dict[str, str]:
    """What the runs so far did: ``runs``, ``last_run_at``, ``last_<count>`` and ``total_<count>``."""
    stats: dict[str, str] = await producer.redis.hgetall(stats_key(producer.prefix))
    return stats
