"""What the dashboard and `habitjobs jobs workers` read beside the job lists: the workers alive on each
queue, throughput and failures per minute (BullMQ's metrics, recorded by our workers), the oldest waiting
job's age.

Workers are found by their Redis client name, in the format Node BullMQ (and so Bull Board) looks for:
``<prefix>:<base64 of the queue name>`` followed by ``:w:<worker name>``. bullmq-python names its
connections ``<prefix>:<queue name>:w:…`` instead, which Node does not recognise; the runtime renames
them (:func:`worker_client_name`). Names in the Python format are still listed, so workers started by
an older release are seen too.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

# How many one-minute data points the workers keep (BullMQ's MetricsTime.ONE_WEEK).
METRICS_DATA_POINTS = 7 * 24 * 60


def worker_client_name(prefix: str, queue: str, worker_name: str) -> str:
    """The Redis client name of a worker's connections, as Node BullMQ's ``Queue.getWorkers()`` matches
    it (``<prefix>:<base64(queue)>:w:<name>``); spaces are not allowed in client names."""
    encoded = base64.b64encode(queue.encode()).decode()
    return f"{prefix}:{encoded}:w:{worker_name.replace(' ', '_')}"


@dataclass(frozen=True)
class WorkerInfo:
    queue: str
    name: str
    addr: str
    age_s: int
    idle_s: int


def _parse_client_list(raw: Any) -> list[dict[str, str]]:
    if isinstance(raw, list):  # redis-py parses CLIENT LIST into dicts
        return [{str(k): str(v) for k, v in entry.items()} for entry in raw]
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    out = []
    for line in text.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        out.append(fields)
    return out


async def live_workers(redis: Any, prefix: str, queues: list[str]) -> list[WorkerInfo]:
    """Every connection named as a worker of one of ``queues`` (one per worker process and queue: the
    worker's blocking connection; its other connection carries the same name)."""
    matchers: list[tuple[str, str]] = []
    for queue in queues:
        encoded = base64.b64encode(queue.encode()).decode()
        matchers.append((f"{prefix}:{encoded}", queue))
        matchers.append((f"{prefix}:{queue}", queue))
    seen: dict[tuple[str, str], WorkerInfo] = {}
    for client in _parse_client_list(await redis.client_list()):
        name = client.get("name", "")
        for base, queue in matchers:
            if name == base or name.startswith(f"{base}:w:"):
                worker = name[len(base) + 3 :] if name != base else ""
                key = (queue, worker or client.get("addr", ""))
                age, idle = int(client.get("age", 0)), int(client.get("idle", 0))
                known = seen.get(key)
                # A worker holds more than one connection; report it once, with its freshest one.
                if known is None or idle < known.idle_s:
                    seen[key] = WorkerInfo(queue, worker, client.get("addr", ""), age, idle)
                break
    return sorted(seen.values(), key=lambda w: (w.queue, w.name))


@dataclass(frozen=True)
class QueueMetrics:
    completed: int
    failed: int

    @property
    def failure_rate(self) -> float | None:
        total = self.completed + self.failed
        return self.failed / total if total else None


async def _finished_within(redis: Any, key: str, minutes: int, now_ms: int) -> int:
    """Jobs counted in BullMQ's metrics ``key`` during the last ``minutes`` minutes.

    The hash holds a running ``count`` and, as of the minute ``prevTS``, ``prevCount``; ``<key>:data``
    holds one count per closed minute, newest first, up to that minute."""
    count, prev_ts, prev_count = await redis.hmget(key, ["count", "prevTS", "prevCount"])
    if count is None:
        return 0
    open_minute = int(count) - int(prev_count or 0)
    minutes_since = (now_ms - int(prev_ts or now_ms)) // 60_000
    closed_needed = minutes - 1 - int(minutes_since)
    if minutes_since >= minutes:
        return 0
    closed = 0
    if closed_needed > 0:
        values = await redis.lrange(f"{key}:data", 0, closed_needed - 1)
        closed = sum(int(v) for v in values)
    return open_minute + closed


async def queue_metrics(redis: Any, prefix: str, queue: str, *, minutes: int = 60) -> QueueMetrics:
    now_ms = int(time.time() * 1000)
    base = f"{prefix}:{queue}:metrics"
    return QueueMetrics(
        completed=await _finished_within(redis, f"{base}:completed", minutes, now_ms),
        failed=await _finished_within(redis, f"{base}:failed", minutes, now_ms),
    )


async def oldest_waiting_age_s(redis: Any, prefix: str, queue: str) -> float | None:
    """Age of the job that has waited longest (the tail of the wait list), or None when none waits."""
    oldest = await redis.lindex(f"{prefix}:{queue}:wait", -1)
    if oldest is None:
        return None
    job_id = oldest.decode() if isinstance(oldest, bytes) else str(oldest)
    created = await redis.hget(f"{prefix}:{queue}:{job_id}", "timestamp")
    if created is None:
        return None
    return max(0.0, time.time() - int(created) / 1000)
