"""The worker runtime in-process: handlers run, outcomes map to bullmq moves, bad jobs fail clearly."""

import time

import pytest
import redis.asyncio as aioredis

from habitjobs.queue.connection import UnsafeRedisOptions, assert_safe, bullmq_connection, create_redis
from habitjobs.queue.inspect import get_job
from habitjobs.queue.names import DEFAULT
from habitjobs.queue.runtime import WorkerRuntime
from habitjobs.resources import Resources
from tests.support import testjobs
from tests.support.workers import drain


async def runs(resources: Resources, key: str) -> int:
    return int(
        await resources.producer.redis.get(testjobs.runs_key(resources.settings.queue_prefix, key)) or 0
    )


async def effects(resources: Resources, key: str) -> int:
    return int(
        await resources.producer.redis.get(testjobs.effects_key(resources.settings.queue_prefix, key)) or 0
    )


async def test_a_job_runs_and_its_result_is_kept(job_resources: Resources) -> None:
    job_id = await job_resources.producer.enqueue("test.effect", {"key": "a"}, job_id="effect-a")
    await drain(job_resources, queues=[DEFAULT])
    view = await get_job(job_resources.producer, DEFAULT, job_id)
    assert view is not None
    assert view.state == "completed"
    assert view.return_value == {"key": "a", "run": 1}
    assert await effects(job_resources, "a") == 1


async def test_same_job_id_twice_makes_one_job(job_resources: Resources) -> None:
    first = await job_resources.producer.enqueue("test.effect", {"key": "b"}, job_id="effect-b")
    second = await job_resources.producer.enqueue("test.effect", {"key": "b"}, job_id="effect-b")
    assert first == second
    await drain(job_resources, queues=[DEFAULT])
    assert await runs(job_resources, "b") == 1


async def test_unknown_job_name_fails_permanently_with_a_clear_reason(job_resources: Resources) -> None:
    queue = job_resources.producer.queue(DEFAULT)
    await queue.add("nobody.knows", {"x": 1}, {"jobId": "mystery-1", "attempts": 5})
    await drain(job_resources, queues=[DEFAULT])
    view = await get_job(job_resources.producer, DEFAULT, "mystery-1")
    assert view is not None
    assert view.state == "failed"
    assert view.attempts_made == 1  # not retried
    assert "unknown job name 'nobody.knows'" in (view.failed_reason or "")


async def test_invalid_payload_fails_permanently_naming_the_field(job_resources: Resources) -> None:
    queue = job_resources.producer.queue(DEFAULT)
    await queue.add("test.effect", {"key": 5, "sleep_ms": "long"}, {"jobId": "badpayload-1", "attempts": 3})
    await drain(job_resources, queues=[DEFAULT])
    view = await get_job(job_resources.producer, DEFAULT, "badpayload-1")
    assert view is not None
    assert view.state == "failed"
    assert view.attempts_made == 1
    reason = view.failed_reason or ""
    assert "invalid payload for test.effect" in reason
    assert "key" in reason
    assert "sleep_ms" in reason


async def test_producer_validates_payloads_before_enqueueing(job_resources: Resources) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        await job_resources.producer.enqueue("test.effect", {"nope": True}, job_id="never")
    assert await job_resources.producer.queue(DEFAULT).getJob("never") is None


def test_clients_without_decode_responses_cannot_be_created(redis_url: str) -> None:
    with pytest.raises(UnsafeRedisOptions, match="decode_responses"):
        create_redis(redis_url, decode_responses=False)
    with pytest.raises(UnsafeRedisOptions, match="socket_timeout"):
        create_redis(redis_url, socket_timeout=5)
    with pytest.raises(UnsafeRedisOptions):
        assert_safe(aioredis.Redis.from_url(redis_url))  # redis-py's own defaults: bytes, 5 s timeout
    options = bullmq_connection(redis_url)
    assert options["socket_timeout"] is None
    assert "decode_responses" not in options  # bullmq adds decode_responses=True itself


async def test_idle_worker_waits_in_a_blocking_read_without_timeout_and_picks_up_every_job(
    job_resources: Resources,
) -> None:
    """docs/engine.md, E1: with redis-py's default 5 s socket timeout an idle worker is seconds late. The
    fact that prevents it is checked (the blocking client has no socket timeout); the pickup latency is
    measured and printed, not asserted (a shared machine's run queue decides it; bench/engine.py measures
    it properly)."""
    runtime = WorkerRuntime(job_resources, queues=[DEFAULT], concurrency=1)
    await runtime.start()
    blocking = runtime.workers[DEFAULT].bclient
    assert blocking is not None
    assert blocking.connection_pool.connection_kwargs["socket_timeout"] is None
    latencies_ms: list[float] = []
    queue = job_resources.producer.queue(DEFAULT)
    try:
        for i in range(100):
            # The job records when it started; the worker was idle, blocked in BZPOPMIN.
            enqueued = time.time()
            job = await queue.add("test.effect", {"key": f"lat{i}"}, {"jobId": f"lat-{i}"})
            key = testjobs.attempt_times_key(job_resources.settings.queue_prefix, f"lat{i}")
            deadline = time.monotonic() + 5
            started = None
            while started is None and time.monotonic() < deadline:
                started = await job_resources.producer.redis.lindex(key, 0)
                if started is None:
                    await _tick()
            assert started is not None, f"job {job.id} not picked up within 5 s"
            latencies_ms.append((float(started) - enqueued) * 1000)
    finally:
        await runtime.stop(grace_s=5)
    assert len(latencies_ms) == 100
    latencies_ms.sort()
    print(f"idle pickup over 100 jobs: p50 {latencies_ms[50]:.1f} ms, p99 {latencies_ms[98]:.1f} ms")


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.001)


async def test_schedulers_are_registered_once_however_many_workers_start(job_resources: Resources) -> None:
    from habitjobs.catalog import build_schedules

    schedules = build_schedules(job_resources.settings)
    runtimes = [WorkerRuntime(job_resources, queues=[DEFAULT], schedules=schedules) for _ in range(3)]
    for runtime in runtimes:
        await runtime.start()
    try:
        for schedule in schedules:
            spec = job_resources.registry.get(schedule.job_name)
            found = await job_resources.producer.queue(spec.queue).getJobSchedulers()
            assert [s["key"] for s in found].count(schedule.scheduler_id) == 1
            # And one pending job for its next tick, not one per worker.
            delayed = await job_resources.producer.queue(spec.queue).getJobs(["delayed", "waiting"])
            assert sum(1 for j in delayed if j.name == schedule.job_name) == 1
    finally:
        for runtime in runtimes:
            await runtime.stop(grace_s=5)


def test_synchronous_handlers_are_refused() -> None:
    from pydantic import BaseModel, ConfigDict

    from habitjobs.queue.registry import JobSpec

    class P(BaseModel):
        model_config = ConfigDict(frozen=True)

    def blocking(_ctx: object, _p: P) -> None:
        return None

    with pytest.raises(ValueError, match="async"):
        JobSpec("a.b", DEFAULT, P, blocking)  # type: ignore[arg-type]
