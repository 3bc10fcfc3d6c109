"""Retries with backoff, the failed list with every stack trace, and our two job outcomes."""

import itertools
import json

from habitjobs.config import Settings
from habitjobs.queue.inspect import get_job
from habitjobs.queue.names import DEFAULT
from habitjobs.resources import Resources
from tests.support import testjobs
from tests.support.workers import drain


async def attempt_times(resources: Resources, key: str) -> list[float]:
    raw = await resources.producer.redis.lrange(
        testjobs.attempt_times_key(resources.settings.queue_prefix, key), 0, -1
    )
    return [float(t) for t in raw]


async def test_fails_twice_then_completes_on_attempt_three_with_the_policys_delays(
    job_resources: Resources,
) -> None:
    # test.exact: attempts=3, exponential from 1 s, no jitter → waits of 1 s then 2 s.
    job_id = await job_resources.producer.enqueue(
        "test.exact", {"key": "flaky", "fail_times": 2}, job_id="flaky-1"
    )
    await drain(job_resources, queues=[DEFAULT])
    view = await get_job(job_resources.producer, DEFAULT, job_id)
    assert view is not None
    assert view.state == "completed"
    assert view.attempts_made == 3
    assert view.return_value == {"key": "flaky", "run": 3}
    assert len(view.stacktrace) == 2  # the two failures are kept even though it succeeded

    times = await attempt_times(job_resources, "flaky")
    assert len(times) == 3
    waits = [b - a for a, b in itertools.pairwise(times)]
    # The engine moves delayed jobs with about one second of granularity (docs/engine.md, E2).
    assert 0.9 <= waits[0] <= 2.3, waits
    assert 1.9 <= waits[1] <= 3.3, waits
    assert waits[1] > waits[0]


async def test_exhausted_job_rests_in_failed_with_every_attempts_stack_trace(
    job_resources: Resources,
) -> None:
    job_id = await job_resources.producer.enqueue(
        "test.effect", {"key": "doomed", "fail_times": 99}, job_id="doom-1"
    )
    await drain(job_resources, queues=[DEFAULT])
    view = await get_job(job_resources.producer, DEFAULT, job_id)
    assert view is not None
    assert view.state == "failed"
    assert view.attempts_made == 3
    assert view.failed_reason == "planned failure 3 of 99 for doomed"
    assert len(view.stacktrace) == 3
    for attempt, trace in enumerate(view.stacktrace, start=1):
        assert trace.startswith("Traceback (most recent call last)")
        assert f"RuntimeError: planned failure {attempt} of 99 for doomed" in trace
        assert "apply_effect" in trace  # the frame of the handler that raised
    # Full jitter: waits between the attempts lie between 1 s and the capped ceiling (2 s here).
    times = await attempt_times(job_resources, "doomed")
    waits = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.9 <= w <= 3.3 for w in waits), waits


async def test_retry_later_waits_at_least_what_the_error_asks(job_resources: Resources) -> None:
    job_id = await job_resources.producer.enqueue(
        "test.exact", {"key": "ratelimited", "fail_times": 1, "retry_after_s": 3}, job_id="rl-1"
    )
    await drain(job_resources, queues=[DEFAULT])
    view = await get_job(job_resources.producer, DEFAULT, job_id)
    assert view is not None
    assert view.state == "completed"
    times = await attempt_times(job_resources, "ratelimited")
    assert times[1] - times[0] >= 2.9  # the policy alone would have waited 1 s


async def test_permanent_failure_is_not_retried_and_keeps_its_cause(job_resources: Resources) -> None:
    job_id = await job_resources.producer.enqueue(
        "test.effect", {"key": "never", "permanent": True}, job_id="perm-1"
    )
    await drain(job_resources, queues=[DEFAULT])
    view = await get_job(job_resources.producer, DEFAULT, job_id)
    assert view is not None
    assert view.state == "failed"
    assert view.attempts_made == 1
    assert view.failed_reason == "test.effect: effect never can never succeed"
    [trace] = view.stacktrace
    assert "PermanentFailure: effect never can never succeed" in trace


async def test_worker_enforces_the_registry_policy_over_the_producers_options(
    job_resources: Resources,
) -> None:
    """A producer that knows nothing of our policies (e.g. NestJS with attempts=1) still gets them."""
    queue = job_resources.producer.queue(DEFAULT)
    await queue.add("test.exact", {"key": "foreign", "fail_times": 1}, {"jobId": "foreign-1", "attempts": 1})
    await drain(job_resources, queues=[DEFAULT])
    view = await get_job(job_resources.producer, DEFAULT, "foreign-1")
    assert view is not None
    assert view.state == "completed"
    assert view.attempts_made == 2
    stored = await job_resources.producer.redis.hget(
        f"{job_resources.settings.queue_prefix}:{DEFAULT}:foreign-1", "opts"
    )
    assert json.loads(stored)["attempts"] == 1  # the stored options are left as the producer wrote them


async def test_jobs_added_without_retention_get_ours(settings: Settings) -> None:
    """A producer that sets no removeOnComplete does not fill Redis: the worker's retention applies."""
    keep_two = Settings(
        **{**settings.model_dump(), "keep_completed_count": 2, "extra_job_modules": "tests.support.testjobs"}
    )
    resources = Resources.open(keep_two)
    try:
        queue = resources.producer.queue(DEFAULT)
        for i in range(5):
            await queue.add("test.effect", {"key": f"foreign-{i}"}, {"jobId": f"foreign-keep-{i}"})
        await drain(resources, queues=[DEFAULT])
        counts = await queue.getJobCounts("completed")
        assert counts["completed"] == 2
    finally:
        await resources.aclose()
