"""Noticing a blocked event loop, and keeping a blocked job from being run twice.

A handler that blocks the loop (CPU work, a synchronous client) also blocks bullmq's lock renewal: the
lock expires, another worker's stalled check takes the job, and it runs a second time while the first
run is still going (docs/engine.md, E4). The watchdog runs in its own thread, so it keeps working while
the loop is stuck:

- it logs a warning naming the job(s) in progress once the loop has been stuck ``warn_after_ms``;
- it renews those jobs' locks itself, with its own (synchronous) Redis connection, so no other worker
  takes them — for at most ``max_extend_s``, after which a job stuck that long is left to the normal
  stalled-job recovery;
- when the loop comes back it logs how long it was blocked.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from habitjobs.observability import job_runs as observe

log = logging.getLogger(__name__)

# Renew a lock if its owner still holds it, and take the job off the stalled-candidates set (what
# bullmq's own renewal does). KEYS: lock, stalled set. ARGV: token, duration ms, job id.
_EXTEND_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SREM', KEYS[2], ARGV[3])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class ActiveJob:
    job_id: str
    name: str
    queue: str
    token: str


class LoopWatchdog:
    def __init__(
        self,
        active: Callable[[], list[ActiveJob]],
        *,
        redis_kwargs: dict[str, Any],
        prefix: str,
        lock_duration_ms: int,
        warn_after_ms: int,
        max_extend_s: float = 300.0,
        tick_s: float = 0.05,
    ) -> None:
        self._active = active
        self._redis_kwargs = redis_kwargs
        self._prefix = prefix
        self._lock_duration_ms = lock_duration_ms
        self._warn_after_s = warn_after_ms / 1000
        # Renew well before expiry: at a third of the lock's life.
        self._renew_after_s = lock_duration_ms / 3000
        self._max_extend_s = max_extend_s
        self._tick_s = tick_s
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._beat = time.monotonic()
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat_forever(), name="loop-heartbeat")
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._heartbeat:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        if self._thread:
            await asyncio.to_thread(self._thread.join, 5)

    async def _beat_forever(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(self._tick_s)

    def _watch(self) -> None:
        client: redis.Redis | None = None
        script: Any = None
        blocked_since: float | None = None
        warned = False
        last_renewal = 0.0
        try:
            while not self._stop.wait(self._tick_s):
                now = time.monotonic()
                beat = self._beat
                lag = now - beat
                if lag < 2 * self._tick_s + 0.05:
                    if blocked_since is not None and warned:
                        log.warning("event loop was blocked for %.0f ms", (now - blocked_since) * 1000)
                    blocked_since, warned = None, False
                    continue
                if blocked_since is None:
                    blocked_since, last_renewal = beat, beat
                if lag >= self._warn_after_s and not warned:
                    warned = True
                    observe.loop_blocked()
                    jobs = self._active_now()
                    log.warning(
                        "event loop blocked for %.0f ms by a job handler — it must not block (use async I/O, "
                        "or a process pool for CPU work); in progress: %s",
                        lag * 1000,
                        ", ".join(f"{j.name} {j.job_id}" for j in jobs) or "no job",
                    )
                if now - last_renewal >= self._renew_after_s and now - blocked_since <= self._max_extend_s:
                    if client is None:
                        client = redis.Redis(**self._redis_kwargs)
                        script = client.register_script(_EXTEND_LOCK)
                    last_renewal = now
                    self._renew(script, self._active_now())
        except Exception:
            log.exception("loop watchdog stopped")
        finally:
            if client is not None:
                client.close()

    def _active_now(self) -> list[ActiveJob]:
        try:
            return self._active()
        except RuntimeError:  # the dict changed while copying: the loop is running again
            return []

    def _renew(self, script: Any, jobs: list[ActiveJob]) -> None:
        for job in jobs:
            base = f"{self._prefix}:{job.queue}"
            try:
                kept = script(
                    keys=[f"{base}:{job.job_id}:lock", f"{base}:stalled"],
                    args=[job.token, self._lock_duration_ms, job.job_id],
                )
            except redis.RedisError as exc:
                log.warning("watchdog could not renew the lock of %s: %r", job.job_id, exc)
                continue
            if not kept:
                observe.lock_renewals_missed(job.queue)
                log.warning("job %s (%s) lost its lock while the loop was blocked", job.job_id, job.name)
