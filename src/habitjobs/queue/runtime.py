"""The worker process: one bullmq Worker per queue, sharing one event loop (the Worker of
:mod:`habitjobs.queue.worker`: finishing a job fetches the next, on a pooled client of its own).

What it adds around bullmq:
- the registry lookup, payload validation and the mapping of our outcomes (``RetryLater``,
  ``PermanentFailure``) to bullmq moves, with the job type's retry policy enforced by the worker
  itself (so a job enqueued by another producer, e.g. NestJS, still gets our attempts and backoff);
- a stalled-job check at start, so a restarted worker recovers a crashed one's jobs without waiting a
  whole ``stalledInterval`` first (docs/engine.md, E5);
- job schedulers registered idempotently at start, and registered again when Redis lost them;
- a job's final failure handed to its domain (:mod:`habitjobs.queue.failures`), however it failed;
- a graceful stop: no new jobs, active ones finish within the grace period, then exit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bullmq import DelayedError, UnrecoverableError
from pydantic import ValidationError

from habitjobs.errors import PermanentFailure, RetryLater, SlowDown
from habitjobs.observability import context as log_context
from habitjobs.observability import job_runs as observe
from habitjobs.observability import tracing
from habitjobs.queue.connection import redis_kwargs, worker_client
from habitjobs.queue.context import QueueResources
from habitjobs.queue.failures import settle_final_failure
from habitjobs.queue.monitor import METRICS_DATA_POINTS, worker_client_name
from habitjobs.queue.names import BACKOFF_TYPE, QUEUES
from habitjobs.queue.registry import FailedJob, HandlerContext, Schedule
from habitjobs.queue.retry import DEFAULT_POLICY
from habitjobs.queue.watchdog import ActiveJob, LoopWatchdog
from habitjobs.queue.worker import Worker

log = logging.getLogger(__name__)

# A job told to slow down (:class:`SlowDown`) is delayed without counting an attempt while it is younger
# than this; after that a slow-down counts like any retry, so a provider that never stops refusing still
# ends the job within its attempts.
SLOW_DOWN_WINDOW_S = 1800.0


class WorkerRuntime:
    def __init__(
        self,
        resources: QueueResources,
        *,
        queues: Sequence[str] | None = None,
        concurrency: Mapping[str, int] | int | None = None,
        schedules: Sequence[Schedule] = (),
    ) -> None:
        self.resources = resources
        self.registry = resources.registry
        self.queues = list(queues) if queues else self.registry.queues
        unknown = [q for q in self.queues if q not in QUEUES]
        if unknown:
            raise ValueError(f"unknown queue(s): {', '.join(unknown)}; known: {', '.join(QUEUES)}")
        self._concurrency = concurrency
        self._schedules = list(schedules)
        self.workers: dict[str, Worker] = {}
        self._runs: list[asyncio.Task[Any]] = []
        self._stop_requested = asyncio.Event()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        # What this process is working on right now (read by the watchdog thread).
        self.active: dict[str, ActiveJob] = {}
        self.watchdog: LoopWatchdog | None = None
        # Final failures being handed to their domain.
        self._settling: set[asyncio.Task[None]] = set()
        self._keeper: asyncio.Task[None] | None = None

    def concurrency_for(self, queue: str) -> int:
        if isinstance(self._concurrency, int):
            return self._concurrency
        if self._concurrency and queue in self._concurrency:
            return self._concurrency[queue]
        return QUEUES[queue].concurrency

    def worker_options(self, queue: str) -> dict[str, Any]:
        s = self.resources.settings
        return {
            # A pooled client of its own (the worker closes it): docs/engine.md, E10.
            "connection": worker_client(s.require_redis_url()),
            "prefix": s.queue_prefix,
            "concurrency": self.concurrency_for(queue),
            "lockDuration": s.lock_duration_ms,
            "stalledInterval": s.stalled_interval_ms,
            "maxStalledCount": s.max_stalled_count,
            "autorun": False,
            "name": self.name,
            "settings": {"backoffStrategy": self._backoff_ms},
            # Jobs completed and failed per minute, kept a week: the dashboard's throughput and failure
            # rate, and what Bull Board and Node BullMQ's getMetrics read.
            "metrics": {"maxDataPoints": METRICS_DATA_POINTS},
            # For jobs whose producer set no retention (ours always do; a NestJS producer may not):
            # bullmq applies these to them, so they do not stay in Redis forever.
            "removeOnComplete": {"age": s.keep_completed_age_s, "count": s.keep_completed_count},
            "removeOnFail": {"age": s.keep_failed_age_s, "count": s.keep_failed_count},
        }

    # --- job execution ------------------------------------------------------------------------

    def _backoff_ms(self, attempts_made: int, _type: str, err: BaseException | None, job: Any) -> int:
        spec = self.registry.find(job.name)
        policy = spec.policy if spec else DEFAULT_POLICY
        retry_after = err.after_s if isinstance(err, RetryLater) else None
        return policy.delay_ms(attempts_made, retry_after_s=retry_after)

    async def _process(self, job: Any, token: str) -> Any:
        spec = self.registry.find(job.name)
        if spec is None:
            raise UnrecoverableError(
                f"unknown job name {job.name!r}: no handler is registered for it in queue {job.queue.name!r}"
            )
        # The worker, not the producer, is the authority on attempts and backoff.
        job.opts["attempts"] = spec.policy.attempts
        job.opts["backoff"] = {"type": BACKOFF_TYPE, "delay": round(spec.policy.base_delay_s * 1000)}
        data, request_id = log_context.take_request_id(job.data)
        try:
            payload = spec.parse(data)
        except ValidationError as exc:
            raise UnrecoverableError(f"invalid payload for {spec.name}: {_describe(exc)}") from exc
        ctx = HandlerContext(
            job_id=str(job.id),
            name=spec.name,
            queue=spec.queue,
            attempt=int(job.attemptsMade) + 1,
            max_attempts=spec.policy.attempts,
            resources=self.resources,
            _job=job,
        )
        self.active[ctx.job_id] = ActiveJob(ctx.job_id, spec.name, spec.queue, token)
        try:
            return await observe.run_job(
                spec.queue,
                spec.name,
                ctx.job_id,
                request_id,
                job.timestamp,
                lambda: spec.handler(ctx, payload),
                log_context.carried_trace(job.data) if tracing.ENABLED else None,
            )
        except PermanentFailure as exc:
            raise UnrecoverableError(f"{spec.name}: {exc.message}") from exc
        except SlowDown as exc:
            age_s = time.time() - float(job.timestamp or 0) / 1000
            if age_s >= SLOW_DOWN_WINDOW_S:
                raise  # counts as an attempt (a RetryLater)
            until_ms = round((time.time() + max(exc.after_s, 0.05)) * 1000)
            await job.moveToDelayed(until_ms, token)
            log.info(
                "job %s (%s) slowed down for %.1f s, no attempt counted: %s",
                job.id,
                spec.name,
                exc.after_s,
                exc.message,
            )
            raise DelayedError(exc.message) from exc
        finally:
            self.active.pop(ctx.job_id, None)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self._check_redis()
        s = self.resources.settings
        self.watchdog = LoopWatchdog(
            lambda: list(self.active.values()),
            redis_kwargs={**redis_kwargs(s.require_redis_url()), "socket_timeout": 5.0},
            prefix=s.queue_prefix,
            lock_duration_ms=s.lock_duration_ms,
            warn_after_ms=s.blocked_loop_warn_ms,
        )
        self.watchdog.start()
        for queue in self.queues:
            worker = Worker(queue, self._process, self.worker_options(queue))
            # The client name Node BullMQ's getWorkers() (and so Bull Board) recognises (queue/monitor.py).
            worker.clientName = worker_client_name(self.resources.settings.queue_prefix, queue, self.name)
            worker.on("failed", self._on_failed)
            worker.on("error", self._on_error)
            worker.on("stalled", lambda *_, q=queue: observe.stalled(q))
            worker.on("lockRenewalFailed", lambda ids, *_, q=queue: observe.lock_renewals_missed(q, len(ids)))
            self.workers[queue] = worker
        for queue, worker in self.workers.items():
            # bullmq's first stalled check comes a whole interval after start; do one now.
            await worker.runStalledJobsCheck()
            self._runs.append(asyncio.create_task(worker.run(), name=f"worker:{queue}"))
        await self._register_schedules(self._schedules)
        if self._schedules:
            self._keeper = asyncio.create_task(self._keep_schedules(), name="schedule-keeper")
        log.info(
            "worker %s started: %s",
            self.name,
            ", ".join(f"{q}×{self.concurrency_for(q)}" for q in self.queues),
        )

    async def _register_schedules(self, schedules: Sequence[Schedule]) -> None:
        producer = self.resources.producer
        for schedule in schedules:
            spec = self.registry.get(schedule.job_name)
            repeat: dict[str, Any] = (
                {"every": schedule.every_ms} if schedule.every_ms is not None else {"pattern": schedule.cron}
            )
            if schedule.tz:
                repeat["tz"] = schedule.tz
            # upsert is idempotent: every worker doing it at start still yields one scheduler.
            await producer.queue(spec.queue).upsertJobScheduler(
                schedule.scheduler_id,
                repeat,
                schedule.job_name,
                schedule.data,
                {"attempts": spec.policy.attempts, "removeOnComplete": 100, "removeOnFail": 1000},
            )

    async def _keep_schedules(self) -> None:
        """Register a schedule again when Redis lost it (or its next firing): a Redis restored from an
        older copy, or emptied, would otherwise run no periodic job — not even the reconciliation — until
        a worker restarts. Checked every reconciliation period."""
        period_s = self.resources.settings.reconcile_every_ms / 1000
        while True:
            await asyncio.sleep(period_s)
            try:
                lost = await self._lost_schedules()
                if lost:
                    log.warning(
                        "job scheduler(s) %s missing in Redis: registering them again",
                        ", ".join(s.scheduler_id for s in lost),
                    )
                    await self._register_schedules(lost)
            except Exception as exc:
                log.warning("could not check the job schedulers: %r", exc)

    async def _lost_schedules(self) -> list[Schedule]:
        """Schedules without a next firing in Redis: no scheduler entry, or its latest job is gone or
        finished (the next one is created when a firing starts, so a finished latest one is stuck)."""
        redis = self.resources.producer.redis
        prefix = self.resources.settings.queue_prefix
        specs = [(s, f"{prefix}:{self.registry.get(s.job_name).queue}") for s in self._schedules]
        async with redis.pipeline(transaction=False) as pipe:
            for schedule, base in specs:
                pipe.zscore(f"{base}:repeat", schedule.scheduler_id)
            latest = await pipe.execute()
        async with redis.pipeline(transaction=False) as pipe:
            for (schedule, base), millis in zip(specs, latest, strict=True):
                job_id = f"repeat:{schedule.scheduler_id}:{int(millis or 0)}"
                pipe.exists(f"{base}:{job_id}")
                pipe.zscore(f"{base}:completed", job_id)
                pipe.zscore(f"{base}:failed", job_id)
            found = await pipe.execute()
        lost = []
        for index, ((schedule, _), millis) in enumerate(zip(specs, latest, strict=True)):
            exists, completed, failed = found[index * 3 : index * 3 + 3]
            if millis is None or not exists or completed is not None or failed is not None:
                lost.append(schedule)
        return lost

    async def _check_redis(self) -> None:
        info = await self.resources.producer.redis.info()
        policy = info.get("maxmemory_policy")
        if policy != "noeviction":
            log.warning(
                "!!! Redis maxmemory-policy is %r: Redis may evict job keys and corrupt the queues. "
                "Set `maxmemory-policy noeviction`. !!!",
                policy,
            )
        if info.get("aof_enabled") in (0, "0") and self.resources.settings.env == "prod":
            log.warning("Redis runs without AOF persistence: a Redis restart loses queued jobs")

    def _on_failed(self, job: Any, err: BaseException) -> None:
        # Emitted after bullmq counted the attempt: attemptsMade is this attempt's number.
        attempts = int(job.opts.get("attempts") or 1)
        attempt = int(job.attemptsMade)
        final = isinstance(err, UnrecoverableError) or attempt >= attempts
        observe.job_failed(job.queue.name, str(job.name), final=final)
        level = logging.ERROR if final else logging.WARNING
        _, request_id = log_context.take_request_id(job.data)
        log.log(
            level,
            "job %s (%s) attempt %d/%d failed%s: %s",
            job.id,
            job.name,
            attempt,
            attempts,
            " for good" if final else ", will retry",
            err,
            extra={"job_id": str(job.id), "job_name": str(job.name), "request_id": request_id},
        )
        if final:
            data = job.data if isinstance(job.data, dict) else {}
            failed = FailedJob(str(job.id), str(job.name), data, str(job.failedReason or err))
            task = asyncio.create_task(self._settle(failed), name=f"settle:{job.id}")
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

    async def _settle(self, failed: FailedJob) -> None:
        try:
            await settle_final_failure(self.resources, failed)
        except Exception as exc:
            # The reconciliation finds the failed job while its rows still wait, and settles it then.
            log.warning(
                "could not tell the domain of job %s (%s) about its failure (the reconciliation will): %r",
                failed.job_id,
                failed.name,
                exc,
            )

    def _on_error(self, err: BaseException, *_: Any) -> None:
        log.error("worker error: %r", err)

    async def stop(self, grace_s: float | None = None, *, force: asyncio.Event | None = None) -> bool:
        """Stop taking jobs, let active ones finish for ``grace_s`` (or until ``force`` is set), then
        abandon the rest. Abandoned jobs keep their lock until it expires; another worker then
        recovers them. Returns True if every active job finished in time.
        """
        grace = self.resources.settings.shutdown_grace_s if grace_s is None else grace_s
        closes = {asyncio.create_task(w.close()) for w in self.workers.values()}
        forced = asyncio.create_task((force or asyncio.Event()).wait())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        pending = closes
        while pending and not forced.done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            _, still = await asyncio.wait(
                pending | {forced}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            pending = still - {forced}
        forced.cancel()
        clean = not pending
        if pending:
            log.warning(
                "abandoning %d active job(s) (%s) to stalled-job recovery",
                len(self.active),
                ", ".join(sorted(self.active)) or "none",
            )
            for worker in self.workers.values():
                worker.forceClosing = True
                worker.cancelProcessing()
            await asyncio.wait(pending, timeout=5)
        for task in self._runs:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
            self._keeper = None
        if self._settling:  # failures being handed to their domain: a few seconds, else reconciliation
            await asyncio.wait(set(self._settling), timeout=5)
        if self.watchdog is not None:
            await self.watchdog.stop()
            self.watchdog = None
        self.workers.clear()
        self._runs.clear()
        return clean

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT; a second signal abandons active jobs at once. Returns the exit code."""
        loop = asyncio.get_running_loop()
        force = asyncio.Event()

        def on_signal() -> None:
            if self._stop_requested.is_set():
                log.warning("second stop signal: abandoning active jobs now")
                force.set()
            else:
                log.info("stop requested: finishing active jobs (signal again to abandon them)")
                self._stop_requested.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        await self.start()
        await self._stop_requested.wait()
        await self.stop(force=force)
        log.info("worker %s stopped", self.name)
        return 0


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "(payload)"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
