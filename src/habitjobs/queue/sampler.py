"""What a worker samples for the metrics every ``HABITJOBS_METRICS_SAMPLE_EVERY_MS``: jobs per queue and
state, the age of the oldest job waiting per queue, and the outbox backlog. One Redis pipeline and one
small query per period, whatever the number of jobs or scrapes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import func, select

from habitjobs.observability import metrics as m
from habitjobs.queue.context import QueueResources
from habitjobs.queue.models import OutboxRow

if TYPE_CHECKING:
    from habitjobs.db.engine import Database


class Sampled(QueueResources, Protocol):
    """What the sampler reads: the queue's clients and the database that holds the outbox."""

    @property
    def db(self) -> Database: ...


log = logging.getLogger(__name__)

# BullMQ's keys: lists for wait/paused/active, sorted sets for the others.
_LISTS = ("wait", "paused", "active")
_ZSETS = ("prioritized", "delayed", "completed", "failed", "waiting-children")
STATES = {"wait": "waiting", "waiting-children": "waiting_children"}


async def sample_once(resources: Sampled, queues: Sequence[str]) -> None:
    redis = resources.producer.redis
    prefix = resources.settings.queue_prefix
    async with redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            base = f"{prefix}:{queue}"
            for key in _LISTS:
                pipe.llen(f"{base}:{key}")
            for key in _ZSETS:
                pipe.zcard(f"{base}:{key}")
            # The next job to run: the tail of the wait list, the lowest score of the prioritized set.
            pipe.lindex(f"{base}:wait", -1)
            pipe.zrange(f"{base}:prioritized", 0, 0)
        found = await pipe.execute()
    per_queue = len(_LISTS) + len(_ZSETS) + 2
    heads: list[tuple[str, str]] = []
    for index, queue in enumerate(queues):
        values = found[index * per_queue : (index + 1) * per_queue]
        for key, count in zip((*_LISTS, *_ZSETS), values, strict=False):
            m.child(m.QUEUE_JOBS, queue, STATES.get(key, key)).set(int(count or 0))
        tail, first_prioritized = values[-2], values[-1]
        for job_id in (tail, *(first_prioritized or [])):
            if job_id:
                heads.append((queue, job_id.decode() if isinstance(job_id, bytes) else str(job_id)))
    oldest = dict.fromkeys(queues, 0.0)
    if heads:
        async with redis.pipeline(transaction=False) as pipe:
            for queue, job_id in heads:
                pipe.hget(f"{prefix}:{queue}:{job_id}", "timestamp")
            stamps = await pipe.execute()
        now_ms = time.time() * 1000
        for (queue, _), stamp in zip(heads, stamps, strict=True):
            if stamp:
                oldest[queue] = max(oldest[queue], (now_ms - float(stamp)) / 1000)
    for queue, age in oldest.items():
        m.child(m.QUEUE_OLDEST_WAITING, queue).set(max(0.0, age))
    async with resources.db.transaction() as session:
        count, first = (
            await session.execute(
                select(func.count(), func.min(OutboxRow.created_at)).where(OutboxRow.enqueued_at.is_(None))
            )
        ).one()
        now = await session.scalar(select(func.now()))
    m.OUTBOX_BACKLOG.set(int(count))
    m.OUTBOX_RELAY_LAG.set((now - first).total_seconds() if first is not None and now is not None else 0.0)


async def sample_forever(resources: Sampled, queues: Sequence[str], started: Callable[[], bool]) -> None:
    """Sample every period; ``habitjobs_worker_ready`` says whether this worker can do its job: it serves
    its queues (``started``) and both stores answered the last sample (what its health check reads)."""
    period_s = resources.settings.metrics_sample_every_ms / 1000
    while True:
        try:
            await sample_once(resources, queues)
            m.WORKER_READY.set(1 if started() else 0)
        except Exception as exc:  # a store outage: the gauges keep their last values meanwhile
            m.WORKER_READY.set(0)
            log.debug("metrics sample failed: %r", exc)
        await asyncio.sleep(period_s if started() else min(period_s, 0.5))
