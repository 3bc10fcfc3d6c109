"""The ``maintenance.retention`` job (every retention rule of the system, small batches) and the
``maintenance.partitions`` job (time-partitioned tables: the next partitions made ahead, expired ones
dropped), both on the scheduler queue."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.accounts import service as accounts
from habitjobs.analytics import service as analytics
from habitjobs.config import Settings
from habitjobs.db import partitions
from habitjobs.db.engine import Database
from habitjobs.maintenance import retention
from habitjobs.push import service as push
from habitjobs.queue import outbox
from habitjobs.queue.names import SCHEDULER
from habitjobs.queue.registry import JobSpec, Schedule
from habitjobs.queue.retry import NO_RETRY
from habitjobs.resources import JobContext
from habitjobs.sync import service as sync
from habitjobs.sync.models import PAYLOAD_PARTITIONS

RETENTION_JOB = "maintenance.retention"
PARTITIONS_JOB = "maintenance.partitions"


class Retention(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Partitions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class PartitionRule:
    table: partitions.PartitionedTable
    keep_s: int
    still_needed: partitions.StillNeeded | None


def partition_rules(settings: Settings) -> list[PartitionRule]:
    """Every time-partitioned table, how long its partitions are kept, and what keeps one longer."""
    payloads = replace(PAYLOAD_PARTITIONS, width=timedelta(seconds=settings.sync_payload_partition_s))
    return [PartitionRule(payloads, settings.sync_payload_keep_s, sync.open_batch_received_in)]


async def maintain_partitions(db: Database, settings: Settings, now: datetime) -> dict[str, dict[str, int]]:
    """Bring every partitioned table up to date at ``now`` (``maintenance.partitions``, the CLI)."""
    done = {}
    for rule in partition_rules(settings):
        report = await partitions.maintain(
            db,
            rule.table,
            now=now,
            ahead=timedelta(seconds=settings.partition_ahead_s),
            keep=timedelta(seconds=rule.keep_s),
            still_needed=rule.still_needed,
            lock_timeout_ms=settings.partition_lock_timeout_ms,
        )
        done[rule.table.name] = report.as_dict()
    return done


def _older_than(keep_s: int, sweep: retention.Sweep) -> retention.Sweep:
    """A sweep given the cutoff ``now - keep_s`` instead of ``now``."""
    keep = timedelta(seconds=keep_s)

    async def run(session: AsyncSession, now: datetime, limit: int) -> int:
        return await sweep(session, now - keep, limit)

    return run


def rules(settings: Settings) -> list[retention.Rule]:
    """Every retention rule, in the order they run (a new one is one entry here). README "Storage" lists
    them with their settings; time-partitioned tables are handled by ``maintenance.partitions``."""
    return [
        # Exports past their expiry lose their document (the big part) and answer 410...
        retention.Rule("data_exports.expire", accounts.expire_exports),
        # ...and are forgotten altogether (404) after export_forget_after_s more.
        retention.Rule(
            "data_exports.forget", _older_than(settings.export_forget_after_s, accounts.forget_exports)
        ),
        # Finished deliveries, well past the window in which their dedupe key can come up again.
        retention.Rule(
            "push_deliveries", _older_than(settings.push_delivery_keep_s, push.delete_finished_deliveries)
        ),
        # Uploads' status rows (their payloads are in sync_batch_payloads, dropped by partition).
        retention.Rule("sync_batches", _older_than(settings.sync_batch_keep_s, sync.delete_finished_batches)),
        # Tombstones: each user's pull horizon moves past the ones that go.
        retention.Rule("sync.tombstones", _older_than(settings.sync_tombstone_keep_s, sync.purge_tombstones)),
        # Outbox rows Redis acknowledged (the pending ones stay for the relay).
        retention.Rule("outbox", _older_than(settings.outbox_keep_s, outbox.delete_enqueued)),
        # Finished nightly analytics runs (the planner only looks a few days back).
        retention.Rule(
            "analytics_runs", _older_than(settings.analytics_run_keep_s, analytics.delete_finished_runs)
        ),
        # The audit rows of finished account deletions.
        retention.Rule(
            "account_deletions", _older_than(settings.account_deletion_keep_s, accounts.forget_deletions)
        ),
    ]


async def run_retention(ctx: JobContext, _payload: Retention) -> dict[str, Any]:
    resources = ctx.resources
    settings = resources.settings
    return await retention.run(
        resources.db,
        rules(settings),
        now=resources.clock.now(),
        batch=settings.retention_batch,
        max_batches=settings.retention_max_batches,
    )


async def run_partitions(ctx: JobContext, _payload: Partitions) -> dict[str, Any]:
    resources = ctx.resources
    return await maintain_partitions(resources.db, resources.settings, resources.clock.now())


JOBS: list[JobSpec[Any]] = [
    JobSpec(
        RETENTION_JOB,
        SCHEDULER,
        Retention,
        run_retention,
        policy=NO_RETRY,
        description="delete what is kept only for a while (README Storage), in small batches",
    ),
    JobSpec(
        PARTITIONS_JOB,
        SCHEDULER,
        Partitions,
        run_partitions,
        policy=NO_RETRY,
        description="make the next partitions of time-partitioned tables ahead, drop expired ones",
    ),
]


def schedules(settings: Settings) -> list[Schedule]:
    return [
        Schedule("maintenance-retention", RETENTION_JOB, every_ms=settings.retention_every_ms),
        Schedule("maintenance-partitions", PARTITIONS_JOB, every_ms=settings.partition_every_ms),
    ]
