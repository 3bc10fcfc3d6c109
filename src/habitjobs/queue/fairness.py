"""Fairness between users inside one queue, with BullMQ priorities.

BullMQ has no per-user groups, but it runs prioritized jobs by (priority, insertion order). A job of a
*fair* job type gets as priority its rank among its user's jobs still queued in that queue: 1 for a
user with nothing waiting, n + 1 behind the user's own n queued jobs. So the jobs of a queue run in
rounds: first every user's oldest queued job (in arrival order), then every user's second, and so on.
A user with one job waits behind at most one job per other user with work queued (plus the jobs
already running), never behind another user's backlog; each user's own jobs keep their order.

The rank is kept per user and queue in Redis (``<prefix>:fair:<queue>:<user>``: the last job's id and
rank), and one Lua script computes it: when the user's last job is no longer waiting (not in the queue's
``prioritized`` or ``delayed`` sets: it started, finished or was removed), every earlier job of the user
has started too, so the count starts again at 1. Nothing needs decrementing when a job finishes, and a
lost key only means a user's next job counts as a first one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bullmq.queue_keys import QueueKeys

# BullMQ's highest priority value (the score is priority × 2^32 + a counter, exact below 2^53).
MAX_PRIORITY = 2_097_152
# A rank key lives this long after the user's last enqueue (longer than any job should wait).
_RANK_TTL_MS = 7 * 24 * 3600 * 1000

# KEYS[1] the user's rank key; KEYS[2] the queue's prioritized set; KEYS[3] its delayed set.
# ARGV[1] how many jobs are about to be added; ARGV[2] the id of the last of them; ARGV[3] key TTL (ms).
# Returns the rank of the first of them.
_RANK = """
local last = redis.call('HMGET', KEYS[1], 'job', 'rank')
local rank = 0
if last[1] and (redis.call('ZSCORE', KEYS[2], last[1]) or redis.call('ZSCORE', KEYS[3], last[1])) then
  rank = tonumber(last[2])
end
local count = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'job', ARGV[2], 'rank', rank + count)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return rank + 1
"""


def rank_key(prefix: str, queue: str, user: str) -> str:
    """The key that keeps ``user``'s last rank in ``queue`` (it names the user: a deletion removes it)."""
    return f"{prefix}:fair:{queue}:{user}"


class FairRanks:
    """Assigns the priorities of fair jobs; one per producer (its Redis client)."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._keys = QueueKeys(prefix)
        self._script = redis.register_script(_RANK)

    async def priorities(self, groups: Sequence[tuple[str, str, list[str]]]) -> list[list[int]]:
        """For each (queue, user, job ids in enqueue order): the priorities to give those jobs.

        One round trip for all groups (a pipeline of script calls).
        """
        if not groups:
            return []
        if len(groups) == 1:  # the common case (one request's job): no pipeline to build
            firsts = [await self._rank(*groups[0], client=self._redis)]
        else:
            async with self._redis.pipeline(transaction=False) as pipe:
                for queue, user, job_ids in groups:
                    await self._rank(queue, user, job_ids, client=pipe)
                firsts = await pipe.execute()
        return [
            [min(int(first) + i, MAX_PRIORITY) for i in range(len(job_ids))]
            for first, (_, _, job_ids) in zip(firsts, groups, strict=True)
        ]

    async def _rank(self, queue: str, user: str, job_ids: list[str], *, client: Any) -> Any:
        return await self._script(
            keys=[
                rank_key(self._prefix, queue, user),
                self._keys.toKey(queue, "prioritized"),
                self._keys.toKey(queue, "delayed"),
            ],
            args=[len(job_ids), job_ids[-1], _RANK_TTL_MS],
            client=client,
        )
