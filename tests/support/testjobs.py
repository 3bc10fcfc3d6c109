"""Job types used only by the tests (loaded through HABITJOBS_EXTRA_JOB_MODULES in subprocesses).

Their effects live in Redis under the test's key prefix, so a test can count how often a handler ran
and how often its effect was applied.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict

from habitjobs.accounts.jobs import ExportData, export_data
from habitjobs.errors import PermanentFailure, RetryLater
from habitjobs.queue.names import ANALYTICS, DEFAULT
from habitjobs.queue.registry import JobSpec
from habitjobs.queue.retry import RetryPolicy
from habitjobs.resources import JobContext


class Effect(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    sleep_ms: int = 0
    fail_times: int = 0
    block_ms: int = 0
    permanent: bool = False
    retry_after_s: float | None = None


def _client(ctx: JobContext) -> aioredis.Redis:
    client: aioredis.Redis = ctx.resources.producer.redis
    return client


def runs_key(prefix: str, key: str) -> str:
    return f"{prefix}:test:runs:{key}"


def effects_key(prefix: str, key: str) -> str:
    return f"{prefix}:test:effects:{key}"


def attempt_times_key(prefix: str, key: str) -> str:
    return f"{prefix}:test:times:{key}"


_APPLY_ONCE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then return redis.call('INCR', KEYS[2]) end
return 0
"""


async def apply_effect(ctx: JobContext, payload: Effect) -> dict[str, Any]:
    """Counts the run, optionally waits/blocks/fails, then applies its effect once (SET NX guard)."""
    redis = _client(ctx)
    prefix = ctx.resources.settings.queue_prefix
    run = await redis.incr(runs_key(prefix, payload.key))
    await redis.rpush(attempt_times_key(prefix, payload.key), f"{time.time():.3f}")
    if payload.sleep_ms:
        await asyncio.sleep(payload.sleep_ms / 1000)
    if payload.block_ms:
        time.sleep(payload.block_ms / 1000)  # deliberately blocks the event loop
    if payload.permanent:
        raise PermanentFailure(f"effect {payload.key} can never succeed")
    if run <= payload.fail_times:
        if payload.retry_after_s is not None:
            raise RetryLater(f"provider says wait (run {run})", after_s=payload.retry_after_s)
        raise RuntimeError(f"planned failure {run} of {payload.fail_times} for {payload.key}")
    # The guard and the effect in one script: a Redis killed between them must not leave the guard set and
    # the effect missing (the retry would then skip it).
    await redis.eval(
        _APPLY_ONCE, 2, f"{prefix}:test:applied:{payload.key}", effects_key(prefix, payload.key), ctx.job_id
    )
    return {"key": payload.key, "run": run}


class Mark(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    sleep_ms: int = 0


def order_key(prefix: str) -> str:
    return f"{prefix}:test:order"


async def mark(ctx: JobContext, payload: Mark) -> str:
    """Appends its label to the test's run order when it starts."""
    await _client(ctx).rpush(order_key(ctx.resources.settings.queue_prefix), payload.label)
    if payload.sleep_ms:
        await asyncio.sleep(payload.sleep_ms / 1000)
    return payload.label


JOBS: list[JobSpec[Any]] = [
    JobSpec(
        "test.effect",
        DEFAULT,
        Effect,
        apply_effect,
        policy=RetryPolicy(attempts=3, base_delay_s=1, max_delay_s=2),
    ),
    # Without jitter, so a test can check the exact backoff: 1 s, then 2 s.
    JobSpec(
        "test.exact",
        DEFAULT,
        Effect,
        apply_effect,
        policy=RetryPolicy(attempts=3, base_delay_s=1, max_delay_s=10, jitter=False),
    ),
    # Many quick attempts: rides out a store outage in chaos tests.
    JobSpec(
        "test.sturdy",
        DEFAULT,
        Effect,
        apply_effect,
        policy=RetryPolicy(attempts=20, base_delay_s=1, max_delay_s=2),
    ),
    JobSpec(
        "test.export",
        DEFAULT,
        ExportData,
        export_data,
        policy=RetryPolicy(attempts=20, base_delay_s=1, max_delay_s=2),
    ),
    # Per-user work, ordered fairly between users (and the same without fairness, to compare).
    JobSpec("test.fair", DEFAULT, Mark, mark, policy=RetryPolicy(attempts=1), fair=True),
    JobSpec("test.fifo", DEFAULT, Mark, mark, policy=RetryPolicy(attempts=1)),
    # The same job on another queue, to check that queue-wide operations stay in their queue.
    JobSpec("test.elsewhere", ANALYTICS, Effect, apply_effect, policy=RetryPolicy(attempts=1)),
]
