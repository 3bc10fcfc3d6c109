"""bullmq's ``Worker`` with the job loop Node BullMQ has: finishing a job fetches the next one.

bullmq-python finishes a job with one script call (``moveToFinished``) and then takes the next with
another (``moveToActive``): two round trips and two script runs per job. The ``moveToFinished`` script
can do both — it moves the finished job and, asked to, moves the next waiting job to active under the
same lock token and returns it — which is what Node BullMQ's worker does. :class:`Worker` here asks for
it whenever the worker is taking new jobs (not closing, not paused), and runs the fetched job in the same
slot of its concurrency; a slot that got nothing back goes back to bullmq's own loop (the blocking wait
for new jobs, the limiter and delay bookkeeping). Failed jobs take bullmq's path unchanged (retries,
backoff), and the next job after one is fetched the usual way.

Nothing else changes: the fetched job is locked by the script exactly as ``moveToActive`` locks one,
tracked for lock renewal (all of a worker's locks are renewed by one ``extendLocks`` call), counted in
``self.jobs`` and cancelled like any other on a forced stop — a job fetched but abandoned keeps its lock
until it expires and is then recovered by the stalled-job check, as any abandoned job.
"""

from __future__ import annotations

import time
from typing import Any

from bullmq import Worker as BullWorker
from bullmq.custom_errors import DelayedError, UnrecoverableError, WaitingChildrenError

__all__ = ["Worker"]


class Worker(BullWorker):  # type: ignore[misc]  # bullmq ships no type information
    async def processJob(self, job: Any, token: str) -> None:
        """Run ``job`` and every job fetched while finishing the previous one, in this slot."""
        while job is not None:
            job = await self._run_one(job, token)

    async def _run_one(self, job: Any, token: str) -> Any:
        """bullmq's ``processJob`` for one job; returns the next job when finishing it fetched one."""
        raw = None
        try:
            opts = job.opts
            if "removeOnComplete" not in opts and "removeOnComplete" in self.opts:
                opts["removeOnComplete"] = self.opts["removeOnComplete"]
            if "removeOnFail" not in opts and "removeOnFail" in self.opts:
                opts["removeOnFail"] = self.opts["removeOnFail"]

            self.jobs.add((job, token))
            controller = self.lockManager.track_job(
                job.id,
                token,
                int(time.time() * 1000),
                should_create_controller=self._processor_wants_signal,
            )

            if job.deferredFailure:
                await job.moveToFailed(UnrecoverableError(job.deferredFailure), token)
                self.emit("failed", job, UnrecoverableError(job.deferredFailure))
                return None

            if controller is not None:
                result = await self.processor(job, token, controller.signal)
            else:
                result = await self.processor(job, token)
            if not self.forceClosing:
                fetch = not (self.closing or self.paused)
                finished = await self.backend.moveToCompleted(
                    job, result, opts.get("removeOnComplete", False), token, fetch_next=fetch
                )
                job.returnvalue = result
                job.attemptsMade = job.attemptsMade + 1
                if fetch:
                    raw = finished["result"]
            self.emit("completed", job, result)
        except (DelayedError, WaitingChildrenError):
            return None
        except Exception as err:
            try:
                if not self.forceClosing:
                    await job.moveToFailed(err, token)
                self.emit("failed", job, err)
            except Exception as err2:
                self.emit("error", err2, job)
        finally:
            self.jobs.discard((job, token))
            self.lockManager.untrack_job(job.id)
        if not raw:
            return None
        # What moveToActive's caller does with its answer: the limiter and delay bookkeeping (an empty
        # answer marks the queue drained, so the slot's next take is the blocking wait), the job.
        job_data, job_id, limit_until, delay_until = raw
        next_job = await self.nextJobFromJobData(job_data, job_id, limit_until or 0, delay_until or 0, token)
        if next_job is not None:
            self.emit("active", next_job, "waiting")
        return next_job
