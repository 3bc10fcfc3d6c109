"""Job types: name (``domain.verb``) → queue, payload model, handler, retry policy.

Each domain declares its job types in its ``jobs.py``; :mod:`habitjobs.catalog` gathers them into one
:class:`Registry` at process start. Payloads are frozen pydantic models carrying IDs only: the handler
re-reads the rows, so a retried or duplicated job sees the current state.

Beside its handler, a job type whose domain rows wait on its jobs declares two hooks, so the queue layer
stays generic while every failure and every lost job reaches the rows:

The queue layer knows nothing of the application: a handler gets a :class:`HandlerContext` generic over
what the process hands it (the application's :class:`habitjobs.resources.Resources`, whose
``JobContext`` alias is what handlers annotate), and the hooks get that same object.

- ``on_final_failure(resources, FailedJob)``: the job ended failed for good — its handler gave up, it
  stalled too often, its payload was invalid, an operator removed it. Make the waiting rows say so (and
  let a later run of the same job, after an operator's retry, take them up again). Called from one place,
  :mod:`habitjobs.queue.failures`; safe to call twice.
- ``awaiting(resources, AwaitedScan)``: the jobs that rows older than ``older_than`` still wait on, in a
  stable order after ``after``, looking at most at ``limit`` rows — what the reconciliation
  (:mod:`habitjobs.queue.reconcile`) compares with Redis to enqueue lost jobs again under their own ids.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from habitjobs.observability import context as log_context
from habitjobs.queue.names import JOB_NAME_RE, QUEUES
from habitjobs.queue.retry import DEFAULT_POLICY, RetryPolicy

P = TypeVar("P", bound=BaseModel)
# What the process hands its handlers and hooks (habitjobs.resources.Resources in this application).
C = TypeVar("C")
JsonValue = Any  # what a handler returns: anything json.dumps accepts (stored as the job's return value)


class UnknownJob(LookupError):
    pass


@dataclass
class HandlerContext(Generic[C]):
    """What a handler gets beside its payload: who it is, which attempt, and the process's resources."""

    job_id: str
    name: str
    queue: str
    attempt: int  # 1 for the first run
    max_attempts: int
    resources: C
    _job: Any = field(repr=False, default=None)

    async def progress(self, value: int | dict[str, Any]) -> None:
        """Report progress (a percentage or a small dict); visible in ``GET /v1/jobs/{id}``."""
        if self._job is not None:
            await self._job.updateProgress(value)

    async def log(self, line: str) -> None:
        """Append a line to the job's log (kept with the job, shown by ``habitjobs jobs show``)."""
        if self._job is not None:
            await self._job.log(line)


# Any: the registry holds handlers of whatever context the process hands them (one kind per process).
Handler = Callable[[HandlerContext[Any], P], Awaitable[JsonValue]]


@dataclass(frozen=True)
class FailedJob:
    """A job that ended failed for good (or that an operator removed), as its domain hook sees it."""

    job_id: str
    name: str
    # The payload as stored: it may not validate (an invalid payload is one way to fail).
    data: dict[str, Any]
    reason: str

    def __post_init__(self) -> None:
        # The request id a job's data carries is no part of its payload.
        payload, _ = log_context.take_request_id(self.data)
        if payload is not self.data:
            object.__setattr__(self, "data", payload)


# Where a row sits in its domain's scan order: (its timestamp, its id as text).
Position = tuple[datetime, str]


@dataclass(frozen=True)
class AwaitedScan:
    older_than: datetime
    after: Position | None
    limit: int


@dataclass(frozen=True)
class Awaited:
    """A job that domain rows wait on: enough to enqueue it again under its own id."""

    job_id: str
    data: dict[str, Any]
    # The position of the last row (in scan order) that waits on this job.
    position: Position


@dataclass(frozen=True)
class AwaitedPage:
    jobs: list[Awaited]
    # Where the next scan continues; None when this one reached the end (the next starts over).
    next_after: Position | None


FinalFailureHook = Callable[[Any, FailedJob], Awaitable[None]]
AwaitingScan = Callable[[Any, AwaitedScan], Awaitable[AwaitedPage]]


@dataclass(frozen=True)
class JobSpec(Generic[P]):
    name: str
    queue: str
    payload: type[P]
    handler: Handler[P]
    policy: RetryPolicy = DEFAULT_POLICY
    description: str = ""
    # Per-user work: jobs enqueued for a user get their rank among the user's queued jobs as priority,
    # so one user's backlog does not hold other users' jobs back (queue/fairness.py).
    fair: bool = False
    on_final_failure: FinalFailureHook | None = None
    awaiting: AwaitingScan | None = None

    def __post_init__(self) -> None:
        if not JOB_NAME_RE.match(self.name):
            raise ValueError(f"job name {self.name!r} must look like domain.verb")
        if self.queue not in QUEUES:
            raise ValueError(f"job {self.name!r}: unknown queue {self.queue!r}")
        if not inspect.iscoroutinefunction(self.handler):
            # A synchronous handler would run on the event loop and stop lock renewal (docs/engine.md, E4).
            raise ValueError(f"job {self.name!r}: the handler must be an async function")
        for hook in (self.on_final_failure, self.awaiting):
            if hook is not None and not inspect.iscoroutinefunction(hook):
                raise ValueError(f"job {self.name!r}: hook {hook!r} must be an async function")
        if not self.payload.model_config.get("frozen"):
            raise ValueError(f"job {self.name!r}: payload model {self.payload.__name__} must be frozen")

    def parse(self, data: object) -> P:
        return self.payload.model_validate(data)


class Registry:
    def __init__(self, specs: Iterable[JobSpec[Any]]) -> None:
        self._specs: dict[str, JobSpec[Any]] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"job {spec.name!r} is registered twice")
            self._specs[spec.name] = spec

    def get(self, name: str) -> JobSpec[Any]:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownJob(f"no job type named {name!r} is registered in this worker") from None

    def find(self, name: str) -> JobSpec[Any] | None:
        return self._specs.get(name)

    def for_queue(self, queue: str) -> list[JobSpec[Any]]:
        return [s for s in self._specs.values() if s.queue == queue]

    @property
    def queues(self) -> list[str]:
        """Queues that have at least one job type, in the order of :data:`QUEUES`."""
        used = {s.queue for s in self._specs.values()}
        return [q for q in QUEUES if q in used]

    def __iter__(self) -> Iterator[JobSpec[Any]]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)


@dataclass(frozen=True)
class Schedule:
    """A periodic job, stored in Redis as a BullMQ job scheduler: N workers still make one job per tick."""

    scheduler_id: str
    job_name: str
    every_ms: int | None = None
    cron: str | None = None
    tz: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.every_ms is None) == (self.cron is None):
            raise ValueError(f"schedule {self.scheduler_id!r}: give exactly one of every_ms and cron")
