"""Time-partitioned tables (native PostgreSQL range partitioning): which exist, creating the next ones
ahead of time, dropping the expired ones.

A partition covers ``[start, start + width)`` of the table's time column and is named
``<table>_p<YYYYMMDDHHMM>`` after its start (UTC), so its range is known from its name alone (its end is
the next partition's start, or start + width). Every step is
one DDL statement in its own short transaction (``CREATE TABLE IF NOT EXISTS … PARTITION OF``, ``DROP
TABLE IF EXISTS``), so a run that dies halfway leaves every partition either made or not, dropped or not,
and the next run simply does the rest; a run that was missed is caught up by the next, which plans from
the clock, not from what the previous run did. A step waits at most ``lock_timeout_ms`` for its lock
(dropping a partition locks the parent briefly): rather than queue every writer behind it at peak, it is
left to the next run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.db.engine import Database

log = logging.getLogger(__name__)

_LOCK_NOT_AVAILABLE = "55P03"

# Whether rows of [start, end) are still needed although the partition has expired (an upload not merged
# yet): the partition then stays until a later run.
StillNeeded = Callable[[AsyncSession, datetime, datetime], Awaitable[bool]]


@dataclass(frozen=True)
class PartitionedTable:
    name: str
    column: str
    width: timedelta = timedelta(hours=1)

    def partition_name(self, start: datetime) -> str:
        return f"{self.name}_p{start.astimezone(UTC):%Y%m%d%H%M}"

    def start_of(self, partition: str) -> datetime | None:
        found = re.fullmatch(re.escape(self.name) + r"_p(\d{12})", partition)
        if found is None:
            return None
        return datetime.strptime(found.group(1), "%Y%m%d%H%M").replace(tzinfo=UTC)

    def floor(self, instant: datetime) -> datetime:
        step = int(self.width.total_seconds())
        seconds = int(instant.astimezone(UTC).timestamp())
        return datetime.fromtimestamp(seconds - seconds % step, UTC)


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime
    end: datetime
    size_bytes: int = 0


@dataclass(frozen=True)
class Step:
    kind: str  # "create" | "drop"
    partition: Partition


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # expired, but rows in it are still needed
    deferred: list[str] = field(default_factory=list)  # lock not granted in time: the next run

    def as_dict(self) -> dict[str, int]:
        return {k: len(v) for k, v in vars(self).items()}


_PARTITIONS = text(
    "SELECT c.relname::text, pg_total_relation_size(c.oid), "
    "(regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1] "
    "FROM pg_inherits i "
    "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
    "JOIN pg_namespace n ON n.oid = p.relnamespace "
    "WHERE p.relname = :parent AND n.nspname = current_schema() ORDER BY 1"
)


async def partitions(session: AsyncSession, table: PartitionedTable) -> list[Partition]:
    """The table's partitions, oldest first."""
    found = []
    for name, size, end in await session.execute(_PARTITIONS, {"parent": table.name}):
        start = table.start_of(name)
        if start is not None:
            # The end as the database has it (the width may have been changed since it was made).
            upper = datetime.fromisoformat(end) if end else start + table.width
            found.append(Partition(name, start, upper, int(size)))
    return sorted(found, key=lambda p: p.start)


def plan(
    table: PartitionedTable,
    existing: Sequence[Partition],
    *,
    now: datetime,
    ahead: timedelta,
    keep: timedelta,
) -> list[Step]:
    """The steps that bring the table to: a partition for every period from the current one to ``now +
    ahead``, none whose whole range is older than ``now - keep``. Creations first (writers need them)."""
    steps = []
    start = table.floor(now)
    while start <= now + ahead:
        end = start + table.width
        # The parts of the period no partition covers yet (all of it, unless the width was changed).
        at = start
        while at < end:
            covering = next((p for p in existing if p.start <= at < p.end), None)
            if covering is not None:
                at = covering.end
                continue
            upto = min((p.start for p in existing if at < p.start < end), default=end)
            steps.append(Step("create", Partition(table.partition_name(at), at, upto)))
            at = upto
        start = end
    steps.extend(Step("drop", p) for p in existing if p.end <= now - keep)
    return steps


async def apply_step(db: Database, table: PartitionedTable, step: Step, *, lock_timeout_ms: int) -> None:
    """One step in its own transaction. Raises :class:`DBAPIError` (lock not available) on a timeout."""
    async with db.transaction() as session:
        await session.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
        p = step.partition
        if step.kind == "create":
            await session.execute(
                text(
                    f'CREATE TABLE IF NOT EXISTS "{p.name}" PARTITION OF "{table.name}" '
                    f"FOR VALUES FROM ('{p.start.isoformat()}') TO ('{p.end.isoformat()}')"
                )
            )
        else:
            await session.execute(text(f'DROP TABLE IF EXISTS "{p.name}"'))


async def maintain(
    db: Database,
    table: PartitionedTable,
    *,
    now: datetime,
    ahead: timedelta,
    keep: timedelta,
    still_needed: StillNeeded | None = None,
    lock_timeout_ms: int = 2_000,
) -> Report:
    """Create the partitions due ahead and drop the expired ones (see the module's description)."""
    async with db.transaction() as session:
        existing = await partitions(session, table)
    report = Report()
    for step in plan(table, existing, now=now, ahead=ahead, keep=keep):
        p = step.partition
        if step.kind == "drop" and still_needed is not None:
            async with db.transaction() as session:
                if await still_needed(session, p.start, p.end):
                    report.kept.append(p.name)
                    continue
        try:
            await apply_step(db, table, step, lock_timeout_ms=lock_timeout_ms)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            log.warning(
                "partition %s: %s waited too long for its lock; the next run does it", p.name, step.kind
            )
            report.deferred.append(p.name)
            continue
        (report.created if step.kind == "create" else report.dropped).append(p.name)
    return report


def is_partition_of(tables: Sequence[PartitionedTable], name: str) -> bool:
    """Whether ``name`` is a partition of one of ``tables`` (they are made at run time, not by models)."""
    return any(t.start_of(name) is not None for t in tables)
