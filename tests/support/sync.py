"""Offline sync from the phone's side: a device that records mutations and uploads them in batches."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from habitjobs.resources import JobContext, Resources
from habitjobs.sync import jobs as sync_jobs
from habitjobs.sync import service
from habitjobs.sync.entities import completion_id
from habitjobs.sync.schemas import PushIn

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def ts(seconds: float) -> str:
    """A client timestamp ``seconds`` after T0, as a phone sends it."""
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


@dataclass
class Device:
    """One app installation: numbers its mutations, groups them into batches."""

    client_id: str = field(default_factory=lambda: f"phone-{uuid.uuid4().hex[:8]}")
    next_id: int = 1
    queue: list[dict[str, Any]] = field(default_factory=list)

    def record(
        self,
        entity: str,
        op: str,
        entity_id: uuid.UUID | str,
        at: float | str,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue one mutation; ``at`` is seconds after T0, or a timestamp string sent as it is."""
        mutation: dict[str, Any] = {
            "mutation_id": self.next_id,
            "entity": entity,
            "op": op,
            "id": str(entity_id),
            "client_updated_at": at if isinstance(at, str) else ts(at),
        }
        if data is not None:
            mutation["data"] = data
        self.next_id += 1
        self.queue.append(mutation)
        return mutation

    def check(self, habit_id: uuid.UUID, day: date, at: float, **data: Any) -> uuid.UUID:
        cid = completion_id(habit_id, day)
        self.record(
            "habit_completion",
            "upsert",
            cid,
            at,
            {"habit_id": str(habit_id), "local_date": day.isoformat(), **data},
        )
        return cid

    def uncheck(self, habit_id: uuid.UUID, day: date, at: float) -> uuid.UUID:
        cid = completion_id(habit_id, day)
        self.record("habit_completion", "delete", cid, at)
        return cid

    def batch(self, size: int | None = None) -> dict[str, Any]:
        """Take the oldest ``size`` queued mutations (all by default) as one upload body."""
        size = len(self.queue) if size is None else size
        taken, self.queue = self.queue[:size], self.queue[size:]
        return body(self.client_id, taken)


def body(
    client_id: str, mutations: list[dict[str, Any]], batch_id: uuid.UUID | None = None
) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "batch_id": str(batch_id or uuid.uuid4()),
        "schema_version": 1,
        "mutations": mutations,
    }


async def accept(resources: Resources, user_id: uuid.UUID, upload: dict[str, Any]) -> uuid.UUID:
    """What ``POST /v1/sync/push`` does, without HTTP."""
    async with resources.db.transaction() as session:
        batch, _ = await service.accept_push(
            session, resources.outbox, resources.settings, user_id, PushIn.model_validate(upload)
        )
    return batch.batch_id


async def apply(resources: Resources, batch_id: uuid.UUID, *, attempt: int = 1) -> dict[str, Any]:
    """Run the ``sync.apply_batch`` handler in this process (what a worker does with the job)."""
    spec = resources.registry.get(service.APPLY_JOB)
    ctx = JobContext(
        job_id=service.apply_job_id(batch_id),
        name=spec.name,
        queue=spec.queue,
        attempt=attempt,
        max_attempts=spec.policy.attempts,
        resources=resources,
    )
    return await sync_jobs.apply_batch(ctx, sync_jobs.ApplyBatch(batch_id=batch_id))


async def push_and_apply(resources: Resources, user_id: uuid.UUID, upload: dict[str, Any]) -> uuid.UUID:
    batch_id = await accept(resources, user_id, upload)
    await apply(resources, batch_id)
    return batch_id
