"""SQL of the dashboard's "what the jobs did" page: push deliveries, disabled devices, sync batches with
rejected mutations, nightly analytics runs, reminders due. Read-only, each query bounded."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_DELIVERIES = text(
    """
    SELECT date_trunc('hour', created_at) AS hour, provider, status, count(*) AS n
    FROM push_deliveries WHERE created_at > now() - interval '24 hours'
    GROUP BY 1, 2, 3 ORDER BY 1 DESC, 2, 3 LIMIT 500
    """
)
_DISABLED = text(
    """
    SELECT id, user_id, provider, invalidated_at, invalid_reason FROM devices
    WHERE NOT push_enabled AND (CAST(:user_id AS uuid) IS NULL OR user_id = CAST(:user_id AS uuid))
    ORDER BY invalidated_at DESC NULLS LAST LIMIT 100
    """
)
_BATCHES = text(
    """
    SELECT batch_id, user_id, status, job_id, mutation_count, received_at, applied_at, error,
           COALESCE(result -> 'rejected', '[]'::jsonb) AS rejected
    FROM sync_batches
    WHERE (CAST(:user_id AS uuid) IS NULL OR user_id = CAST(:user_id AS uuid))
      AND (CAST(:user_id AS uuid) IS NOT NULL OR jsonb_array_length(COALESCE(result -> 'rejected', '[]'))
           > 0 OR error IS NOT NULL)
    ORDER BY received_at DESC LIMIT 100
    """
)
_RUNS = text(
    """
    SELECT timezone, local_date, status, started_at, finished_at, users_done FROM analytics_runs
    ORDER BY started_at DESC LIMIT 100
    """
)
_REMINDERS = text(
    """
    SELECT date_trunc('minute', next_fire_at) AS minute, count(*) AS n FROM reminders
    WHERE enabled AND next_fire_at >= now() AND next_fire_at < now() + interval '1 day'
    GROUP BY 1 ORDER BY 1 LIMIT 1440
    """
)


@dataclass(frozen=True)
class Batch:
    batch_id: uuid.UUID
    user_id: uuid.UUID
    status: str
    job_id: str
    mutation_count: int
    received_at: datetime
    applied_at: datetime | None
    error: str | None
    rejected: list[dict[str, Any]]


@dataclass
class Activity:
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    disabled_devices: list[dict[str, Any]] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    reminders_per_minute: list[dict[str, Any]] = field(default_factory=list)


async def report(session: AsyncSession, *, user_id: uuid.UUID | None = None) -> Activity:
    """The last day's deliveries by provider and outcome, devices disabled and why, sync batches with
    rejected mutations (one user's batches when ``user_id``), analytics runs, reminders due tomorrow."""
    uid = str(user_id) if user_id else None
    out = Activity()
    out.deliveries = [dict(r._mapping) for r in await session.execute(_DELIVERIES)]
    out.disabled_devices = [dict(r._mapping) for r in await session.execute(_DISABLED, {"user_id": uid})]
    out.batches = [Batch(**dict(r._mapping)) for r in await session.execute(_BATCHES, {"user_id": uid})]
    out.runs = [dict(r._mapping) for r in await session.execute(_RUNS)]
    out.reminders_per_minute = [dict(r._mapping) for r in await session.execute(_REMINDERS)]
    return out
