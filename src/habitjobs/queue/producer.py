"""Putting jobs on queues, with the job type's retry policy and retention attached."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bullmq import Queue
from pydantic import BaseModel

from habitjobs.config import Settings
from habitjobs.observability import context as log_context
from habitjobs.observability import tracing
from habitjobs.queue.connection import DEFAULT_COMMAND_TIMEOUT_S, assert_safe, create_redis
from habitjobs.queue.fairness import FairRanks
from habitjobs.queue.names import BACKOFF_TYPE, check_job_id
from habitjobs.queue.registry import JobSpec, Registry


@dataclass(frozen=True)
class Dedupe:
    """BullMQ deduplication: while a job with this id is pending, later adds are dropped (or, with
    ``replace``, their data replaces the pending job's — a debounce)."""

    id: str
    ttl_ms: int | None = None
    extend: bool = False
    replace: bool = False


@dataclass(frozen=True)
class EnqueueRequest:
    name: str
    payload: BaseModel | dict[str, Any]
    job_id: str | None = None
    delay_ms: int = 0
    priority: int | None = None
    dedupe: Dedupe | None = None
    # The user the job works for: a job of a fair type gets its priority from the user's queued jobs.
    user: str | None = None


class Producer:
    """Adds jobs. One per process; its Redis client is pooled and shared by every queue handle."""

    def __init__(
        self, settings: Settings, registry: Registry, *, command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S
    ) -> None:
        """``command_timeout_s``: the limit on each Redis command (the producer never blocks on Redis)."""
        self._settings = settings
        self._registry = registry
        self._redis = create_redis(settings.require_redis_url(), command_timeout_s=command_timeout_s)
        assert_safe(self._redis)
        self._queues: dict[str, Queue] = {}
        self._fair = FairRanks(self._redis, settings.queue_prefix)

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def prefix(self) -> str:
        """The key prefix of every queue (``HABITJOBS_QUEUE_PREFIX``)."""
        return self._settings.queue_prefix

    def queue(self, name: str) -> Queue:
        """The bullmq handle for one queue (created once, sharing the producer's client)."""
        handle = self._queues.get(name)
        if handle is None:
            handle = Queue(name, {"connection": self._redis, "prefix": self._settings.queue_prefix})
            self._queues[name] = handle
        return handle

    def job_options(self, spec: JobSpec[Any], request: EnqueueRequest) -> dict[str, Any]:
        s = self._settings
        opts: dict[str, Any] = {
            "attempts": spec.policy.attempts,
            "backoff": {"type": BACKOFF_TYPE, "delay": round(spec.policy.base_delay_s * 1000)},
            "removeOnComplete": {"age": s.keep_completed_age_s, "count": s.keep_completed_count},
            "removeOnFail": {"age": s.keep_failed_age_s, "count": s.keep_failed_count},
        }
        if request.job_id is not None:
            opts["jobId"] = check_job_id(request.job_id)
        if request.delay_ms > 0:
            opts["delay"] = request.delay_ms
        if request.priority is not None:
            opts["priority"] = request.priority
        if request.dedupe is not None:
            dedupe: dict[str, Any] = {"id": request.dedupe.id}
            if request.dedupe.ttl_ms is not None:
                dedupe["ttl"] = request.dedupe.ttl_ms
            if request.dedupe.extend:
                dedupe["extend"] = True
            if request.dedupe.replace:
                dedupe["replace"] = True
            opts["deduplication"] = dedupe
        return opts

    def validate_payload(
        self, spec: JobSpec[Any], payload: BaseModel | dict[str, Any], *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Validate against the job type's model, so a bad payload fails here, not in a worker. The data
        also carries a request id (``request_id``, the one stored with ``payload``, or the current one)."""
        trace = None
        if isinstance(payload, dict):
            trace = log_context.carried_trace(payload)
            stripped, carried = log_context.take_request_id(payload)
            payload, request_id = stripped, request_id or carried  # type: ignore[assignment]
        model = (
            payload
            if isinstance(payload, spec.payload)
            else spec.parse(payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload)
        )
        data: dict[str, Any] = model.model_dump(mode="json")
        return log_context.with_request_id(data, request_id, trace)

    async def enqueue(
        self,
        name: str,
        payload: BaseModel | dict[str, Any],
        *,
        job_id: str | None = None,
        delay_ms: int = 0,
        priority: int | None = None,
        dedupe: Dedupe | None = None,
        user: str | None = None,
    ) -> str:
        """Add one job; returns its id. Adding an id that already exists does nothing (BullMQ)."""
        request = EnqueueRequest(name, payload, job_id, delay_ms, priority, dedupe, user)
        [request] = await self._with_fair_priorities([request])
        spec = self._registry.get(name)
        data, opts = self.validate_payload(spec, payload), self.job_options(spec, request)
        if tracing.ENABLED:
            with tracing.span(f"enqueue {name}", kind="PRODUCER"):
                job = await self.queue(spec.queue).add(name, data, opts)
        else:
            job = await self.queue(spec.queue).add(name, data, opts)
        return str(job.id)

    async def _with_fair_priorities(self, requests: Sequence[EnqueueRequest]) -> list[EnqueueRequest]:
        """Give each job of a fair type (with a user and an id, and no priority of its own) its rank
        among the user's queued jobs as priority (see :mod:`habitjobs.queue.fairness`)."""
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            spec = self._registry.get(request.name)
            if spec.fair and request.user and request.job_id and request.priority is None:
                groups[(spec.queue, request.user)].append(index)
        if not groups:
            return list(requests)
        keys = list(groups)
        ranks = await self._fair.priorities(
            [(queue, user, [str(requests[i].job_id) for i in groups[(queue, user)]]) for queue, user in keys]
        )
        out = list(requests)
        for key, priorities in zip(keys, ranks, strict=True):
            for index, priority in zip(groups[key], priorities, strict=True):
                out[index] = replace(out[index], priority=priority)
        return out

    async def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[str]:
        """Add many jobs, one MULTI/EXEC per queue. Returns ids in the order given."""
        requests = await self._with_fair_priorities(requests)
        by_queue: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for index, request in enumerate(requests):
            spec = self._registry.get(request.name)
            by_queue[spec.queue].append(
                (
                    index,
                    {
                        "name": request.name,
                        "data": self.validate_payload(spec, request.payload),
                        "opts": self.job_options(spec, request),
                    },
                )
            )
        ids: list[str] = [""] * len(requests)
        for queue_name, items in by_queue.items():
            if tracing.ENABLED:
                with tracing.span(f"enqueue {queue_name}", kind="PRODUCER", attributes={"jobs": len(items)}):
                    jobs = await self.queue(queue_name).addBulk([item for _, item in items])
            else:
                jobs = await self.queue(queue_name).addBulk([item for _, item in items])
            for (index, _), job in zip(items, jobs, strict=True):
                ids[index] = str(job.id)
        return ids

    @property
    def redis(self) -> Any:
        """The pooled client (for inspection and health checks)."""
        return self._redis

    async def close(self) -> None:
        self._queues.clear()
        await self._redis.aclose()
