"""Real worker processes: crash recovery after SIGKILL, graceful stop on SIGTERM."""

import asyncio
import signal
import time
from pathlib import Path

import pytest

from habitjobs.queue.inspect import get_job
from habitjobs.queue.names import DEFAULT
from habitjobs.resources import Resources
from tests.support import testjobs
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.slow

TEST_JOBS = {"HABITJOBS_EXTRA_JOB_MODULES": "tests.support.testjobs"}


async def counter(resources: Resources, key_fn, key: str) -> int:  # type: ignore[no-untyped-def]
    value = await resources.producer.redis.get(key_fn(resources.settings.queue_prefix, key))
    return int(value or 0)


async def wait_for(predicate, *, timeout_s: float, what: str) -> float:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` (async) until true; returns the seconds it took."""
    start = time.monotonic()
    while not await predicate():
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{what} not within {timeout_s}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def job_state(resources: Resources, job_id: str) -> str | None:
    view = await get_job(resources.producer, DEFAULT, job_id)
    return view.state if view else None


async def test_sigkilled_workers_job_is_completed_by_another_worker_once(
    job_resources: Resources, tmp_path: Path
) -> None:
    settings = job_resources.settings
    first = WorkerProcess(settings, tmp_path / "first.log", "--queue", DEFAULT, env=TEST_JOBS)
    second = None
    try:
        await first.wait_started()
        job_id = await job_resources.producer.enqueue(
            "test.effect", {"key": "crash", "sleep_ms": 60_000}, job_id="c-1"
        )

        async def started() -> bool:
            return await counter(job_resources, testjobs.runs_key, "crash") == 1

        await wait_for(started, timeout_s=10, what="first run")
        first.signal(signal.SIGKILL)
        assert await first.wait_exit() == -signal.SIGKILL
        killed_at = time.monotonic()
        assert await job_state(job_resources, job_id) == "active"  # orphaned, lock still held

        # The recovered run reads the job's stored payload; shorten its sleep so the test is quick.
        job = await job_resources.producer.queue(DEFAULT).getJob(job_id)
        await job.updateData({"key": "crash", "sleep_ms": 100})

        second = WorkerProcess(settings, tmp_path / "second.log", "--queue", DEFAULT, env=TEST_JOBS)
        await second.wait_started()

        async def completed() -> bool:
            return await job_state(job_resources, job_id) == "completed"

        await wait_for(completed, timeout_s=settings.recovery_time_s + 15, what="recovery")
        recovered_after_s = time.monotonic() - killed_at
        # Promise: lock expiry + two stalled checks, plus the second worker's start-up.
        assert recovered_after_s < settings.recovery_time_s + 8, recovered_after_s
        assert await counter(job_resources, testjobs.runs_key, "crash") == 2  # ran again…
        assert await counter(job_resources, testjobs.effects_key, "crash") == 1  # …applied once
    finally:
        first.kill()
        if second:
            second.signal(signal.SIGTERM)
            await second.wait_exit()


async def test_sigterm_lets_the_active_job_finish_and_exits_zero(
    job_resources: Resources, tmp_path: Path
) -> None:
    worker = WorkerProcess(job_resources.settings, tmp_path / "w.log", "--queue", DEFAULT, env=TEST_JOBS)
    try:
        await worker.wait_started()
        job_id = await job_resources.producer.enqueue(
            "test.effect", {"key": "term", "sleep_ms": 1500}, job_id="t-1"
        )

        async def started() -> bool:
            return await counter(job_resources, testjobs.runs_key, "term") == 1

        await wait_for(started, timeout_s=10, what="job start")
        worker.signal(signal.SIGTERM)
        assert await worker.wait_exit(timeout_s=20) == 0, worker.output()
        assert await job_state(job_resources, job_id) == "completed"
        assert await counter(job_resources, testjobs.effects_key, "term") == 1
        # It stopped taking jobs: one enqueued after the signal stays waiting.
        late = await job_resources.producer.enqueue("test.effect", {"key": "late"}, job_id="t-2")
        assert await job_state(job_resources, late) == "waiting"
    finally:
        worker.kill()


async def test_second_sigterm_abandons_the_job_to_recovery(job_resources: Resources, tmp_path: Path) -> None:
    worker = WorkerProcess(job_resources.settings, tmp_path / "w.log", "--queue", DEFAULT, env=TEST_JOBS)
    try:
        await worker.wait_started()
        job_id = await job_resources.producer.enqueue(
            "test.effect", {"key": "stuck", "sleep_ms": 60_000}, job_id="s-1"
        )

        async def started() -> bool:
            return await counter(job_resources, testjobs.runs_key, "stuck") == 1

        await wait_for(started, timeout_s=10, what="job start")
        worker.signal(signal.SIGTERM)

        async def stopping() -> bool:  # the first signal was taken: the second one then abandons
            return "stop requested" in worker.output()

        await wait_for(stopping, timeout_s=10, what="the first SIGTERM taken")
        worker.signal(signal.SIGTERM)
        assert await worker.wait_exit(timeout_s=20) == 0, worker.output()
        # Not completed, not failed: still active until its lock expires, then another worker gets it.
        assert await job_state(job_resources, job_id) == "active"
        assert "abandoning" in worker.output()
    finally:
        worker.kill()
