"""Removing every job that mentions a value (a deleted user's id) from every queue, and the queue events
that mention it.

A job mentions the value when its data, result, failure reason, stack traces, options (deduplication id)
or log lines contain it. Such jobs are removed whatever their state — waiting, delayed, prioritized,
paused, and (with ``finished``) completed and failed — through bullmq's own remove script, which also
drops their deduplication key. A job a worker holds right now cannot be removed: it is counted as
``busy`` and the caller decides whether to come back. The events stream of each queue (bounded by
bullmq's ``maxLenEvents``) loses the entries that mention the value, and the fairness rank key named
after the value goes too.

The sets are read in pages, so a big backlog costs many short commands, never one long one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from habitjobs.queue.fairness import rank_key
from habitjobs.queue.names import QUEUES
from habitjobs.queue.producer import Producer

_QUEUED = ("wait", "paused", "delayed", "prioritized", "waiting-children")
_FINISHED = ("completed", "failed")
_LISTS = frozenset({"wait", "paused", "active"})
_FIELDS = ("data", "returnvalue", "failedReason", "stacktrace", "opts", "deid", "name")
_PAGE = 200
_EVENTS_PAGE = 1000


@dataclass
class ForgetReport:
    removed: int = 0
    busy: int = 0  # active jobs that mention the value: a worker holds them
    events: int = 0

    def add(self, other: ForgetReport) -> ForgetReport:
        return ForgetReport(self.removed + other.removed, self.busy + other.busy, self.events + other.events)


async def forget(
    producer: Producer,
    needle: str,
    *,
    job_ids: Iterable[tuple[str, str]] = (),
    finished: bool = False,
    events: bool = False,
    keep: Collection[str] = (),
) -> ForgetReport:
    """Remove the jobs that mention ``needle`` (and those named in ``job_ids`` as (queue, id) pairs),
    except the ids in ``keep`` (the caller's own job). See the module for what is searched."""
    report = ForgetReport()
    for queue, job_id in job_ids:
        if queue in QUEUES and job_id not in keep:
            report = report.add(await _remove(producer, queue, [job_id]))
    states = (*_QUEUED, *_FINISHED) if finished else _QUEUED
    for queue in QUEUES:
        redis = producer.redis
        handle = producer.queue(queue)
        matches: list[str] = []
        for state in states:
            async for job_id in _mentioning(redis, handle, state, needle):
                if job_id not in keep:
                    matches.append(job_id)
        report = report.add(await _remove(producer, queue, matches))
        async for job_id in _mentioning(redis, handle, "active", needle):
            if job_id not in keep:
                report.busy += 1
        if events:
            report.events += await _forget_events(redis, handle.keys["events"], needle)
        await redis.delete(rank_key(handle.prefix, queue, needle))
    return report


async def _remove(producer: Producer, queue: str, job_ids: list[str]) -> ForgetReport:
    report = ForgetReport()
    handle = producer.queue(queue)
    for job_id in job_ids:
        if not await producer.redis.exists(handle.toKey(job_id)):
            continue
        if int(await handle.remove(job_id)) == 1:
            report.removed += 1
        else:  # locked: a worker is running it
            report.busy += 1
    return report


async def _ids(redis: Any, key: str, state: str) -> AsyncIterator[list[str]]:
    start = 0
    while True:
        end = start + _PAGE - 1
        page = await (redis.lrange(key, start, end) if state in _LISTS else redis.zrange(key, start, end))
        if page:
            yield [str(job_id) for job_id in page]
        if len(page) < _PAGE:
            return
        start += _PAGE


async def _mentioning(redis: Any, handle: Any, state: str, needle: str) -> AsyncIterator[str]:
    async for page in _ids(redis, handle.keys[state], state):
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in page:
                pipe.hmget(handle.toKey(job_id), list(_FIELDS))
                pipe.lrange(handle.toKey(job_id) + ":logs", 0, -1)
            replies = await pipe.execute()
        for index, job_id in enumerate(page):
            fields, logs = replies[2 * index], replies[2 * index + 1]
            if needle in job_id or any(needle in value for value in (*fields, *logs) if value):
                yield job_id


async def _forget_events(redis: Any, key: str, needle: str) -> int:
    deleted = 0
    start = "-"
    while True:
        entries = await redis.xrange(key, min=start, max="+", count=_EVENTS_PAGE)
        doomed = [
            entry_id
            for entry_id, fields in entries
            if any(needle in str(v) for pair in fields.items() for v in pair)
        ]
        if doomed:
            deleted += int(await redis.xdel(key, *doomed))
        if len(entries) < _EVENTS_PAGE:
            return deleted
        start = "(" + entries[-1][0]
